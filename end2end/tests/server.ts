// Runs a real Roomcast server for one test: its own port and SQLite file,
// started, killed and restarted (on the same port and file) at will.
import { ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { APIRequestContext, Page, expect, request } from "@playwright/test";

const root = path.resolve(__dirname, "..", "..");
const bin = process.env.ROOMCAST_BIN ?? path.join(root, "target", "debug", "roomcast");
const siteRoot = process.env.ROOMCAST_SITE_ROOT ?? path.join(root, "target", "site");

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
    srv.on("error", reject);
  });
}

export class Server {
  child?: ChildProcess;
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), "roomcast-e2e-"));
  constructor(public port: number, private args: string[] = []) {}

  static async start(args: string[] = []): Promise<Server> {
    const server = new Server(await freePort(), args);
    await server.spawn();
    return server;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async spawn(): Promise<void> {
    this.child = spawn(
      bin,
      ["--addr", `127.0.0.1:${this.port}`, "--db", path.join(this.dir, "roomcast.db"), "--site-root", siteRoot, ...this.args],
      { stdio: ["ignore", "ignore", "inherit"], env: { ...process.env, RUST_LOG: "warn" } },
    );
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        const res = await fetch(`${this.url}/healthz`);
        if (res.ok) return;
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) throw new Error(`roomcast did not start on ${this.port}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /**
   * Two servers sharing the Redis server named by ROOMCAST_TEST_REDIS
   * (scripts/test.sh starts one), under a key prefix of their own.
   */
  static async startPair(args: string[] = []): Promise<[Server, Server]> {
    const url = process.env.ROOMCAST_TEST_REDIS;
    if (!url) throw new Error("set ROOMCAST_TEST_REDIS to a running Redis server");
    const prefix = `e2e-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    const shared = ["--redis-url", url, "--redis-prefix", prefix, "--node-ttl-seconds", "2", ...args];
    return [await Server.start(shared), await Server.start(shared)];
  }

  /** SIGKILL, and wait until the process is gone. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGKILL");
    await exited;
  }

  async restart(): Promise<void> {
    await this.kill();
    await this.spawn();
  }

  async stop(): Promise<void> {
    await this.kill();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** An API client with its own session. */
  async api(userName: string): Promise<Api> {
    const ctx = await request.newContext({ baseURL: this.url });
    const res = await ctx.post("/api/session", { data: { userName } });
    expect(res.status()).toBe(200);
    const body = await res.json();
    const authed = await request.newContext({
      baseURL: this.url,
      extraHTTPHeaders: { Authorization: `Bearer ${body.token}` },
    });
    await ctx.dispose();
    return new Api(authed, body.token, body.userId);
  }
}

export class Api {
  constructor(public ctx: APIRequestContext, public token: string, public userId: string) {}

  async createRoom(data: Record<string, unknown>): Promise<any> {
    const res = await this.ctx.post("/api/rooms", { data });
    expect(res.status(), await res.text()).toBe(201);
    return res.json();
  }

  async patchRoom(id: string, data: Record<string, unknown>): Promise<any> {
    const res = await this.ctx.patch(`/api/rooms/${id}`, { data });
    expect(res.status(), await res.text()).toBe(200);
    return res.json();
  }
}

/** Opens a page and waits until the WASM app has hydrated it. */
export async function open(page: Page, url: string): Promise<void> {
  await page.goto(url);
  await page.waitForSelector('body[data-hydrated="true"]');
}

/** Waits until the page's one socket is connected. */
export async function connected(page: Page): Promise<void> {
  await expect(page.getByTestId("connection")).toHaveAttribute("data-state", "connected");
}

export function row(page: Page, id: string) {
  return page.locator(`tr[data-room-id="${id}"]`);
}

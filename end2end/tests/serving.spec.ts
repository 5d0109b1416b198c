// Served like a production site: compressed assets, a CSP under which the
// page still hydrates, and no socket for pages of other origins.
import { expect, test } from "@playwright/test";
import { Server, connected, open } from "./server";

let server: Server;

test.beforeEach(async () => {
  server = await Server.start();
});

test.afterEach(async () => {
  await server.stop();
});

test("the WASM and JS go out compressed and the page hydrates under its CSP", async ({ page }) => {
  const encodings = new Map<string, string>();
  const caching = new Map<string, string>();
  page.on("response", async (response) => {
    const url = response.url();
    const kind = url.split(".").pop() ?? "";
    if (["wasm", "js", "css"].includes(kind)) {
      const headers = await response.allHeaders();
      encodings.set(kind, headers["content-encoding"] ?? "none");
      caching.set(kind, `${new URL(url).pathname} ${headers["cache-control"]}`);
    }
  });
  const violations: string[] = [];
  page.on("console", (message) => {
    if (message.text().includes("Content Security Policy")) violations.push(message.text());
  });
  const answer = await page.goto(`${server.url}/rooms`);
  const csp = (await answer!.allHeaders())["content-security-policy"] ?? "";
  expect(csp).toContain("'nonce-");
  await expect(page.locator("body")).toHaveAttribute("data-hydrated", "true");
  await connected(page);
  expect(["br", "gzip"]).toContain(encodings.get("wasm"));
  expect(["br", "gzip"]).toContain(encodings.get("js"));
  expect(violations).toEqual([]);
  // Assets are named after their content and kept for a year; the page
  // itself is revalidated on every visit.
  for (const kind of ["wasm", "js", "css"]) {
    expect(caching.get(kind)).toMatch(new RegExp(`^/pkg/roomcast\\.[0-9a-f]{16}\\.${kind} public, max-age=31536000, immutable$`));
  }
  expect((await answer!.allHeaders())["cache-control"]).toBe("no-cache");
});

test("a page of another origin cannot open the socket", async ({ page }) => {
  // The same server under another name is another origin for the browser:
  // a page there (one without a CSP) tries the socket of 127.0.0.1.
  await open(page, `${server.url}/rooms`);
  const foreign = server.url.replace("127.0.0.1", "localhost");
  await page.goto(`${foreign}/healthz`);
  const code = await page.evaluate(async (url) => {
    return await new Promise<number>((resolve) => {
      const ws = new WebSocket(url.replace("http", "ws") + "/ws");
      ws.onclose = (event) => resolve(event.code);
    });
  }, server.url);
  expect(code).toBe(4003);
});

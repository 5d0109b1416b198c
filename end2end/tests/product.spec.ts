// The web app as a new user meets it: choosing a name, forms that say
// what is wrong, upload progress, the offline state, pages that work
// without JavaScript, and no serious accessibility faults.
import AxeBuilder from "@axe-core/playwright";
import { Page, expect, test } from "@playwright/test";
import { Server, connected, open } from "./server";

let server: Server;

test.beforeEach(async () => {
  server = await Server.start();
});

test.afterEach(async () => {
  await server.stop();
});

function presenceOf(page: Page, name: string) {
  return page.locator(`[data-testid="presence"] li[data-user="${name}"]`);
}

test("a chosen name shows in the other user's presence and chat, and stays", async ({ browser }) => {
  const api = await server.api("script");
  await api.createRoom({ id: "names" });
  const a = await (await browser.newContext()).newPage();
  const bContext = await browser.newContext();
  const b = await bContext.newPage();
  await open(a, `${server.url}/rooms/names`);
  await open(b, `${server.url}/rooms/names`);
  await connected(a);
  await connected(b);
  await expect(a.locator('[data-testid="presence"] li')).toHaveCount(2);

  await b.getByTestId("rename").click();
  await b.getByTestId("name-input").fill("");
  await b.getByTestId("name-save").click();
  // An empty name is refused where it was typed.
  await expect(b.getByTestId("name-input")).toBeVisible();
  await b.getByTestId("name-input").fill("Bob the builder");
  await b.getByTestId("name-save").click();
  await expect(b.getByTestId("user-name")).toHaveText("Bob the builder");

  await expect(presenceOf(a, "Bob the builder")).toHaveCount(1);
  await expect(a.locator('[data-testid="presence"] li')).toHaveCount(2);
  await connected(b);
  await b.getByTestId("chat-input").fill("hello from Bob");
  await b.getByTestId("chat-send").click();
  const message = a.locator('[data-testid="chat-messages"] li', { hasText: "hello from Bob" });
  await expect(message.locator(".who")).toHaveText("Bob the builder");

  // The name belongs to the session: a new tab starts with it.
  const b2 = await bContext.newPage();
  await open(b2, `${server.url}/rooms/names`);
  await expect(b2.getByTestId("user-name")).toHaveText("Bob the builder");
});

test("the create form says what is wrong next to the field", async ({ page }) => {
  const api = await server.api("script");
  await api.createRoom({ id: "taken" });
  await open(page, `${server.url}/`);
  await connected(page);
  const submit = page.getByTestId("create-submit");

  await page.getByTestId("create-id").fill("has spaces");
  await expect(page.getByTestId("create-id-error")).toContainText("letters, digits");
  await expect(page.getByTestId("create-id")).toHaveAttribute("aria-invalid", "true");
  await expect(submit).toBeDisabled();

  await page.getByTestId("create-id").fill("fine-id");
  await expect(page.getByTestId("create-id-error")).toBeEmpty();
  // Nothing is cut silently: the counter turns red and says how much.
  await page.getByTestId("create-description").fill("x".repeat(503));
  await expect(page.getByTestId("description-count")).toHaveText("503/500");
  await expect(page.getByTestId("create-description-error")).toHaveText("At most 500 characters: remove 3.");
  await expect(submit).toBeDisabled();
  await page.getByTestId("create-description").fill("ok");
  await expect(submit).toBeEnabled();

  await page.getByTestId("create-id").fill("taken");
  await submit.click();
  await expect(page.getByTestId("create-id-error")).toContainText("already exists");
  await expect(page).toHaveURL(`${server.url}/`);
});

test("a join by a bare code goes straight to the room, without a 404", async ({ page }) => {
  const api = await server.api("script");
  const room = await api.createRoom({});
  const notFound: string[] = [];
  page.on("response", (r) => {
    if (r.status() === 404) notFound.push(r.url());
  });
  await open(page, `${server.url}/`);
  await connected(page);
  await page.getByTestId("join-input").fill(room.id.replace("ROOM-", "").toLowerCase());
  await page.getByTestId("join-submit").click();
  await expect(page.getByTestId("room-id")).toHaveText(room.id);
  expect(notFound).toEqual([]);

  await page.goBack();
  await page.getByTestId("join-input").fill("ZZZZZZ");
  await page.getByTestId("join-submit").click();
  await expect(page.getByTestId("join-error")).toHaveText("No room has the code “ZZZZZZ”.");
});

test("uploads count frames and a bad file leaves no stale progress", async ({ page }) => {
  const api = await server.api("script");
  await api.createRoom({ id: "uploads" });
  await open(page, `${server.url}/rooms/uploads`);
  await connected(page);
  const input = page.getByTestId("upload-input");
  const frames = Array.from({ length: 250 }, (_, i) => ({ n: i }));
  await input.setInputFiles({ name: "f.json", mimeType: "application/json", buffer: Buffer.from(JSON.stringify(frames)) });
  await expect(page.getByTestId("upload-status")).toHaveText("250/250 frames");
  await expect(page.getByTestId("room-frame-count")).toHaveText("250");

  await input.setInputFiles({ name: "bad.json", mimeType: "application/json", buffer: Buffer.from("{not json") });
  await expect(page.getByTestId("upload-error")).toContainText("must hold a JSON array");
  await expect(page.getByTestId("upload-progress")).toHaveCount(0);
  await expect(page.getByTestId("upload-status")).toHaveCount(0);
});

test("an upload whose answer is lost sends that chunk again, and it is stored once", async ({ page }) => {
  const api = await server.api("script");
  await api.createRoom({ id: "lossy" });
  await open(page, `${server.url}/rooms/lossy`);
  await connected(page);
  // The first append reaches the server and is stored, but the page never
  // gets its answer: the connection is reset instead.
  const keys: string[] = [];
  await page.route("**/api/rooms/lossy/frames", async (route) => {
    if (route.request().method() !== "POST") return route.continue();
    keys.push((await route.request().headerValue("idempotency-key")) ?? "");
    if (keys.length === 1) {
      const stored = await route.fetch();
      expect(stored.status()).toBe(200);
      return route.abort("connectionreset");
    }
    return route.continue();
  });
  const frames = Array.from({ length: 250 }, (_, i) => ({ n: i }));
  const input = page.getByTestId("upload-input");
  await input.setInputFiles({ name: "f.json", mimeType: "application/json", buffer: Buffer.from(JSON.stringify(frames)) });
  await expect(page.getByTestId("upload-status")).toHaveText("250/250 frames");
  await expect(page.getByTestId("room-frame-count")).toHaveText("250");
  // Chunks of 100: the lost one was sent again with its key, the others once.
  expect(keys).toHaveLength(4);
  expect(keys[1]).toBe(keys[0]);
  expect(new Set(keys).size).toBe(3);
  expect(keys.every((k) => k.length > 0)).toBe(true);
  const page0 = await (await api.ctx.get("/api/rooms/lossy/frames?offset=0&limit=1000")).json();
  expect(page0.frameCount).toBe(250);
  expect(page0.frames.map((f: { n: number }) => f.n)).toEqual(frames.map((f) => f.n));
});

test("a lost connection is announced, and cleared once back", async ({ page }) => {
  await open(page, `${server.url}/rooms`);
  await connected(page);
  await expect(page.getByTestId("offline")).toHaveCount(0);
  await server.kill();
  await expect(page.getByTestId("offline")).toContainText("Connection lost");
  await server.spawn();
  await connected(page);
  await expect(page.getByTestId("offline")).toHaveCount(0);
});

test("a message sent while the server is down arrives once it is back, once", async ({ page }) => {
  const api = await server.api("script");
  await api.createRoom({ id: "outage" });
  await open(page, `${server.url}/rooms/outage`);
  await connected(page);
  await server.kill();
  await expect(page.getByTestId("offline")).toContainText("Connection lost");
  await page.getByTestId("chat-input").fill("sent while offline");
  await page.getByTestId("chat-send").click();
  await server.spawn();
  await connected(page);
  await expect(page.getByTestId("chat-text")).toHaveText(["sent while offline"]);
  await expect(page.getByTestId("chat-input")).toHaveValue("");
  const chat = await (await api.ctx.get("/api/rooms/outage/chat")).json();
  expect(chat.messages.map((m: { text: string }) => m.text)).toEqual(["sent while offline"]);
});

test("a message whose reply is lost with the connection is sent again, and stored once", async ({ page }) => {
  const api = await server.api("script");
  await api.createRoom({ id: "cut-chat" });
  const keys: string[] = [];
  await page.routeWebSocket(/\/ws$/, (ws) => {
    const upstream = ws.connectToServer();
    ws.onMessage((message) => {
      upstream.send(message);
      const text = message.toString();
      if (!text.includes('"chat:send"')) return;
      keys.push(JSON.parse(text).data.key);
      // The server has the message; the page's connection ends before its reply.
      if (keys.length === 1) ws.close();
    });
  });
  await open(page, `${server.url}/rooms/cut-chat`);
  await connected(page);
  await page.getByTestId("chat-input").fill("said once");
  await page.getByTestId("chat-send").click();
  // The page may show the message from its room's history on rejoining
  // before the send is answered: the cleared input is that answer.
  await expect(page.getByTestId("chat-input")).toHaveValue("");
  await expect(page.getByTestId("chat-text")).toHaveText(["said once"]);
  expect(keys).toHaveLength(2);
  expect(keys[1]).toBe(keys[0]);
  const chat = await (await api.ctx.get("/api/rooms/cut-chat/chat")).json();
  expect(chat.messages.map((m: { text: string }) => m.text)).toEqual(["said once"]);
});

test("the stats chart has a scale and fills the width it is given", async ({ browser }) => {
  for (const width of [390, 1280]) {
    const page = await (await browser.newContext({ viewport: { width, height: 900 } })).newPage();
    await open(page, `${server.url}/stats`);
    await connected(page);
    await expect(page.getByTestId("chart-max")).toHaveText(/^[125]0*$/);
    await expect(page.getByTestId("connections-chart")).toContainText("now");
    const box = await page.locator('[data-testid="connections-chart"] svg').boundingBox();
    expect(box!.width).toBeGreaterThan(width * 0.6);
    expect(box!.width).toBeLessThan(width);
  }
});

test.describe("without JavaScript", () => {
  test.use({ javaScriptEnabled: false });

  test("create a room and join one by its code", async ({ page }) => {
    const api = await server.api("script");
    const existing = await api.createRoom({});

    await page.goto(`${server.url}/`);
    await page.getByTestId("create-id").fill("made-without-js");
    await page.getByTestId("create-description").fill("plain form post");
    await page.getByTestId("create-submit").click();
    await expect(page).toHaveURL(`${server.url}/rooms/made-without-js`);
    await expect(page.getByTestId("room-description")).toHaveText("plain form post");
    const room = await (await api.ctx.get("/api/rooms/made-without-js")).json();
    expect(room.hostName).toMatch(/^guest-\d{4}$/);

    // A refused form comes back with the reason and what was typed.
    await page.goto(`${server.url}/`);
    await page.getByTestId("create-id").fill("made-without-js");
    await page.getByTestId("create-submit").click();
    await expect(page.getByTestId("create-id-error")).toContainText("already exists");
    await expect(page.getByTestId("create-id")).toHaveValue("made-without-js");
    await page.getByTestId("create-id").fill("has spaces");
    await page.getByTestId("create-submit").click();
    await expect(page.getByTestId("create-id-error")).toContainText("letters, digits");
    await expect(page.getByTestId("create-id")).toHaveValue("has spaces");

    await page.getByTestId("join-input").fill(existing.id.replace("ROOM-", ""));
    await page.getByTestId("join-submit").click();
    await expect(page).toHaveURL(`${server.url}/rooms/${existing.id}`);
    await expect(page.getByTestId("room-id")).toHaveText(existing.id);

    await page.goto(`${server.url}/`);
    await page.getByTestId("join-input").fill("nope-nope");
    await page.getByTestId("join-submit").click();
    await expect(page.getByTestId("join-error")).toHaveText("No room has the code “nope-nope”.");
  });
});

test("no page has serious or critical accessibility violations", async ({ browser }) => {
  const api = await server.api("script");
  await api.createRoom({ id: "axe-room", description: "checked by axe" });
  await api.ctx.post("/api/rooms/axe-room/frames", { data: [{ points: [[0, 0], [1, 2]] }] });
  for (const width of [390, 1280]) {
    const page = await (await browser.newContext({ viewport: { width, height: 900 } })).newPage();
    for (const path of ["/", "/rooms", "/rooms/axe-room", "/stats", "/no-such-page"]) {
      await open(page, `${server.url}${path}`);
      await connected(page);
      const results = await new AxeBuilder({ page }).analyze();
      const bad = results.violations
        .filter((v) => v.impact === "serious" || v.impact === "critical")
        .map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
      expect(bad, `${path} at ${width} px`).toEqual([]);
    }
  }
});

// The live room list and room page, end to end, with two browser contexts.
import { Browser, BrowserContext, Page, expect, test } from "@playwright/test";
import { Server, connected, open, row } from "./server";

let server: Server;

test.beforeEach(async () => {
  server = await Server.start();
});

test.afterEach(async () => {
  await server.stop();
});

async function twoUsers(browser: Browser): Promise<[BrowserContext, BrowserContext]> {
  return [await browser.newContext(), await browser.newContext()];
}

/** A creates a room through the form and lands on its page. */
async function createRoom(page: Page, id: string, description = ""): Promise<void> {
  await open(page, `${server.url}/rooms`);
  const form = page.getByTestId("create-room");
  await form.locator('input[name="id"]').fill(id);
  await form.locator('input[name="description"]').fill(description);
  await form.getByRole("button", { name: "Create" }).click();
  await expect(page).toHaveURL(new RegExp(`/rooms/${id}$`));
  await expect(page.getByTestId("host-controls")).toBeVisible();
}

test("a room created by A appears in B's list without reload", async ({ browser }) => {
  const [a, b] = await twoUsers(browser);
  const pageB = await b.newPage();
  await open(pageB, `${server.url}/rooms`);
  await connected(pageB);
  await expect(row(pageB, "fresh-room")).toHaveCount(0);

  const pageA = await a.newPage();
  await createRoom(pageA, "fresh-room", "made live");

  await expect(row(pageB, "fresh-room")).toBeVisible();
  await expect(row(pageB, "fresh-room").getByTestId("description")).toHaveText("made live");
  // A is on the room page now: B's list shows A's connection.
  await expect(row(pageB, "fresh-room").getByTestId("connections")).toHaveText("1");
});

test("A's description edit reaches B's list and B's room page", async ({ browser }) => {
  const [a, b] = await twoUsers(browser);
  const pageA = await a.newPage();
  await createRoom(pageA, "edit-me", "before");

  const listB = await b.newPage();
  await open(listB, `${server.url}/rooms`);
  const roomB = await b.newPage();
  await open(roomB, `${server.url}/rooms/edit-me`);
  await connected(listB);
  await connected(roomB);
  await expect(roomB.getByTestId("room-description")).toHaveText("before");
  await expect(roomB.getByTestId("host-controls")).toHaveCount(0);

  await pageA.getByTestId("description-input").fill("after the edit");
  await pageA.getByTestId("save-description").click();

  await expect(row(listB, "edit-me").getByTestId("description")).toHaveText("after the edit");
  await expect(roomB.getByTestId("room-description")).toHaveText("after the edit");
});

test("A locks the room and B's list shows the red lock pill", async ({ browser }) => {
  const [a, b] = await twoUsers(browser);
  const pageA = await a.newPage();
  await createRoom(pageA, "lock-me");
  const pageB = await b.newPage();
  await open(pageB, `${server.url}/rooms`);
  await connected(pageB);
  await expect(row(pageB, "lock-me").locator("[data-lock]")).toHaveCount(0);

  await pageA.getByTestId("lock").click();
  await pageA.getByTestId("lock").click(); // confirm
  const pill = row(pageB, "lock-me").locator('[data-lock="locked"]');
  await expect(pill).toBeVisible();
  await expect(pill).toHaveCSS("background-color", "rgb(214, 58, 58)");
  // A's controls now refuse changes.
  await expect(pageA.getByTestId("delete")).toBeDisabled();
});

test("A deletes the room and B, on its page, is taken back to the list", async ({ browser }) => {
  const [a, b] = await twoUsers(browser);
  const pageA = await a.newPage();
  await createRoom(pageA, "doomed");
  const pageB = await b.newPage();
  await open(pageB, `${server.url}/rooms/doomed`);
  await connected(pageB);
  await expect(pageB.getByTestId("room-id")).toHaveText("doomed");

  await pageA.getByTestId("delete").click();
  await pageA.getByTestId("delete").click(); // confirm

  await expect(pageB).toHaveURL(new RegExp("/rooms$"));
  await expect(pageB.getByTestId("notice")).toContainText("doomed was deleted");
  await expect(row(pageB, "doomed")).toHaveCount(0);
});

test("hidden rooms show only with the toggle, and the default room is marked", async ({ browser }) => {
  const api = await server.api("script");
  await api.createRoom({ id: "out-in-the-open" });
  await api.createRoom({ id: "tucked-away", hidden: true });
  const [b] = await twoUsers(browser);
  const page = await b.newPage();
  await open(page, `${server.url}/rooms`);
  await connected(page);

  await expect(row(page, "out-in-the-open")).toBeVisible();
  await expect(row(page, "tucked-away")).toHaveCount(0);
  await page.getByTestId("show-hidden").check();
  await expect(row(page, "tucked-away")).toBeVisible();
  await page.getByTestId("show-hidden").uncheck();
  await expect(row(page, "tucked-away")).toHaveCount(0);

  // Hiding a room live takes it off the list.
  await api.patchRoom("out-in-the-open", { hidden: true });
  await expect(row(page, "out-in-the-open")).toHaveCount(0);
  await api.patchRoom("out-in-the-open", { hidden: false });
  await expect(row(page, "out-in-the-open")).toBeVisible();

  const res = await api.ctx.put("/api/default-room", { data: { roomId: "out-in-the-open" } });
  expect(res.status()).toBe(200);
  await expect(row(page, "out-in-the-open").getByTestId("default-marker")).toBeVisible();
  // The default room leads the list.
  await expect(page.locator("tbody tr").first()).toHaveAttribute("data-room-id", "out-in-the-open");

  // The filter box narrows the list.
  await page.getByTestId("filter").fill("open");
  await expect(page.locator("tbody tr")).toHaveCount(1);
});

test("the description field counts its characters up to the limit", async ({ page }) => {
  await open(page, `${server.url}/rooms`);
  const form = page.getByTestId("create-room");
  await form.locator('input[name="description"]').fill("hello");
  await expect(form.getByTestId("description-count")).toHaveText("5/500");
  await form.locator('input[name="description"]').fill("x".repeat(500));
  await expect(form.getByTestId("description-count")).toHaveText("500/500");
});

test("joining by code ignores case and the ROOM- prefix", async ({ browser }) => {
  const api = await server.api("script");
  const room = await api.createRoom({ description: "by code" });
  const code: string = room.id.slice("ROOM-".length);
  const [b] = await twoUsers(browser);
  const page = await b.newPage();
  await open(page, `${server.url}/rooms`);
  const form = page.getByTestId("join-code");
  await form.locator('input[name="code"]').fill(code.toLowerCase());
  await form.getByRole("button", { name: "Join" }).click();
  await expect(page).toHaveURL(new RegExp(`/rooms/${room.id}$`));
  await expect(page.getByTestId("room-description")).toHaveText("by code");

  await open(page, `${server.url}/rooms`);
  await form.locator('input[name="code"]').fill("ZZZZZZ");
  await form.getByRole("button", { name: "Join" }).click();
  await expect(form.getByRole("alert")).toContainText("No room");
});

test("an unknown room shows the 404 page", async ({ page }) => {
  const res = await page.goto(`${server.url}/rooms/no-such-room`);
  expect(res?.status()).toBe(404);
  await expect(page.getByTestId("not-found")).toBeVisible();
});

test("list → room → list → another room uses one WebSocket and stays live", async ({ browser }) => {
  const api = await server.api("script");
  await api.createRoom({ id: "first-room", description: "one" });
  await api.createRoom({ id: "second-room", description: "two" });
  const [b] = await twoUsers(browser);
  const page = await b.newPage();
  const sockets: string[] = [];
  page.on("websocket", (ws) => sockets.push(ws.url()));

  await open(page, `${server.url}/rooms`);
  await connected(page);
  await api.patchRoom("first-room", { description: "one, live on the list" });
  await expect(row(page, "first-room").getByTestId("description")).toHaveText("one, live on the list");

  await row(page, "first-room").getByRole("link").click();
  await expect(page).toHaveURL(/\/rooms\/first-room$/);
  await expect(page.getByTestId("connection-count")).toHaveText("1");
  await api.patchRoom("first-room", { description: "one, live in the room" });
  await expect(page.getByTestId("room-description")).toHaveText("one, live in the room");

  await page.getByRole("link", { name: "Rooms" }).click();
  await expect(page).toHaveURL(/\/rooms$/);
  await api.patchRoom("second-room", { description: "two, live on the list" });
  await expect(row(page, "second-room").getByTestId("description")).toHaveText("two, live on the list");
  // Leaving the room page left the room channel.
  await expect(row(page, "first-room").getByTestId("connections")).toHaveText("0");

  await row(page, "second-room").getByRole("link").click();
  await expect(page).toHaveURL(/\/rooms\/second-room$/);
  await api.patchRoom("second-room", { description: "two, live in the room" });
  await expect(page.getByTestId("room-description")).toHaveText("two, live in the room");

  expect(sockets).toHaveLength(1);
  expect(sockets[0]).toMatch(/\/ws$/);
});

test("after a server restart an open page reconnects and shows later changes", async ({ browser }) => {
  const api = await server.api("script");
  await api.createRoom({ id: "survivor", description: "before restart" });
  const [b] = await twoUsers(browser);
  const room = await b.newPage();
  await open(room, `${server.url}/rooms/survivor`);
  const list = await b.newPage();
  await open(list, `${server.url}/rooms`);
  await connected(room);
  await connected(list);

  await server.kill();
  await expect(room.getByTestId("connection")).toHaveAttribute("data-state", "reconnecting");
  await server.spawn();
  await connected(room);
  await connected(list);

  await api.patchRoom("survivor", { description: "after restart" });
  await expect(room.getByTestId("room-description")).toHaveText("after restart");
  await expect(row(list, "survivor").getByTestId("description")).toHaveText("after restart");
  await api.createRoom({ id: "born-after-restart" });
  await expect(row(list, "born-after-restart")).toBeVisible();
});

test("text from users is shown as text, never run", async ({ browser }) => {
  const api = await server.api("<b>mallory</b>");
  const nasty = `<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">`;
  await api.createRoom({ id: "xss", description: nasty });
  const page = await (await browser.newContext()).newPage();
  const dialogs: string[] = [];
  page.on("dialog", (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  await open(page, `${server.url}/rooms`);
  await connected(page);
  await expect(row(page, "xss").getByTestId("description")).toHaveText(nasty);
  await api.patchRoom("xss", { description: `${nasty} (live)` });
  await expect(row(page, "xss").getByTestId("description")).toHaveText(`${nasty} (live)`);
  await open(page, `${server.url}/rooms/xss`);
  await expect(page.getByTestId("room-description")).toHaveText(`${nasty} (live)`);
  await expect(page.getByTestId("room-host")).toHaveText("<b>mallory</b>");
  expect(await page.locator("main img").count()).toBe(0);
  expect(await page.evaluate(() => (window as any).__pwned)).toBeUndefined();
  expect(dialogs).toEqual([]);
});

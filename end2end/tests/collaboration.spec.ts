// Upload under the temporary lock, presenting, and chat, two contexts.
import { expect, test } from "@playwright/test";
import { Server, connected, open, row } from "./server";

let server: Server;

test.beforeEach(async () => {
  server = await Server.start();
});

test.afterEach(async () => {
  await server.stop();
});

/** Records every text the temporary-lock pills show on a page. */
async function recordPills(page: import("@playwright/test").Page): Promise<void> {
  await page.evaluate(() => {
    const seen: string[] = ((window as any).__pills = []);
    const grab = () =>
      document.querySelectorAll('[data-lock="temporary"]').forEach((el) => {
        const text = el.textContent ?? "";
        if (seen[seen.length - 1] !== text) seen.push(text);
      });
    new MutationObserver(grab).observe(document.body, { subtree: true, childList: true, characterData: true });
  });
}

test("an upload shows the yellow pill with progress to others and the frame count rises", async ({ browser }) => {
  const a = await (await browser.newContext()).newPage();
  await open(a, `${server.url}/rooms`);
  const form = a.getByTestId("create-room");
  await form.locator('input[name="id"]').fill("uploads");
  await form.getByRole("button", { name: "Create" }).click();
  await expect(a.getByTestId("host-controls")).toBeVisible();
  await connected(a);
  const userA = (await a.getByTestId("user-name").textContent()) ?? "";

  const bContext = await browser.newContext();
  const list = await bContext.newPage();
  await open(list, `${server.url}/rooms`);
  const room = await bContext.newPage();
  await open(room, `${server.url}/rooms/uploads`);
  await connected(list);
  await connected(room);
  await recordPills(list);
  await recordPills(room);

  const frames = Array.from({ length: 1000 }, (_, i) => ({ points: [[i, i % 7], [i + 1, (i * 3) % 11]] }));
  await a.getByTestId("upload-input").setInputFiles({
    name: "frames.json",
    mimeType: "application/json",
    buffer: Buffer.from(JSON.stringify(frames)),
  });
  await expect(a.getByTestId("upload-status")).toHaveText("1000/1000 frames", { timeout: 30000 });

  await expect(row(list, "uploads").getByTestId("frame-count")).toHaveText("1000");
  await expect(room.getByTestId("room-frame-count")).toHaveText("1000");
  // The lock is released at the end.
  await expect(row(list, "uploads").locator('[data-lock="temporary"]')).toHaveCount(0);
  for (const page of [list, room]) {
    const pills: string[] = await page.evaluate(() => (window as any).__pills);
    expect(pills.length).toBeGreaterThan(0);
    for (const text of pills) expect(text).toMatch(new RegExp(`^Uploading \\d+/1000 frames by ${userA}$`));
  }
  // The viewer draws frames shaped {"points": ...} as a scatter plot.
  await expect(room.getByTestId("scatter")).toBeVisible();
  await expect(room.locator('[data-testid="scatter"] circle')).toHaveCount(2);
});

test("A presents and steps frames; B follows and can stop following", async ({ browser }) => {
  const api = await server.api("script");
  await api.createRoom({ id: "lecture" });
  const res = await api.ctx.post("/api/rooms/lecture/frames", { data: [{ n: 0 }, { n: 1 }, { n: 2 }, { n: 3 }] });
  expect(res.status()).toBe(200);
  const a = await (await browser.newContext()).newPage();
  const b = await (await browser.newContext()).newPage();
  await open(a, `${server.url}/rooms/lecture`);
  await open(b, `${server.url}/rooms/lecture`);
  await connected(a);
  await connected(b);
  await expect(b.getByTestId("frame-index")).toHaveText("Frame 1 / 4");

  await a.getByTestId("present").click();
  await expect(a.getByTestId("present")).toHaveText("Stop presenting");
  const nameA = (await a.getByTestId("user-name").textContent()) ?? "";
  await expect(b.getByTestId("following")).toHaveText(`following ${nameA}`);
  await a.getByTestId("next-frame").click();
  await a.getByTestId("next-frame").click();
  await expect(b.getByTestId("frame-index")).toHaveText("Frame 3 / 4");
  await expect(b.getByTestId("frame-json")).toContainText('"n": 2');

  await b.getByTestId("toggle-follow").click();
  await a.getByTestId("next-frame").click();
  await expect(a.getByTestId("frame-index")).toHaveText("Frame 4 / 4");
  await b.waitForTimeout(300);
  await expect(b.getByTestId("frame-index")).toHaveText("Frame 3 / 4");
  await b.getByTestId("toggle-follow").click();
  await expect(b.getByTestId("frame-index")).toHaveText("Frame 4 / 4");

  await a.getByTestId("present").click();
  await expect(b.getByTestId("following")).toHaveCount(0);
});

test("chat goes both ways, edits show, and history survives a reload", async ({ browser }) => {
  const api = await server.api("script");
  await api.createRoom({ id: "talk" });
  const a = await (await browser.newContext()).newPage();
  const b = await (await browser.newContext()).newPage();
  await open(a, `${server.url}/rooms/talk`);
  await open(b, `${server.url}/rooms/talk`);
  await connected(a);
  await connected(b);

  await a.getByTestId("chat-input").fill("hello from A <img src=x onerror=alert(1)>");
  await a.getByTestId("chat-send").click();
  await expect(b.getByTestId("chat-text").last()).toHaveText("hello from A <img src=x onerror=alert(1)>");
  await b.getByTestId("chat-input").fill("hi A, B here");
  await b.getByTestId("chat-send").click();
  await expect(a.getByTestId("chat-text").last()).toHaveText("hi A, B here");
  await expect(a.locator('[data-testid="chat-messages"] img')).toHaveCount(0);
  // Each message shows its time on the reader's clock.
  const time = b.getByTestId("chat-time").last();
  await expect(time).toHaveText(/^\d\d:\d\d$/);
  const sent = await time.getAttribute("datetime");
  const local = await b.evaluate((t) => {
    const d = new Date(Number(t) * 1000);
    return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
  }, sent);
  await expect(time).toHaveText(local);

  await a.getByTestId("chat-edit").first().click();
  await a.getByTestId("chat-edit-input").fill("hello from A (edited)");
  await a.getByRole("button", { name: "Save" }).click();
  await expect(b.getByTestId("chat-text").first()).toHaveText("hello from A (edited)");

  await b.reload();
  await b.waitForSelector('body[data-hydrated="true"]');
  await expect(b.getByTestId("chat-text")).toHaveText(["hello from A (edited)", "hi A, B here"]);
});

// Presence, quick match and idle cleanup in the browser, two contexts.
import { expect, test } from "@playwright/test";
import { Server, connected, open } from "./server";

let server: Server;

test.afterEach(async () => {
  await server.stop();
});

test("the presence list updates when users join and leave", async ({ browser }) => {
  server = await Server.start();
  const api = await server.api("script");
  await api.createRoom({ id: "gathering", maxMembers: 4 });
  const a = await (await browser.newContext()).newPage();
  await open(a, `${server.url}/rooms/gathering`);
  await connected(a);
  await expect(a.locator('[data-testid="presence"] li')).toHaveCount(1);

  const bContext = await browser.newContext();
  const b = await bContext.newPage();
  await open(b, `${server.url}/rooms/gathering`);
  await expect(a.locator('[data-testid="presence"] li')).toHaveCount(2);
  await expect(a.getByTestId("seat-counter")).toHaveText("2/4 seats");
  // A second tab of B shows as one person with two tabs.
  const b2 = await bContext.newPage();
  await open(b2, `${server.url}/rooms/gathering`);
  await expect(a.locator('[data-testid="presence"] li')).toHaveCount(2);
  await expect(a.locator('[data-testid="presence"] li').nth(1)).toContainText("2 tabs");

  await b.close();
  await b2.close();
  await expect(a.locator('[data-testid="presence"] li')).toHaveCount(1);
  await expect(a.getByTestId("connection-count")).toHaveText("1");
});

test("a full room says so and offers to try again or go back", async ({ browser }) => {
  server = await Server.start();
  const api = await server.api("script");
  await api.createRoom({ id: "solo", maxMembers: 1, allowSpectators: false });
  const a = await (await browser.newContext()).newPage();
  await open(a, `${server.url}/rooms/solo`);
  await connected(a);
  await expect(a.locator('[data-testid="presence"] li')).toHaveCount(1);

  const b = await (await browser.newContext()).newPage();
  await open(b, `${server.url}/rooms/solo`);
  const problem = b.getByTestId("join-problem");
  await expect(problem).toContainText("This room is full");
  await expect(problem).toHaveAttribute("data-code", "full");
  // No dead controls: no presence list, chat or frames while not in.
  await expect(b.getByTestId("presence")).toHaveCount(0);
  await expect(b.getByTestId("chat-input")).toHaveCount(0);

  // Once there is a seat, trying again works.
  await api.patchRoom("solo", { maxMembers: 2 });
  await b.getByTestId("join-again").click();
  await expect(problem).toHaveCount(0);
  await expect(b.locator('[data-testid="presence"] li')).toHaveCount(2);
});

test("a full room that allows spectators lets the next user watch, and says so", async ({ browser }) => {
  server = await Server.start();
  const api = await server.api("script");
  await api.createRoom({ id: "stage", maxMembers: 1, allowSpectators: true });
  const a = await (await browser.newContext()).newPage();
  await open(a, `${server.url}/rooms/stage`);
  await connected(a);
  await expect(a.getByTestId("spectating")).toHaveCount(0);
  const b = await (await browser.newContext()).newPage();
  await open(b, `${server.url}/rooms/stage`);
  await expect(b.getByTestId("spectating")).toContainText("watching as a spectator");
  await expect(a.locator('[data-testid="presence"] li[data-role="spectator"]')).toHaveCount(1);
});

test("quick match puts two users in the same room", async ({ browser }) => {
  server = await Server.start();
  const a = await (await browser.newContext()).newPage();
  const b = await (await browser.newContext()).newPage();
  await open(a, `${server.url}/`);
  await open(b, `${server.url}/`);
  await connected(a);
  await connected(b);
  await a.getByTestId("match-2").click();
  await expect(a).toHaveURL(/\/rooms\/ROOM-[A-Z0-9]{6}$/);
  await b.getByTestId("match-2").click();
  await expect(b).toHaveURL(a.url());
  await expect(a.getByTestId("seat-counter")).toHaveText("2/2 seats");
  await expect(b.locator('[data-testid="presence"] li')).toHaveCount(2);
  // The host (A) can start the full room; B sees it.
  await a.getByTestId("start").click();
  await expect(b.getByTestId("status-badge")).toHaveText("active");
});

test("the idle warning counts down, keep clears it, and a closed room sends viewers to the list", async ({ browser }) => {
  server = await Server.start(["--room-idle-seconds", "6", "--room-warning-seconds", "4"]);
  const api = await server.api("script");
  await api.createRoom({ id: "drowsy" });
  const page = await (await browser.newContext()).newPage();
  await open(page, `${server.url}/rooms/drowsy`);
  await connected(page);

  const banner = page.getByTestId("idle-warning");
  await expect(banner).toBeVisible({ timeout: 8000 });
  const first = Number(await page.getByTestId("countdown").textContent());
  expect(first).toBeGreaterThan(0);
  expect(first).toBeLessThanOrEqual(4);
  await expect.poll(async () => Number(await page.getByTestId("countdown").textContent())).toBeLessThan(first);
  await page.getByTestId("keep-room").click();
  await expect(banner).toHaveCount(0);

  // Left alone, the room warns again, then closes.
  await expect(banner).toBeVisible({ timeout: 8000 });
  await expect(page).toHaveURL(/\/rooms$/, { timeout: 10000 });
  await expect(page.getByTestId("notice")).toContainText("drowsy was closed after inactivity");
});

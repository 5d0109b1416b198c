// Two browser contexts on two different servers sharing one Redis: each
// sees the other's changes live.
import { expect, test } from "@playwright/test";
import { Server, connected, open, row } from "./server";

let a: Server;
let b: Server;

test.beforeEach(async () => {
  [a, b] = await Server.startPair();
});

test.afterEach(async () => {
  await a.stop();
  await b.stop();
});

test("users on two servers see each other's changes live", async ({ browser }) => {
  const ctxA = await browser.newContext();
  const ctxB = await browser.newContext();

  // B watches the room list on server B.
  const listB = await ctxB.newPage();
  await open(listB, `${b.url}/rooms`);
  await connected(listB);

  // A creates a room on server A through the form.
  const pageA = await ctxA.newPage();
  await open(pageA, `${a.url}/rooms`);
  const form = pageA.getByTestId("create-room");
  await form.locator('input[name="id"]').fill("across");
  await form.locator('input[name="description"]').fill("made on A");
  await form.getByRole("button", { name: "Create" }).click();
  await expect(pageA).toHaveURL(/\/rooms\/across$/);
  await connected(pageA);

  // It shows up live in B's list, with A's connection counted.
  await expect(row(listB, "across")).toBeVisible();
  await expect(row(listB, "across").getByTestId("description")).toHaveText("made on A");
  await expect(row(listB, "across").getByTestId("connections")).toHaveText("1");

  // B opens the room on server B: both see both in the presence list.
  const roomB = await ctxB.newPage();
  await open(roomB, `${b.url}/rooms/across`);
  await connected(roomB);
  await expect(roomB.locator('[data-testid="presence"] li')).toHaveCount(2);
  await expect(pageA.locator('[data-testid="presence"] li')).toHaveCount(2);
  await expect(row(listB, "across").getByTestId("connections")).toHaveText("2");

  // A's description edit on A reaches B's room page and list.
  await pageA.getByTestId("description-input").fill("edited on A");
  await pageA.getByTestId("save-description").click();
  await expect(roomB.getByTestId("room-description")).toHaveText("edited on A");
  await expect(row(listB, "across").getByTestId("description")).toHaveText("edited on A");

  // Chat both ways.
  await roomB.getByTestId("chat-input").fill("hello from server B");
  await roomB.getByTestId("chat-send").click();
  await expect(pageA.getByTestId("chat-text").last()).toHaveText("hello from server B");
  await pageA.getByTestId("chat-input").fill("and back from A");
  await pageA.getByTestId("chat-send").click();
  await expect(roomB.getByTestId("chat-text").last()).toHaveText("and back from A");

  // B leaves: A's presence list shrinks.
  await roomB.close();
  await expect(pageA.locator('[data-testid="presence"] li')).toHaveCount(1);
});

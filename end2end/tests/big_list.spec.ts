// The room list at 20,000 rooms: the page stays small and live, search
// runs on the server, and a room made elsewhere shows up when it falls in
// the window the browser watches.
import { expect, test } from "@playwright/test";
import { Server, connected, open, row } from "./server";

const ROOMS = 20_000;
let server: Server;

test.beforeAll(async () => {
  test.setTimeout(300_000);
  server = await Server.start([
    "--max-rooms", "30000",
    "--rest-rate-per-second", "1000000",
    "--rest-rate-burst", "1000000",
  ]);
  // Plain fetch, not Playwright's request API: 20,000 calls would fill
  // the trace.
  const api = await server.api("seeder");
  const headers = { Authorization: `Bearer ${api.token}`, "Content-Type": "application/json" };
  let next = 0;
  const worker = async () => {
    while (next < ROOMS) {
      const i = next++;
      const id = `big-${String(i).padStart(5, "0")}`;
      const body = JSON.stringify({ id, description: `room number ${i}` });
      const res = await fetch(`${server.url}/api/rooms`, { method: "POST", headers, body });
      // A plain check: 20,000 expect() steps would fill the trace too.
      if (res.status !== 201) throw new Error(`creating ${id}: ${res.status} ${await res.text()}`);
      await res.arrayBuffer(); // read, so its connection serves the next one
    }
  };
  const started = Date.now();
  await Promise.all(Array.from({ length: 32 }, worker));
  console.log(`seeded ${ROOMS} rooms in ${Date.now() - started} ms`);
});

test.afterAll(async () => {
  await server.stop();
});

test("20,000 rooms: a small first page, server-side search, live entries", async ({ browser }) => {
  test.setTimeout(120_000);
  const html = await (await fetch(`${server.url}/rooms`)).text();
  expect(html.length).toBeLessThan(150_000);

  const page = await (await browser.newContext()).newPage();
  await open(page, `${server.url}/rooms`);
  await connected(page);
  await expect(page.getByTestId("room-count")).toHaveText(`Rooms 1–50 of ${ROOMS}`);
  await expect(page.locator("tbody tr")).toHaveCount(50);
  // Newest first (the rooms were made 32 at a time: ask the API which).
  const first = await (await fetch(`${server.url}/api/rooms?sort=newest&hidden=false&limit=50`)).json();
  const second = await (await fetch(`${server.url}/api/rooms?sort=newest&hidden=false&limit=50&after=${first.next}`)).json();
  await expect(page.locator("tbody tr").first()).toHaveAttribute("data-room-id", first.rooms[0].id);

  // Pages go on from the cursor and back.
  await page.getByTestId("older").click();
  await expect(page.getByTestId("room-count")).toHaveText(`Rooms 51–100 of ${ROOMS}`);
  await expect(page.locator("tbody tr").first()).toHaveAttribute("data-room-id", second.rooms[0].id);
  await page.getByTestId("newer").click();
  await expect(page.locator("tbody tr").first()).toHaveAttribute("data-room-id", first.rooms[0].id);

  // Search finds one room among 20,000.
  await page.getByTestId("filter").fill("big-01234");
  await expect(page.locator("tbody tr")).toHaveCount(1);
  await expect(row(page, "big-01234")).toBeVisible();
  await expect(page.getByTestId("room-count")).toHaveText("Rooms 1–1 of 1");

  // A room created elsewhere that matches the search enters the window.
  await page.getByTestId("filter").fill("kingfisher");
  await expect(page.getByTestId("room-count")).toHaveText("No rooms");
  const api = await server.api("elsewhere");
  await api.createRoom({ id: "kingfisher-nest", description: "made by a script" });
  await expect(row(page, "kingfisher-nest")).toBeVisible();
  await expect(page.getByTestId("room-count")).toHaveText("Rooms 1–1 of 1");

  // Without a search, a new room enters at the top of the first page and
  // pushes the last one out.
  await page.getByTestId("filter").fill("");
  await expect(page.locator("tbody tr").first()).toHaveAttribute("data-room-id", "kingfisher-nest");
  await api.createRoom({ id: "newest-of-all" });
  await expect(page.locator("tbody tr").first()).toHaveAttribute("data-room-id", "newest-of-all");
  await expect(page.locator("tbody tr")).toHaveCount(50);
  await expect(page.getByTestId("room-count")).toHaveText(`Rooms 1–50 of ${ROOMS + 2}`);

  // A change of a room in the window reaches the page.
  await api.patchRoom("newest-of-all", { description: "changed live" });
  await expect(row(page, "newest-of-all").getByTestId("description")).toHaveText("changed live");
});

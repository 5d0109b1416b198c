// On a phone (390 px wide) no page is wider than the screen.
import { expect, test } from "@playwright/test";
import { Server, connected, open } from "./server";

let server: Server;

test.beforeEach(async () => {
  server = await Server.start();
});

test.afterEach(async () => {
  await server.stop();
});

test("at 360 and 390 px no page scrolls sideways", async ({ browser }) => {
  const api = await server.api("a-rather-long-user-name-for-a-phone");
  await api.createRoom({ id: "a-room-with-a-long-name-on-a-phone", description: "word ".repeat(60) });
  await api.createRoom({ id: "second", description: "Averyveryverylongwordwithoutanyspacesinsideitatallthatmustwrap" });
  for (const width of [360, 390]) {
    const context = await browser.newContext({ viewport: { width, height: 844 } });
    const page = await context.newPage();
    for (const path of ["/", "/rooms", "/rooms/a-room-with-a-long-name-on-a-phone", "/stats"]) {
      await open(page, `${server.url}${path}`);
      await connected(page);
      const [scroll, inner] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
      expect(scroll, `${path} is ${scroll} px wide on a ${inner} px screen`).toBeLessThanOrEqual(inner);
    }
    await context.close();
  }
});

// Screenshots of each page at phone and laptop widths (docs/screenshots).
const { chromium } = require("playwright-core");
const url = "http://127.0.0.1:3997";
(async () => {
  const post = async (path, body, token) => (await fetch(url + path, { method: "POST", headers: { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) })).json();
  const alice = await post("/api/session", { userName: "alice" });
  await post("/api/rooms", { id: "design-review", description: "Weekly design review: step through the frames together" }, alice.token);
  await post("/api/rooms", { id: "standup", description: "Morning standup" }, alice.token);
  await post("/api/rooms", { description: "A room made by a script" }, alice.token);
  await post("/api/rooms/design-review/frames", [{ step: 1, x: [1, 2, 3] }, { step: 2, x: [2, 3, 4] }, { step: 3, x: [3, 4, 5] }], alice.token);
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
  for (const [name, viewport] of [["phone", { width: 390, height: 844 }], ["laptop", { width: 1280, height: 800 }]]) {
    const page = await (await browser.newContext({ viewport })).newPage();
    for (const [shot, path] of [["lobby", "/"], ["rooms", "/rooms"], ["room", "/rooms/design-review"], ["stats", "/stats"]]) {
      await page.goto(url + path);
      await page.waitForSelector('body[data-hydrated="true"]');
      await page.waitForSelector('[data-testid="connection"][data-state="connected"]');
      await page.waitForTimeout(500);
      await page.screenshot({ path: `${__dirname}/../docs/screenshots/${shot}-${name}.png` });
    }
  }
  await browser.close();
})();

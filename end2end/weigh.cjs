// The bytes a first visit to a page transfers (headers and encoded
// bodies of every response, empty cache), and again with the cache warm.
// Usage: node end2end/weigh.cjs http://127.0.0.1:3000/rooms
const { chromium } = require("playwright-core");
const target = process.argv[2] ?? "http://127.0.0.1:3000/rooms";
async function visit(page) {
  const sizes = [];
  const listener = (request) => sizes.push(request);
  page.on("requestfinished", listener);
  await page.goto(target);
  await page.waitForSelector('body[data-hydrated="true"]');
  await page.waitForSelector('[data-testid="connection"][data-state="connected"]');
  await page.waitForTimeout(300);
  page.off("requestfinished", listener);
  let total = 0;
  const rows = [];
  for (const request of sizes) {
    const s = await request.sizes();
    const bytes = s.responseHeadersSize + s.responseBodySize;
    const cached = (await request.response())?.fromServiceWorker() ? " (sw)" : "";
    total += bytes;
    rows.push(`${String(bytes).padStart(9)}  ${new URL(request.url()).pathname}${cached}`);
  }
  return { total, rows };
}
(async () => {
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox", "--disable-background-networking"] });
  const page = await (await browser.newContext()).newPage();
  for (const label of ["first visit", "second visit"]) {
    const { total, rows } = await visit(page);
    console.log(`${label}: ${total} bytes`);
    rows.forEach((r) => console.log(r));
  }
  await browser.close();
})();

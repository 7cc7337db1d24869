// Shared by the page's end-to-end test and benchmark: Debian's headless Chromium with WebGPU
// on (its adapter here is SwiftShader), a page that logs its console, and a wait for the
// page's state (body[data-state]: loading, training, done, failed).
import puppeteer from "puppeteer-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

export async function launch({ webgpu = true } = {}) {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "soma-chromium-"));
  const args = [
    "--no-first-run", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--disable-dev-shm-usage", "--window-size=1100,1000",
    // Chromium refuses to run as root with its sandbox.
    ...(process.getuid?.() === 0 ? ["--no-sandbox"] : []),
    // Software adapters (SwiftShader here) are blocklisted without it.
    ...(webgpu ? ["--enable-unsafe-webgpu"] : []),
  ];
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir,
    args,
    defaultViewport: { width: 1100, height: 1000 },
    protocolTimeout: 900_000,
  });
  browser.on("disconnected", () => {
    try {
      fs.rmSync(userDataDir, { recursive: true, force: true, maxRetries: 5 });
    } catch {
      // Chromium may still be writing its profile as it exits; a leftover temp dir is harmless.
    }
  });
  return browser;
}

export async function openPage(browser, url, log = (line) => console.error(line)) {
  const page = await browser.newPage();
  page.on("console", (m) => log(`[console.${m.type()}] ${m.text()}`));
  page.on("pageerror", (e) => log(`[pageerror] ${e.message}`));
  await page.goto(url, { waitUntil: "load" });
  return page;
}

// Waits until the page is done or failed; returns the state and the page's result.
export async function waitForRun(page, timeoutMs) {
  await page.waitForFunction(() => ["done", "failed"].includes(document.body.dataset.state), {
    timeout: timeoutMs,
    polling: 250,
  });
  const state = await page.evaluate(() => document.body.dataset.state);
  const status = await page.$eval("#status", (e) => e.textContent);
  const result = await page.$eval("#result", (e) => e.textContent);
  return { state, status, result: result ? JSON.parse(result) : null };
}

// Clicks the page's Save checkpoint button and waits for the download `name` in `dir`;
// returns its path, or null if it did not come within a minute.
export async function saveCheckpoint(page, dir, name) {
  const cdp = await page.createCDPSession();
  await cdp.send("Browser.setDownloadBehavior", { behavior: "allow", downloadPath: dir, eventsEnabled: true });
  const saved = path.join(dir, name);
  fs.rmSync(saved, { force: true });
  await page.click("#save");
  const deadline = Date.now() + 60_000;
  while (!fs.existsSync(saved) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  return fs.existsSync(saved) ? saved : null;
}

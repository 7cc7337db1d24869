// The page, end to end, in Debian's headless Chromium (puppeteer-core):
//  1. a native CPU run of one epoch with the page's settings gives the reference accuracy and
//     a natively trained checkpoint;
//  2. the page as a user opens it (`auto`: WebGPU on a hardware adapter, else the CPU backend in
//     wasm, saying why) and with `?backend=gpu` (WebGPU on whatever adapter there is) each train
//     one epoch of real MNIST; each must land within 0.5 points of the native accuracy;
//  2b. the `tfjs` CNN (?model=tfjs) as opened and on WebGPU, each within 0.5 points of a native
//     run with the same settings, a drawn 7 read as native `predict` reads it from the
//     page's checkpoint, a screenshot in page-cnn.png;
//  3. digits drawn with mouse events are read, and the same pictures read by the native
//     `predict` example with the checkpoint the page saves give the same answer;
//  4. the native checkpoint loads into the page and reads the same pictures as natively;
//  5. without --enable-unsafe-webgpu the page says why it trains on the CPU;
// and a screenshot is saved. Usage: node test.mjs OUT_DIR (run from the repository root with the
// `mnist`, `predict` and `serve` examples built and web/pkg built; web/test.sh does all that).
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { launch, openPage, saveCheckpoint, waitForRun } from "./open.mjs";

const out = path.resolve(process.argv[2] ?? "target/web/e2e");
fs.mkdirSync(out, { recursive: true });
const EXAMPLES = "target/release/examples";
const EPOCH_MS = 900_000;
const TOLERANCE = 0.005; // the bound: within half a point of the native run

let failures = 0;
function check(ok, what) {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
  if (!ok) failures++;
}

function native(example, args) {
  const stdout = execFileSync(`${EXAMPLES}/${example}`, args, { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  return stdout.trim().split("\n").map((l) => JSON.parse(l));
}

async function serve() {
  const child = spawn(`${EXAMPLES}/serve`, ["--port", "0", "--offline"], { stdio: ["ignore", "pipe", "inherit"] });
  const url = await new Promise((resolve, reject) => {
    child.stdout.once("data", (d) => resolve(String(d).trim().replace(/^serving /, "")));
    child.once("exit", (code) => reject(new Error(`serve exited with ${code}`)));
  });
  return { url, stop: () => child.kill() };
}

// Strokes in the 280×280 canvas's pixels for digits that a network one epoch old reads reliably.
const DIGITS = {
  1: [[[140, 40], [140, 240]]],
  0: [Array.from({ length: 41 }, (_, i) => [140 + 60 * Math.sin((i * Math.PI) / 20), 140 - 95 * Math.cos((i * Math.PI) / 20)])],
  7: [[[70, 50], [210, 50], [120, 240]]],
};

async function draw(page, digit) {
  await page.click("#clear");
  const box = await (await page.$("#draw")).boundingBox();
  for (const stroke of DIGITS[digit]) {
    const [x0, y0] = stroke[0];
    await page.mouse.move(box.x + x0, box.y + y0);
    await page.mouse.down();
    for (let i = 1; i < stroke.length; i++) {
      const [x, y] = stroke[i];
      await page.mouse.move(box.x + x, box.y + y, { steps: 8 });
    }
    await page.mouse.up();
  }
  await page.waitForFunction(() => document.body.dataset.readings === "0" && document.getElementById("guesses").dataset.top !== undefined, { timeout: 60_000 });
  const top = await page.$$eval("#guesses li", (lis) => lis.map((li) => ({ name: li.dataset.label, text: `${li.dataset.label} (${li.lastChild.textContent})` })));
  const png = path.join(out, `drawn-${digit}.png`);
  const dataUrl = await page.$eval("#draw", (c) => c.toDataURL("image/png"));
  fs.writeFileSync(png, Buffer.from(dataUrl.split(",")[1], "base64"));
  return { top, png };
}

// The page's three guesses against the native `predict` example's on the same picture.
function samePrediction(reading, checkpoint, what) {
  const [n] = native("predict", ["--load", checkpoint, "--json", "--backend", "cpu", reading.png]);
  const nativeTop = n.top.map((t) => t.class);
  const pageTop = reading.top.map((t) => t.name);
  check(JSON.stringify(nativeTop) === JSON.stringify(pageTop), `${what}: page reads ${pageTop.join(",")}, native predict ${nativeTop.join(",")}`);
}

async function trainOnce(browser, url, what) {
  const page = await openPage(browser, url);
  const run = await waitForRun(page, EPOCH_MS);
  check(run.state === "done", `${what}: trained (${run.status})`);
  return { page, run };
}

const started = Date.now();
const nativeCkpt = path.join(out, "native.safetensors");
const [reference] = native("mnist", ["--backend", "cpu", "--epochs", "1", "--offline", "--save", nativeCkpt]).slice(-1);
console.log(`native CPU, 1 epoch: test accuracy ${(100 * reference.test_accuracy).toFixed(2)}%`);

const server = await serve();
const browser = await launch({ webgpu: true });
try {
  // As a user opens it.
  const auto = await trainOnce(browser, `${server.url}?epochs=1`, "page (auto)");
  const a = auto.run.result;
  check(Math.abs(a.testAccuracy - reference.test_accuracy) <= TOLERANCE, `page (auto) accuracy ${(100 * a.testAccuracy).toFixed(2)}% vs native ${(100 * reference.test_accuracy).toFixed(2)}%`);
  console.log(`page (auto): ${a.fallback ? "CPU (" + a.fallback + ")" : "WebGPU"}; ${Math.round(a.medianSamplesPerSecond)} samples/s, first loss back ${a.dataToFirstLossMs.toFixed(0)} ms after the data`);
  await auto.page.close();

  // On WebGPU whatever the adapter.
  const gpu = await trainOnce(browser, `${server.url}?epochs=1&backend=gpu`, "page (WebGPU)");
  const g = gpu.run.result;
  check(!g.fallback && /BrowserWebGpu/.test(g.backend), `page (WebGPU) trained on WebGPU: ${g.backend.slice(0, 60)}`);
  check(Math.abs(g.testAccuracy - reference.test_accuracy) <= TOLERANCE, `page (WebGPU) accuracy ${(100 * g.testAccuracy).toFixed(2)}% vs native ${(100 * reference.test_accuracy).toFixed(2)}%`);
  console.log(`page (WebGPU): ${Math.round(g.medianSamplesPerSecond)} samples/s, first loss back ${g.dataToFirstLossMs.toFixed(0)} ms after the data`);

  // Drawn digits, and the checkpoint the page saves read natively.
  const page = gpu.page;
  const saved = await saveCheckpoint(page, out, "soma-mnist.safetensors");
  check(saved, "the page saved its checkpoint");
  const readings = {};
  for (const digit of Object.keys(DIGITS)) {
    readings[digit] = await draw(page, digit);
    const top = readings[digit].top[0];
    check(top.name === digit, `drawn ${digit} read as ${top.text}`);
    if (saved) samePrediction(readings[digit], saved, `drawn ${digit}, page's checkpoint`);
  }
  await page.screenshot({ path: path.join(out, "page.png") });

  // A natively trained checkpoint, loaded into the page.
  const input = await page.$("#load");
  await input.uploadFile(nativeCkpt);
  await page.waitForFunction(() => /loaded native.safetensors/.test(document.getElementById("numbers").textContent), { timeout: 60_000 });
  const last = await draw(page, "7");
  samePrediction(last, nativeCkpt, "drawn 7, native checkpoint in the page");
  await page.close();

  // A CNN (the TF.js tutorial's network), as opened and on WebGPU, each against a native CPU run
  // of the same settings; a digit drawn for it, and its checkpoint read natively.
  for (const [backend, limit] of [["auto", 6000], ["gpu", 640]]) {
    const what = `page (tfjs CNN, ${backend}, ${limit} images)`;
    const cnnCkpt = path.join(out, `native-tfjs-${backend}.safetensors`);
    const [ref] = native("mnist", ["--backend", "cpu", "--model", "tfjs", "--epochs", "1", "--limit", String(limit), "--offline", "--save", cnnCkpt]).slice(-1);
    const cnn = await trainOnce(browser, `${server.url}?model=tfjs&epochs=1&limit=${limit}&backend=${backend}`, what);
    const c = cnn.run.result;
    check(/conv8k5/.test(c.network), `${what}: trains ${c.network}`);
    check(Math.abs(c.testAccuracy - ref.test_accuracy) <= TOLERANCE, `${what}: accuracy ${(100 * c.testAccuracy).toFixed(2)}% vs native ${(100 * ref.test_accuracy).toFixed(2)}%`);
    console.log(`${what}: ${c.fallback ? "CPU" : "WebGPU"}, ${Math.round(c.medianSamplesPerSecond)} samples/s, test accuracy ${(100 * c.testAccuracy).toFixed(2)}% (native ${(100 * ref.test_accuracy).toFixed(2)}%)`);
    const cnnSaved = await saveCheckpoint(cnn.page, out, "soma-mnist.safetensors");
    check(cnnSaved, `${what}: the page saved its CNN checkpoint`);
    const reading = await draw(cnn.page, "7");
    if (cnnSaved) samePrediction(reading, cnnSaved, `${what}: drawn 7, page's checkpoint`);
    if (backend === "auto") await cnn.page.screenshot({ path: path.join(out, "page-cnn.png") });
    await cnn.page.close();
  }
} finally {
  await browser.close();
}

// Without WebGPU: the page says why and trains on the CPU.
const noGpu = await launch({ webgpu: false });
try {
  const { page, run } = await trainOnce(noGpu, `${server.url}?epochs=1&limit=3000`, "page without WebGPU");
  const why = await page.$eval("#fallback", (e) => (e.hidden ? "" : e.textContent));
  check(/Training on the CPU: .*--enable-unsafe-webgpu/.test(why) && run.result.fallback, `page without WebGPU says: ${why}`);
} finally {
  await noGpu.close();
  server.stop();
}
console.log(`${failures ? "FAILED" : "passed"}: end-to-end in ${((Date.now() - started) / 1000).toFixed(0)} s; screenshot ${path.join(out, "page.png")}`);
process.exit(failures ? 1 : 0);

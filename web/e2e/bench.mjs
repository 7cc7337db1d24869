// soma's page against TensorFlow.js in the same headless Chromium, side by side in one run:
// samples/s of the second of two epochs over 6,000 MNIST images at batch 64 (the TF.js peer
// page, ../shared/peers/browser, trains 6,000 random MNIST-shaped samples the same way), and
// the time from page load to soma's first step. Usage, from the repository root with the
// examples and web/pkg built:
//   node web/e2e/bench.mjs PEER_DIR [runs]
//   node web/e2e/bench.mjs PEER_DIR runs cnn BATCH
// PEER_DIR is a copy of ../shared/peers/browser with `npm install` done in it. `cnn` measures
// the TF.js tutorial's CNN instead (soma's `?model=tfjs` against the peer's tfjs-cnn.html):
// Adam at lr 0.001 on both, no shifts, 3,072 samples, the second of two epochs at BATCH.
import { spawn } from "node:child_process";
import { launch, openPage, waitForRun } from "./open.mjs";

const peer = process.argv[2];
const runs = Number(process.argv[3] ?? 3);
const cnn = process.argv[4] === "cnn";
const batch = Number(process.argv[5] ?? 64);

function start(cmd, args, opts) {
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "ignore"], ...opts });
  return child;
}

const soma = start("target/release/examples/serve", ["--port", "0", "--offline"]);
const somaUrl = await new Promise((r) => soma.stdout.once("data", (d) => r(String(d).trim().replace(/^serving /, ""))));
const tfjsPort = 8811 + Math.floor(Math.random() * 100);
const tfjs = start("python3", ["-m", "http.server", String(tfjsPort), "--bind", "127.0.0.1"], { cwd: peer });
await new Promise((r) => setTimeout(r, 1000));

const cnnQuery = `model=tfjs&epochs=2&limit=3072&batch=${batch}&optimizer=adam&augment=0`;
const configs = cnn ? [
  ["soma, auto (CPU backend in wasm here)", `${somaUrl}?${cnnQuery}`],
  ["soma, WebGPU", `${somaUrl}?${cnnQuery}&backend=gpu`],
  // TF.js's wasm backend cannot train a convolution (no Conv2DBackpropFilter kernel).
  ...["webgl", "cpu", "webgpu"].map((b) => [`TF.js ${b}`, `http://127.0.0.1:${tfjsPort}/tfjs-cnn.html?backend=${b}&batch=${batch}&n=3072&epochs=2`]),
] : [
  ["soma, auto (CPU backend in wasm here)", `${somaUrl}?epochs=2&limit=6000`],
  ["soma, WebGPU, general step", `${somaUrl}?epochs=2&limit=6000&backend=gpu&stepPath=general`],
  ["soma, WebGPU, fused step", `${somaUrl}?epochs=2&limit=6000&backend=gpu&stepPath=fused`],
  // TF.js's page trains plain SGD without shifts: the same work per sample.
  ["soma, WebGPU, general step, SGD, no shifts", `${somaUrl}?epochs=2&limit=6000&backend=gpu&stepPath=general&optimizer=sgd&augment=0`],
  ...["wasm", "webgl", "cpu", "webgpu"].map((b) => [`TF.js ${b}`, `http://127.0.0.1:${tfjsPort}/tfjs-mlp.html?backend=${b}`]),
];

const rows = [];
const browser = await launch({ webgpu: true });
try {
  for (const [name, url] of configs) {
    const rates = [];
    const firsts = [];
    for (let i = 0; i < runs; i++) {
      const page = await openPage(browser, url, () => {});
      if (name.startsWith("soma")) {
        const run = await waitForRun(page, 600_000);
        if (run.state !== "done") throw new Error(`${name}: ${run.status}`);
        rates.push(run.result.epochs[1].samplesPerSecond);
        firsts.push([run.result.dataToFirstTickMs, run.result.pageToFirstTickMs, run.result.dataToFirstLossMs]);
      } else {
        await page.waitForFunction(() => ["DONE", "FAILED"].includes(document.title), { timeout: 600_000, polling: 250 });
        const res = JSON.parse(await page.$eval("#out", (e) => e.textContent));
        const rate = cnn ? res.samples_per_s_last : res.samples_per_s_epoch2;
        if (!rate) throw new Error(`${name}: ${res.error}`);
        rates.push(rate);
      }
      await page.close();
    }
    rates.sort((a, b) => a - b);
    const median = rates[Math.floor(rates.length / 2)];
    rows.push({ name, median, rates, firsts });
    console.error(`${name}: ${rates.map((r) => Math.round(r)).join(", ")}`);
  }
} finally {
  await browser.close();
  soma.kill();
  tfjs.kill();
}
const best = Math.max(...rows.filter((r) => r.name.startsWith("TF.js")).map((r) => r.median));
console.log("| page, backend | samples/s (median of " + runs + ") | runs | × TF.js's best | data → first tick handed over, ms | page load → first tick, ms | data → first loss back, ms |");
console.log("|---|---|---|---|---|---|---|");
const column = (r, i) => (r.firsts.length ? r.firsts.map((x) => x[i].toFixed(0)).join(", ") : "");
for (const r of rows) {
  console.log(`| ${r.name} | ${Math.round(r.median).toLocaleString("en")} | ${r.rates.map((x) => Math.round(x)).join(", ")} | ${(r.median / best).toFixed(2)} | ${column(r, 0)} | ${column(r, 1)} | ${column(r, 2)} |`);
}

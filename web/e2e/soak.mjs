// The page over a long run: trains EPOCHS epochs of a slice of real MNIST on WebGPU in headless
// Chromium and fails if its JS heap, its wasm memory or soma's device buffers grow.
// Usage, from the repository root with the `serve` example and web/pkg built:
//   node web/e2e/soak.mjs [EPOCHS=20] [LIMIT=1000] [JSON_OUT]
// SOAK_PLANT=js keeps 128 KiB more on the page's JS heap at every epoch (a planted leak):
// the run must then fail, which shows the check can.
//
// After every epoch (seen as a new row of the page's epoch table) it forces a full garbage
// collection over CDP (HeapProfiler.collectGarbage) and reads:
//   - the JS heap in use (Runtime.getHeapUsage's usedSize), which garbage collection brings
//     back to what is reachable, so a steady run must level off;
//   - the wasm linear memory (its byteLength, through `window.somaWasmMemoryBytes`, which the
//     page sets): Rust's heap lives there and a wasm memory never shrinks, so a leak in soma or
//     its bindings shows as growth;
//   - soma's device buffers alive (`epochEnd.gpuBuffers` of each epoch, from the Trainer's
//     `gpuBuffers` count, exact).
// The check, after WARMUP epochs (the first epoch builds pipelines, workspaces and evaluation
// buffers; the first few let V8 tier up and size its heap):
//   - device bytes: must not change at all (an exact count; soma creates buffers only when a
//     run starts or a larger batch first arrives);
//   - wasm memory: must not grow at all (it grows in 64 KiB pages, only when Rust's allocator
//     runs out; a steady run reuses what it freed);
//   - JS heap: at most HEAP_TOLERANCE above its sample after the warm-up. After a full GC,
//     what remains is the page's state, and some of it grows by design: each epoch adds its
//     result, its chart points and a table row, about 1.4 KiB an epoch as measured (20
//     epochs of 1,000 images: 1,206 KiB after epoch 3, 1,229 KiB after epoch 20). 64 KiB over
//     17 epochs is some 2.5 times that, and a third of one leaked batch (64 × 784 × 4 bytes =
//     196 KiB).
// Exit status 1 with the series, the epoch and the growth when one fails.
import { spawn } from "node:child_process";
import fs from "node:fs";
import { launch, openPage, waitForRun } from "./open.mjs";

const EPOCHS = Number(process.argv[2] ?? 20);
const LIMIT = Number(process.argv[3] ?? 1000);
const JSON_OUT = process.argv[4];
const WARMUP = 3;
const HEAP_TOLERANCE = 64 * 1024;
const RUN_MS = 1_800_000;

const serve = spawn("target/release/examples/serve", ["--port", "0", "--offline"], { stdio: ["ignore", "pipe", "inherit"] });
const base = await new Promise((resolve, reject) => {
  serve.stdout.once("data", (d) => resolve(String(d).trim().replace(/^serving /, "")));
  serve.once("exit", (code) => reject(new Error(`serve exited with ${code}`)));
});

const samples = [];
let failures = [];
const browser = await launch({ webgpu: true });
try {
  const url = `${base}?backend=gpu&epochs=${EPOCHS}&limit=${LIMIT}`;
  const page = await openPage(browser, url);
  const cdp = await page.target().createCDPSession();
  const started = Date.now();
  let seen = 0;
  // Polls the epoch table; samples once per new row (an epoch's end, its evaluation done).
  while (seen < EPOCHS) {
    if (Date.now() - started > RUN_MS) throw new Error(`only ${seen} of ${EPOCHS} epochs in ${RUN_MS / 1000} s`);
    const now = await page.evaluate(() => ({
      rows: document.querySelectorAll("#epochs tbody tr").length,
      state: document.body.dataset.state,
      status: document.getElementById("status").textContent,
    }));
    if (now.state === "failed") throw new Error(`the page failed: ${now.status}`);
    if (now.rows > seen) {
      if (process.env.SOAK_PLANT === "js") {
        await page.evaluate(() => (window.somaPlantedLeak ??= []).push(Array.from({ length: 16384 }, (_, i) => i + 0.5)));
      }
      // The page trains on while it is sampled, so one reading can count a tick in flight:
      // the smaller of two, each after a full GC, 200 ms apart.
      const usage = async () => {
        await cdp.send("HeapProfiler.collectGarbage");
        return cdp.send("Runtime.getHeapUsage");
      };
      const a = await usage();
      await new Promise((r) => setTimeout(r, 200));
      const b = await usage();
      const heap = a.usedSize <= b.usedSize ? a : b;
      const wasm = await page.evaluate(() => window.somaWasmMemoryBytes?.() ?? null);
      seen = now.rows;
      samples.push({ epoch: seen, jsHeapUsed: heap.usedSize, jsHeapTotal: heap.totalSize, wasmMemory: wasm });
      console.error(`epoch ${seen}: JS heap ${(heap.usedSize / 1024).toFixed(0)} KiB, wasm memory ${wasm / 1024} KiB`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const run = await waitForRun(page, RUN_MS);
  if (run.state !== "done") throw new Error(`the page did not finish: ${run.status}`);
  if (!run.result.stepPath) throw new Error(`the page trained on the CPU (${run.result.fallback}), not WebGPU`);
  for (const e of run.result.epochs) {
    const s = samples.find((x) => x.epoch === e.epoch);
    if (s) Object.assign(s, { gpuBuffers: e.gpuBuffers?.buffers, gpuBytes: e.gpuBuffers?.bytes });
  }
  if (samples.some((s) => s.gpuBytes == null)) throw new Error("an epoch came back without gpuBuffers");

  // Each series against its sample after the warm-up; the first epoch past the allowance fails.
  const check = (what, key, allowed) => {
    const baseline = samples[WARMUP - 1][key];
    const bad = samples.slice(WARMUP).find((s) => s[key] > baseline + allowed);
    if (bad) failures.push(`${what} grew by ${bad[key] - baseline} bytes at epoch ${bad.epoch} (${baseline} after epoch ${WARMUP}, ${bad[key]} then; ${allowed} allowed)`);
  };
  check("GPU buffer bytes", "gpuBytes", 0);
  check("wasm memory", "wasmMemory", 0);
  check("JS heap", "jsHeapUsed", HEAP_TOLERANCE);

  const at = (n) => samples.find((s) => s.epoch === n);
  const marks = [...new Set([1, WARMUP, Math.ceil(EPOCHS / 2), EPOCHS])].filter(at);
  console.log(`| page (WebGPU, ${run.result.stepPath} step), ${LIMIT} images | ${marks.map((m) => `epoch ${m}`).join(" | ")} |`);
  console.log(`|---|${marks.map(() => "---|").join("")}`);
  console.log(`| JS heap used after GC, KiB | ${marks.map((m) => (at(m).jsHeapUsed / 1024).toFixed(0)).join(" | ")} |`);
  console.log(`| wasm memory, KiB | ${marks.map((m) => at(m).wasmMemory / 1024).join(" | ")} |`);
  console.log(`| soma's GPU buffers (count, bytes) | ${marks.map((m) => `${at(m).gpuBuffers}, ${at(m).gpuBytes}`).join(" | ")} |`);
  if (JSON_OUT) {
    fs.writeFileSync(JSON_OUT, JSON.stringify({ url, backend: run.result.backend, epochs: EPOCHS, limit: LIMIT, warmup: WARMUP, heapTolerance: HEAP_TOLERANCE, samples, failures }, null, 1));
  }
} catch (e) {
  failures = [`${e.message ?? e}`];
} finally {
  await browser.close();
  serve.kill();
}
for (const f of failures) console.error(`FAIL ${f}`);
if (failures.length) process.exit(1);
console.error(`ok: flat over ${EPOCHS} epochs`);

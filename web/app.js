// The page: fetches MNIST, trains soma on WebGPU (or the CPU, saying why), plots as it goes,
// and reads digits drawn on the canvas; or trains on the user's own data dropped or picked
// into the tab (a picture folder, read by the ingest worker; a CSV; an .npz), lists what it
// found, trains, draws the test confusion matrix and reads new pictures or rows. URL parameters
// change the run for tests and benchmarks: epochs, backend (auto|gpu|cpu), stepPath
// (general|fused), batch, tick (batches per step call), limit (training samples), seed,
// optimizer (sgd|momentum|adam), augment (pixels of random shift, 0 for none), model, data
// (mnist, the default, or own: wait for the user's data instead of fetching MNIST), val and
// splitSeed (the user's data's split).

import init, { Mnist, Setup, Trainer, UserData } from "./pkg/soma_web.js";
import { drawTraining } from "./chart.js";
import { drawConfusion } from "./confusion.js";
import { Ingest, fromDrop, fromFiles, showListing } from "./own.js";

const $ = (id) => document.getElementById(id);
const FILES = [
  "train-images-idx3-ubyte",
  "train-labels-idx1-ubyte",
  "t10k-images-idx3-ubyte",
  "t10k-labels-idx1-ubyte",
];

// Every call into the trainer goes through this queue: the wasm object is used by one call at
// a time (a second call while one awaits the GPU would be refused).
let queue = Promise.resolve();
function exclusive(f) {
  const next = queue.then(f);
  queue = next.catch(() => {});
  return next;
}

const state = {
  trainer: null,
  paused: false,
  running: false,
  epochs: 0,
  history: { epochs: 1, trainLoss: [], trainAcc: [], testLoss: [], testAcc: [] },
  results: [],
  drawDirty: false,
};

function setState(s) {
  document.body.dataset.state = s;
}

function fail(message) {
  const p = $("status");
  p.textContent = message;
  p.className = "error";
  setState("failed");
  console.error(message);
}

function options() {
  const q = new URLSearchParams(location.search);
  const o = {};
  const num = (k, name) => q.has(k) && (o[name] = Number(q.get(k)));
  num("epochs", "epochs");
  num("batch", "batchSize");
  num("tick", "batchesPerTick");
  num("limit", "limit");
  num("seed", "seed");
  num("augment", "augment");
  if (q.has("backend")) o.backend = q.get("backend");
  if (q.has("stepPath")) o.stepPath = q.get("stepPath");
  if (q.has("optimizer")) o.optimizer = q.get("optimizer");
  if (q.has("model")) o.model = q.get("model");
  if (q.has("data")) o.data = q.get("data");
  return o;
}

// How the user's data is split: native `train`'s --val and --split-seed.
function dataOptions() {
  const q = new URLSearchParams(location.search);
  const o = {};
  if (q.has("val")) o.val = Number(q.get("val"));
  if (q.has("splitSeed")) o.splitSeed = Number(q.get("splitSeed"));
  return o;
}

// Why there is no WebGPU, from what the browser says about itself.
function whyNoWebGpu() {
  const ua = navigator.userAgent;
  const browser =
    (ua.match(/(Edg|Chrome|Chromium|Firefox|Version)\/(\d+)/) || []).slice(1, 3).join(" ") || ua;
  if (!("gpu" in navigator)) {
    const secure = window.isSecureContext ? "" : " The page is not a secure context (http:// other than localhost), where browsers hide WebGPU.";
    return `This browser (${browser}) has no WebGPU (navigator.gpu is missing).${secure} WebGPU is in Chrome and Edge 113+, Safari 26+ and Firefox 141+ on Windows; Chrome on Linux needs --enable-unsafe-webgpu (and --enable-features=Vulkan).`;
  }
  return `WebGPU (${browser}) offered no usable adapter: software and blocklisted GPUs are hidden unless Chrome runs with --enable-unsafe-webgpu.`;
}

async function fetchBytes(name) {
  const response = await fetch(`data/${name}`);
  if (!response.ok) throw new Error(`data/${name}: HTTP ${response.status} (is the page served by \`cargo run --release --example serve\`?)`);
  return new Uint8Array(await response.arrayBuffer());
}

// The adapter as the browser describes it (wgpu's name for it is empty in browsers).
async function adapterText() {
  try {
    const a = await navigator.gpu?.requestAdapter();
    if (!a) return "no adapter";
    const i = a.info ?? {};
    const name = [i.vendor, i.architecture, i.description].filter(Boolean).join(" ") || "unnamed";
    return `${name}${i.isFallbackAdapter || a.isFallbackAdapter ? ", a software fallback" : ""}`;
  } catch (e) {
    return `unavailable (${e.message ?? e})`;
  }
}

async function showInfo(info) {
  const lr = Number(info.lr.toPrecision(6));
  const where = info.fallback
    ? "the CPU (wasm, one thread)"
    : `WebGPU (${await adapterText()}; ${info.stepPath} step)`;
  $("status").textContent = `${info.network}, ${info.parameters.toLocaleString()} parameters, on ${where}; ${info.optimizer} lr ${lr}, batch ${info.batchSize}, ${info.epochs} epochs`;
  const kind = /conv/.test(info.network) ? "a convolutional network" : `a ${info.network.split(" ")[0]} network`;
  $("tagline").textContent = `trains ${kind} on ${state.own ? state.own.name : "MNIST"}, in this tab`;
  $("drawing").hidden = !info.digits;
  $("status").className = "";
  $("status").title = info.backend;
  if (info.fallback) {
    $("fallback").hidden = false;
    // Chosen (asked for the CPU, or a software adapter) or forced by a browser without WebGPU.
    const adapter = await navigator.gpu?.requestAdapter().catch(() => null);
    const why = adapter ? `${info.fallback}.` : whyNoWebGpu();
    $("fallback").textContent = `Training on the CPU: ${why}`;
  }
}

function onProgress(p) {
  // From navigation (page load) to the first tick back: the wasm, the data, WebGPU, the step.
  state.firstTickMs ??= performance.now();
  // From the data to the first tick handed to the backend.
  state.dataToFirstTickMs ??= performance.now() - state.dataReadyAt;
  // From the data to the first loss back: the first tick's steps have run on the device, the
  // compilation of their pipelines included (on WebGPU, the first ticks report before that).
  if (p.loss != null) state.firstLossMs ??= performance.now() - state.dataReadyAt;
  const t = p.epoch - 1 + p.done / p.total;
  $("bar").style.width = `${((100 * t) / p.epochs).toFixed(2)}%`;
  if (p.loss !== null && p.loss !== undefined) {
    state.history.trainLoss.push([t, p.loss]);
    state.history.trainAcc.push([t, 100 * p.accuracy]);
  }
  $("numbers").textContent = `epoch ${p.epoch}/${p.epochs}  ${p.done.toLocaleString()}/${p.total.toLocaleString()}  loss ${p.loss != null ? p.loss.toFixed(4) : "…"}  ${Math.round(p.samplesPerSecond).toLocaleString()} samples/s  lr ${p.lr.toFixed(4)}`;
  const e = p.epochEnd;
  if (e) {
    state.results.push(e);
    state.history.testLoss.push([e.epoch, e.testLoss]);
    state.history.testAcc.push([e.epoch, 100 * e.testAccuracy]);
    const row = document.createElement("tr");
    for (const v of [e.epoch, e.trainLoss.toFixed(4), e.testLoss.toFixed(4), `${(100 * e.testAccuracy).toFixed(2)}%`, e.seconds.toFixed(2), Math.round(e.samplesPerSecond).toLocaleString()]) {
      const td = document.createElement("td");
      td.textContent = v;
      row.append(td);
    }
    $("epochs").tBodies[0].append(row);
  }
  drawTraining($("chart"), state.history);
}

const nextTask = () => new Promise((resolve) => setTimeout(resolve, 0));

// Trains tick by tick until done, paused, or the trainer is replaced (new data dropped);
// `state.loop` is the loop's promise, which bringData awaits before replacing the trainer.
function trainLoop() {
  if (state.running) return state.loop;
  state.running = true;
  setState("training");
  const trainer = state.trainer;
  state.loop = (async () => {
    try {
      let finished = false;
      while (!finished && !state.paused && state.trainer === trainer) {
        const p = await exclusive(() => trainer.step());
        finished = p.finished;
        onProgress(p);
        if (state.drawDirty) await readDrawing();
        await nextTask(); // let the page draw and take input between ticks
      }
      state.running = false;
      if (finished && state.trainer === trainer) await finish();
    } catch (e) {
      fail(`Training failed: ${e.message ?? e}`);
      state.running = false;
    }
  })();
  return state.loop;
}

async function finish() {
  const info = await exclusive(() => state.trainer.info());
  $("pause").disabled = true;
  $("numbers").textContent += "  — done";
  let confusion = null;
  if (state.own) {
    confusion = await exclusive(() => state.trainer.confusion());
    drawConfusion($("confusion"), confusion);
    $("results").hidden = false;
  }
  const rates = state.results.map((e) => e.samplesPerSecond).sort((a, b) => a - b);
  const last = state.results[state.results.length - 1];
  $("result").textContent = JSON.stringify({
    backend: info.backend,
    network: info.network,
    fallback: info.fallback,
    stepPath: info.stepPath,
    epochs: state.results,
    testAccuracy: last ? last.testAccuracy : null,
    medianSamplesPerSecond: rates.length ? rates[Math.floor(rates.length / 2)] : null,
    firstStepMs: info.firstStepMs,
    pageToFirstTickMs: state.firstTickMs,
    dataToFirstTickMs: state.dataToFirstTickMs,
    dataToFirstLossMs: state.firstLossMs,
    dataMs: state.dataMs,
    webGpuOpenMs: state.openMs,
    data: state.own ? state.own.summary : null,
    ingest: state.own ? state.own.ingest : null,
    confusion,
  });
  setState("done");
}

// Drawing: black ink on white, about as thick relative to the canvas as MNIST's strokes.
function setUpDrawing() {
  const canvas = $("draw");
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const clear = () => {
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    $("guesses").replaceChildren();
    delete $("guesses").dataset.top;
    $("seen").getContext("2d").clearRect(0, 0, 28, 28);
  };
  clear();
  let last = null;
  const at = (e) => {
    const r = canvas.getBoundingClientRect();
    return [((e.clientX - r.left) * canvas.width) / r.width, ((e.clientY - r.top) * canvas.height) / r.height];
  };
  canvas.addEventListener("pointerdown", (e) => {
    canvas.setPointerCapture(e.pointerId);
    last = at(e);
    stroke(last, last);
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!last) return;
    const p = at(e);
    stroke(last, p);
    last = p;
  });
  const up = () => {
    last = null;
    requestReading();
  };
  canvas.addEventListener("pointerup", up);
  canvas.addEventListener("pointercancel", up);
  function stroke(a, b) {
    ctx.strokeStyle = "#000";
    ctx.lineWidth = 22;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(...a);
    ctx.lineTo(...b);
    ctx.stroke();
    requestReading();
  }
  $("clear").addEventListener("click", clear);
}

// While training, the loop reads the drawing between ticks; otherwise it is read at once.
function requestReading() {
  state.drawDirty = true;
  if (state.trainer && !state.running) readDrawing();
}

// Readings asked for and not yet shown (the end-to-end test waits for none).
let pendingReadings = 0;

async function readDrawing() {
  if (!state.trainer || !state.drawDirty) return;
  state.drawDirty = false;
  const canvas = $("draw");
  const rgba = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let reading;
  document.body.dataset.readings = ++pendingReadings;
  try {
    reading = await exclusive(() => state.trainer.predict(new Uint8Array(rgba.buffer), canvas.width, canvas.height));
  } catch (e) {
    // An empty canvas has no digit to read: no guesses, no error.
    $("guesses").textContent = /blank picture/.test(String(e.message ?? e)) ? "" : `(${e.message ?? e})`;
    return;
  } finally {
    document.body.dataset.readings = --pendingReadings;
  }
  const seen = $("seen").getContext("2d");
  const img = seen.createImageData(28, 28);
  reading.pixels.forEach((v, i) => img.data.set([v, v, v, 255], 4 * i));
  seen.putImageData(img, 0, 0);
  $("guesses").replaceChildren(
    ...reading.top.map((g) => {
      const li = document.createElement("li");
      li.dataset.label = g.name;
      const name = document.createElement("b");
      name.textContent = g.name;
      const meter = document.createElement("div");
      meter.className = "meter";
      meter.style.width = `${(100 * g.probability).toFixed(1)}%`;
      const pct = document.createElement("span");
      pct.textContent = `${(100 * g.probability).toFixed(1)}%`;
      li.append(name, meter, pct);
      return li;
    }),
  );
  $("guesses").dataset.top = reading.top[0].name;
}

function setUpCheckpoints() {
  $("pause").addEventListener("click", () => {
    state.paused = !state.paused;
    $("pause").textContent = state.paused ? "Resume" : "Pause";
    if (!state.paused) trainLoop();
  });
  $("save").addEventListener("click", async () => {
    try {
      const bytes = await exclusive(() => state.trainer.checkpoint());
      const a = document.createElement("a");
      a.href = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
      // Named after the data (a folder's name, a file's without its extension).
      a.download = `soma-${state.own ? state.own.name.replace(/\.[^.]*$/, "") : "mnist"}.safetensors`;
      a.click();
      URL.revokeObjectURL(a.href);
    } catch (e) {
      fail(`Saving the checkpoint failed: ${e.message ?? e}`);
    }
  });
  $("load").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (!file) return;
    try {
      const bytes = new Uint8Array(await file.arrayBuffer());
      await exclusive(() => state.trainer.loadCheckpoint(file.name, bytes));
      const info = await exclusive(() => state.trainer.info());
      await showInfo(info);
      $("numbers").textContent = `loaded ${file.name}: ${info.network}, after ${info.epochsDone} epochs${info.predictOnly ? " (it does not fit the data here: it predicts, and does not train)" : ""}`;
      if (!info.digits) $("results").hidden = false;
      requestReading();
      if (!info.predictOnly && info.epochsDone < info.epochs && !state.paused) trainLoop();
    } catch (e) {
      fail(`Loading ${file.name} failed: ${e.message ?? e}`);
    }
    event.target.value = "";
  });
}

// The user's own data: read (pictures in the ingest worker, tables here), listed, a trainer
// made for it; training starts with the Train button.
async function bringData(source) {
  // A run in progress stops; its trainer goes once the queue is idle.
  state.paused = true;
  await state.loop;
  const old = state.trainer;
  state.trainer = null;
  if (old) await exclusive(() => old.free());
  state.paused = false;
  $("pause").textContent = "Pause";
  state.history = { epochs: 1, trainLoss: [], trainAcc: [], testLoss: [], testAcc: [] };
  state.results = [];
  $("epochs").tBodies[0].replaceChildren();
  $("results").hidden = true;
  $("answers").replaceChildren();
  $("found").hidden = true;
  $("train-own").disabled = true;
  for (const id of ["pause", "save", "load"]) $(id).disabled = true;
  $("status").className = "";
  setState("ingesting");
  $("ingest").hidden = false;
  const started = performance.now();
  let data;
  let name;
  let pictures = 0;
  if (source.kind === "folder") {
    name = source.root;
    $("ingest-text").textContent = `Reading ${source.files.length.toLocaleString()} files of ${name}…`;
    const found = await state.ingest.folder(source.root, source.files, {}, (pass, done, total) => {
      $("ingest-bar").style.width = `${((100 * (pass + done / Math.max(total, 1))) / 2).toFixed(1)}%`;
      $("ingest-text").textContent = `${pass === 0 ? "Checking" : "Decoding"} pictures of ${name}: ${done.toLocaleString()} of ${total.toLocaleString()}`;
    });
    pictures = found.found.train.labels.length + (found.found.test?.labels.length ?? 0);
    state.workerSeconds = found.seconds;
    data = UserData.fromFolder(source.root, found.found, dataOptions());
  } else {
    name = source.file.name;
    $("ingest-text").textContent = `Reading ${name}…`;
    const bytes = new Uint8Array(await source.file.arrayBuffer());
    data = source.kind === "table" ? UserData.fromTable(name, bytes, dataOptions()) : UserData.fromNpz(name, bytes, dataOptions());
  }
  const seconds = (performance.now() - started) / 1000;
  $("ingest-bar").style.width = "100%";
  const summary = data.summary();
  // From the pick to the listing's data: the worker's reading (workerSeconds) and the page's
  // preparation.
  const ingest = { seconds, workerSeconds: source.kind === "folder" ? state.workerSeconds : null, pictures, picturesPerSecond: pictures / seconds };
  $("ingest-text").textContent = `Read ${name} in ${seconds.toFixed(2)} s${pictures ? ` (${Math.round(ingest.picturesPerSecond).toLocaleString()} pictures/s)` : ""}.`;
  state.own = { name: summary.name, summary, ingest };
  showListing($("own"), data, summary);
  $("found").hidden = false;
  setState("preparing");
  const setup = await Setup.open({ ...options(), data: "own" });
  state.trainer = await Trainer.createFrom(setup, data);
  const info = state.trainer.info();
  state.history.epochs = info.epochs;
  await showInfo(info);
  $("model-summary").textContent = info.summary;
  const memory = await memoryText(info);
  $("memory").textContent = memory.text;
  $("memory").className = memory.fits ? "" : "error";
  drawTraining($("chart"), state.history);
  // Training that would not fit is not offered: the tab would run out of memory mid-run.
  $("train-own").disabled = !memory.fits;
  for (const id of ["save", "load"]) $(id).disabled = false;
  setState("listed");
}

// What training will hold, against what this tab may hold: the CPU backend keeps everything
// in wasm's linear memory (4 GiB at most in wasm32); on WebGPU the data and workspaces are
// device buffers, each within the adapter's largest buffer. `{fits, text}`.
async function memoryText(info) {
  const gib = (n) => `${(n / 2 ** 30).toFixed(2)} GiB`;
  const mib = (n) => `${(n / 2 ** 20).toFixed(1)} MiB`;
  const need = `Training holds about ${info.memory}.`;
  if (info.fallback) {
    const limit = 4 * 2 ** 30;
    const used = state.wasmMemory();
    const fits = used + info.memoryBytes < limit;
    const verdict = fits ? "" : ": it does not fit; use fewer or smaller pictures, or a smaller model";
    return { fits, text: `${need} The CPU backend keeps it in wasm memory (${mib(used)} in use, ${gib(limit)} at most)${verdict}.` };
  }
  // On WebGPU the engine has checked each buffer against the device's limits already.
  const adapter = await navigator.gpu?.requestAdapter().catch(() => null);
  const max = adapter?.limits?.maxBufferSize;
  return { fits: true, text: `${need}${max ? ` WebGPU buffers up to ${mib(max)} each on this adapter.` : ""}` };
}

function setUpOwnData() {
  const take = (get) => async (event) => {
    try {
      await bringData(await get(event));
    } catch (e) {
      fail(`${e.message ?? e}`);
    }
  };
  // The whole page takes drops: files dropped anywhere are data (on "Try the model", new
  // pictures or rows to read), never a navigation away from the run.
  const drop = $("drop");
  document.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
  document.addEventListener("dragleave", (e) => {
    if (!e.relatedTarget) drop.classList.remove("over");
  });
  document.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (!$("results").hidden && $("results").contains(e.target)) {
      tryFiles([...e.dataTransfer.files]);
    } else {
      take((ev) => fromDrop(ev.dataTransfer))(e);
    }
  });
  for (const id of ["pick-folder", "pick-file"]) {
    $(id).addEventListener("change", async (e) => {
      await take((ev) => fromFiles(ev.target.files))(e);
      e.target.value = "";
    });
  }
  $("train-own").addEventListener("click", () => {
    $("train-own").disabled = true;
    $("pause").disabled = false;
    trainLoop();
  });
  const tryFiles = async (files) => {
    for (const file of files) {
      const bytes = new Uint8Array(await file.arrayBuffer());
      const li = document.createElement("li");
      try {
        if (/\.(csv|tsv|txt)$/i.test(file.name)) {
          const rows = await exclusive(() => state.trainer.predictRows(file.name, bytes));
          li.textContent = `${file.name}: ${rows.map((r) => `line ${r.line}: ${r.top[0].name} (${(100 * r.top[0].probability).toFixed(1)}%)`).join("; ")}`;
          li.dataset.top = rows.map((r) => r.top[0].name).join(",");
        } else {
          const p = await exclusive(() => state.trainer.predictPicture(file.name, bytes));
          const [, h, w] = (await exclusive(() => state.trainer.info())).image;
          const c = document.createElement("canvas");
          c.width = w;
          c.height = h;
          c.getContext("2d").putImageData(new ImageData(new Uint8ClampedArray(p.pixels), w, h), 0, 0);
          li.append(c, `${file.name}: ${p.top.map((g) => `${g.name} ${(100 * g.probability).toFixed(1)}%`).join(", ")}`);
          li.dataset.top = p.top[0].name;
        }
      } catch (e) {
        li.textContent = `${file.name}: ${e.message ?? e}`;
        li.className = "error";
      }
      li.dataset.file = file.name;
      $("answers").append(li);
    }
    document.body.dataset.answers = $("answers").children.length;
  };
  $("try").addEventListener("change", async (e) => {
    await tryFiles([...e.target.files]);
    e.target.value = "";
  });
}

async function main() {
  setState("loading");
  setUpDrawing();
  setUpCheckpoints();
  setUpOwnData();
  // The wasm is compiled once, here, and handed to the ingest worker: after this, reading
  // dropped data fetches nothing.
  const module = await WebAssembly.compileStreaming(fetch(new URL("./pkg/soma_web_bg.wasm", import.meta.url)));
  const wasm = await init({ module_or_path: module });
  state.ingest = new Ingest(module);
  // For web/e2e/soak.mjs: the wasm linear memory (where Rust's heap lives; it never shrinks,
  // so a leak shows as growth). Each epoch's soma GPU buffer count comes in epochEnd.
  state.wasmMemory = () => wasm.memory.buffer.byteLength;
  window.somaWasmMemoryBytes = state.wasmMemory;
  if (options().data === "own") {
    await state.ingest.ready;
    $("status").textContent = "Drop a folder of pictures, a CSV or an .npz above to train on it.";
    setState("waiting");
    return;
  }
  const t0 = performance.now();  $("status").textContent = "Fetching MNIST, opening WebGPU and preparing the network…";
  // WebGPU opens, and the browser compiles the training step's pipelines (off this thread)
  // while the files download, are read and go up to the device.
  const fetched = Promise.all(FILES.map(fetchBytes)).then((files) => {
    state.dataReadyAt = performance.now();
    state.dataMs = state.dataReadyAt - t0;
    return files;
  });
  const setup = Setup.open({ ...options(), data: "mnist" }).then((s) => {
    state.openMs = performance.now() - t0;
    return s;
  });
  setup.catch(() => {}); // a failure is reported where it is awaited
  const data = Mnist.read(...(await fetched));
  state.trainer = await Trainer.create(await setup, data);
  const info = state.trainer.info();
  state.history.epochs = info.epochs;
  await showInfo(info);
  drawTraining($("chart"), state.history);
  for (const id of ["pause", "save", "load"]) $(id).disabled = false;
  await trainLoop();
}

main().catch((e) => fail(`${e.message ?? e}`));

// The page on the user's own data, end to end, in Debian's headless Chromium (puppeteer-core):
//  1. MNIST written as a folder of colour pictures, a subfolder per class, with a truncated
//     picture among them (the `pictures` example), and a native `train` run on it (--skip-bad,
//     the page's rule: bad pictures are listed, the rest trains) as the reference;
//  2. the page opened waiting for data (?data=own); from then on every request the page makes
//     and every one the server answers is recorded;
//  3. the folder dropped on the page (Chromium's drag events with its path), then given to the
//     folder picker (webkitdirectory): both must list the same, the classes with their counts
//     and thumbnails, and name the bad picture;
//  4. Train: the test accuracy must land within 0.5 points of the native run's, and the page
//     shows the test confusion matrix;
//  5. a new picture (not in the folder) picked in "Try the model" is read as native `predict`
//     reads it with the checkpoint the page saves, and again with the native checkpoint loaded
//     into the page;
//  6. a CSV dropped on a fresh page is listed with its classes and trains as native `train`
//     trains it; the pictures' native checkpoint loaded there only predicts, reads the new
//     picture as natively and is saved again with its own epochs; no request went out after
//     either page loaded;
//  7. the tab's peak memory: the highest resident set (VmHWM) of Chromium's renderer and GPU
//     processes, read from /proc when the run ends.
// Usage: node own.mjs OUT_DIR [--count N] [--size S] [--format png|jpeg] [--model M]
//        [--epochs E] [--backend auto|gpu|cpu]; prints one JSON line with the numbers.
// Run from the repository root with the `train`, `predict`, `pictures` and `serve` examples
// built and web/pkg built (web/test.sh does all that).
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { launch, openPage, saveCheckpoint, waitForRun } from "./open.mjs";

const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    count: { type: "string", default: "3000" },
    size: { type: "string", default: "28" },
    format: { type: "string", default: "png" },
    model: { type: "string", default: "tfjs" },
    epochs: { type: "string", default: "1" },
    backend: { type: "string", default: "auto" },
  },
});
const out = path.resolve(positionals[0] ?? "target/web/e2e");
fs.mkdirSync(out, { recursive: true });
const EXAMPLES = "target/release/examples";
const RUN_MS = 1_800_000;
const TOLERANCE = 0.005; // the issue's bound: within half a point of the native run
const mnist = process.env.MNIST_DIR ?? "data/mnist";

let failures = 0;
function check(ok, what) {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
  if (!ok) failures++;
}

function native(example, args) {
  const stdout = execFileSync(`${EXAMPLES}/${example}`, args, { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], maxBuffer: 1 << 26 });
  return stdout.trim().split("\n").map((l) => JSON.parse(l));
}

function pictures(dir, args) {
  fs.rmSync(dir, { recursive: true, force: true });
  return native("pictures", ["--data", mnist, "--out", dir, "--size", opt.size, "--format", opt.format, ...args]).at(-1);
}

// The server, logging every request it answers.
async function serve() {
  const child = spawn(`${EXAMPLES}/serve`, ["--port", "0", "--offline", "--log-requests"], { stdio: ["ignore", "pipe", "inherit"] });
  const served = [];
  let buffered = "";
  const url = await new Promise((resolve, reject) => {
    child.stdout.on("data", (d) => {
      buffered += d;
      const lines = buffered.split("\n");
      buffered = lines.pop();
      for (const line of lines) {
        if (line.startsWith("serving ")) resolve(line.replace(/^serving /, "").trim());
        else served.push(line);
      }
    });
    child.once("exit", (code) => reject(new Error(`serve exited with ${code}`)));
  });
  return { url, served, stop: () => child.kill() };
}

// The highest resident set of each of Chromium's renderer and GPU processes (VmHWM), in bytes.
function peakMemory(browser) {
  const peaks = { renderer: 0, gpu: 0 };
  // Every descendant of the browser process (renderers hang below its zygote).
  const children = new Map();
  for (const line of execFileSync("ps", ["-eo", "pid=,ppid="], { encoding: "utf8" }).trim().split("\n")) {
    const [pid, ppid] = line.trim().split(/\s+/);
    if (!children.has(ppid)) children.set(ppid, []);
    children.get(ppid).push(pid);
  }
  const pids = [];
  const todo = [String(browser.process().pid)];
  while (todo.length) {
    const p = todo.pop();
    for (const c of children.get(p) ?? []) {
      pids.push(c);
      todo.push(c);
    }
  }
  for (const pid of pids) {
    let cmd;
    let status;
    try {
      cmd = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
      status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
    } catch {
      continue;
    }
    const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0);
    const kind = /--type=renderer/.test(cmd) ? "renderer" : /--type=gpu-process/.test(cmd) ? "gpu" : null;
    if (kind) peaks[kind] = Math.max(peaks[kind], kb * 1024);
  }
  return peaks;
}

// Drops `file` (a file or a folder) on the page's drop box as a file manager would: Chromium's
// own drag events, carrying its path.
async function dropOnPage(page, file) {
  await page.$eval("#drop", (e) => e.scrollIntoView());
  const box = await (await page.$("#drop")).boundingBox();
  const input = await page.createCDPSession();
  const at = { x: box.x + 20, y: box.y + 20, data: { items: [], files: [file], dragOperationsMask: 1 } };
  for (const type of ["dragEnter", "dragOver", "drop"]) await input.send("Input.dispatchDragEvent", { type, ...at });
}

const started = Date.now();
const count = Number(opt.count);
const folder = path.join(out, "pictures");
const made = pictures(folder, ["--count", opt.count, "--corrupt", "1"]);
const fresh = path.join(out, "new-pictures");
pictures(fresh, ["--count", "3", "--first", String(count + 100)]);
const newPicture = (() => {
  const found = [];
  for (const c of fs.readdirSync(fresh)) for (const f of fs.readdirSync(path.join(fresh, c))) found.push(path.join(fresh, c, f));
  return found.sort()[0];
})();
const nativeCkpt = path.join(out, "native-own.safetensors");
const [reference] = native("train", [folder, "--skip-bad", "--model", opt.model, "--epochs", opt.epochs, "--backend", "cpu", "--save", nativeCkpt]).slice(-1);
console.log(`native train: test accuracy ${(100 * reference.test_accuracy).toFixed(2)}% on ${reference.test_samples} test pictures`);

const server = await serve();
const browser = await launch({ webgpu: true });
let result = null;
// The native checkpoint's reading of the new picture (native `predict`).
let nativeTop = null;
try {
  const page = await openPage(browser, `${server.url}?data=own&model=${opt.model}&epochs=${opt.epochs}&backend=${opt.backend}`);
  await page.waitForFunction(() => ["waiting", "failed"].includes(document.body.dataset.state), { timeout: 120_000 });
  check((await page.evaluate(() => document.body.dataset.state)) === "waiting", "the page waits for data");
  // From here on, nothing may be fetched: not by the page, not by its worker.
  const requests = [];
  page.on("request", (r) => requests.push(r.url()));
  const servedBefore = server.served.length;

  // The folder dropped on the page, as a user drags it from a file manager (Chromium's own
  // drag events, with the folder's path: the page walks it with webkitGetAsEntry).
  await dropOnPage(page, folder);
  const readListing = async (how) => {
    await page.waitForFunction(() => ["listed", "failed"].includes(document.body.dataset.state), { timeout: RUN_MS, polling: 250 });
    const status = await page.$eval("#status", (e) => e.textContent);
    check((await page.evaluate(() => document.body.dataset.state)) === "listed", `the folder ${how} is read and listed (${status})`);
    return page.$$eval("#classes tbody tr", (rows) => rows.map((r) => ({ name: r.dataset.class, train: Number(r.cells[1].textContent.replace(/\D/g, "")), test: Number(r.cells[2].textContent.replace(/\D/g, "")), thumbs: r.querySelectorAll("canvas").length })));
  };
  const dropped = await readListing("dropped");
  // The same folder through the folder picker (webkitdirectory) lists the same.
  await page.evaluate(() => (document.body.dataset.state = "picking"));
  await (await page.$("#pick-folder")).uploadFile(folder);
  const listing = await readListing("picked");
  check(JSON.stringify(listing) === JSON.stringify(dropped), "dropped and picked, the folder lists the same");
  check(listing.length === 10 && listing.every((c) => c.thumbs > 0), `listing: ${listing.map((c) => `${c.name} ${c.train}+${c.test}`).join(", ")}`);
  const listed = listing.reduce((a, c) => a + c.train + c.test, 0);
  check(listed === made.pictures, `every good picture listed: ${listed} of ${made.pictures}`);
  const bad = await page.$$eval("#bad li", (lis) => lis.map((li) => li.textContent));
  check(bad.length === 1 && /corrupt-0\.png/.test(bad[0]), `the bad picture is named: ${bad.join(" | ")}`);
  await page.screenshot({ path: path.join(out, "page-own-listed.png"), fullPage: true });

  await page.click("#train-own");
  const run = await waitForRun(page, RUN_MS);
  check(run.state === "done", `trained (${run.status})`);
  result = run.result;
  const acc = result?.testAccuracy ?? NaN;
  check(Math.abs(acc - reference.test_accuracy) <= TOLERANCE, `page ${(100 * acc).toFixed(2)}% vs native ${(100 * reference.test_accuracy).toFixed(2)}% on the same split`);
  const conf = result?.confusion;
  const right = conf ? conf.matrix.reduce((a, row, i) => a + row[i], 0) : 0;
  const total = conf ? conf.matrix.flat().reduce((a, b) => a + b, 0) : 0;
  check(conf && conf.classes.length === 10 && total === reference.test_samples && Math.abs(right / total - acc) < 1e-9, `confusion matrix: ${right} of ${total} right`);

  // A new picture, read by the page and by native predict with the page's checkpoint.
  const tryInput = await page.$("#try");
  await tryInput.uploadFile(newPicture);
  await page.waitForFunction(() => document.body.dataset.answers === "1", { timeout: 120_000 });
  const pageTop = await page.$eval("#answers li", (li) => li.dataset.top);
  const saved = await saveCheckpoint(page, out, "soma-pictures.safetensors");
  check(saved, `the page saved its checkpoint`);
  if (saved) {
    const [n] = native("predict", ["--load", saved, "--json", "--backend", "cpu", newPicture]);
    check(n.top[0].class === pageTop, `new picture ${path.basename(newPicture)}: page reads ${pageTop}, native predict with the page's checkpoint ${n.top[0].class}`);
  }
  await page.screenshot({ path: path.join(out, "page-own.png"), fullPage: true });

  // The native checkpoint loaded into the page reads the new picture as native predict does.
  const load = await page.$("#load");
  await load.uploadFile(nativeCkpt);
  await page.waitForFunction(() => /loaded native-own\.safetensors/.test(document.getElementById("numbers").textContent) || document.body.dataset.state === "failed", { timeout: 60_000 });
  await tryInput.uploadFile(newPicture);
  await page.waitForFunction(() => document.body.dataset.answers === "2", { timeout: 120_000 });
  const loadedTop = await page.$eval("#answers li:nth-child(2)", (li) => li.dataset.top);
  const [n] = native("predict", ["--load", nativeCkpt, "--json", "--backend", "cpu", newPicture]);
  nativeTop = n.top[0].class;
  check(loadedTop === n.top[0].class, `native checkpoint in the page: reads ${loadedTop}, native predict ${n.top[0].class}`);

  const servedAfter = server.served.slice(servedBefore);
  check(requests.length === 0 && servedAfter.length === 0, `no request after the page loaded (page: ${requests.length}, server: ${servedAfter.length}${servedAfter.length ? `: ${servedAfter.join(", ")}` : ""})`);
  // A CSV dropped on a fresh page waiting for data: the table is listed with its classes and
  // trains as native `train` trains it (the tabular recipe, the page's epochs), again with no
  // request after the page loaded.
  await page.close();
  // One epoch more than the pictures' run, so that a checkpoint's epochs tell the two apart.
  const tableEpochs = String(Number(opt.epochs) + 1);
  const tablePage = await openPage(browser, `${server.url}?data=own&epochs=${tableEpochs}&backend=${opt.backend}`);
  await tablePage.waitForFunction(() => document.body.dataset.state === "waiting", { timeout: 120_000 });
  const tableRequests = [];
  tablePage.on("request", (r) => tableRequests.push(r.url()));
  const tableServed = server.served.length;
  const table = path.resolve("tests/data/csv/iris.csv");
  const [tableRef] = native("train", [table, "--epochs", tableEpochs, "--backend", "cpu"]).slice(-1);
  await dropOnPage(tablePage, table);
  await tablePage.waitForFunction(() => ["listed", "failed"].includes(document.body.dataset.state), { timeout: RUN_MS, polling: 250 });
  const classes = await tablePage.$$eval("#classes tbody tr", (rows) => rows.map((r) => r.dataset.class));
  check(JSON.stringify(classes) === JSON.stringify(["setosa", "versicolor", "virginica"]), `the dropped CSV's classes: ${classes.join(", ")} (${await tablePage.$eval("#status", (e) => e.textContent)})`);
  await tablePage.click("#train-own");
  const tableRun = await waitForRun(tablePage, RUN_MS);
  const tableAcc = tableRun.result?.testAccuracy ?? NaN;
  check(Math.abs(tableAcc - tableRef.test_accuracy) <= TOLERANCE, `the CSV in the page ${(100 * tableAcc).toFixed(2)}% vs native ${(100 * tableRef.test_accuracy).toFixed(2)}%`);
  // The pictures' native checkpoint loaded beside the table: it does not fit the table, so
  // it only predicts; it reads the new picture as native predict does, and the checkpoint the
  // page saves of it is the native one's (its epochs included).
  await (await tablePage.$("#load")).uploadFile(nativeCkpt);
  await tablePage.waitForFunction(() => /does not fit the data here/.test(document.getElementById("numbers").textContent) || document.body.dataset.state === "failed", { timeout: 60_000 });
  await (await tablePage.$("#try")).uploadFile(newPicture);
  await tablePage.waitForFunction(() => document.body.dataset.answers === "1", { timeout: 120_000 });
  const onlyTop = await tablePage.$eval("#answers li", (li) => li.dataset.top);
  check(onlyTop === nativeTop, `a checkpoint that does not fit the data predicts only: reads ${onlyTop}, native predict ${nativeTop}`);
  const resaved = await saveCheckpoint(tablePage, out, "soma-iris.safetensors");
  const meta = (f) => JSON.parse(fs.readFileSync(f).subarray(8, 8 + Number(fs.readFileSync(f).readBigUInt64LE(0))).toString()).__metadata__;
  check(resaved && meta(resaved).epoch === meta(nativeCkpt).epoch, `saved again from the page, it keeps the native checkpoint's epochs (${resaved && meta(resaved).epoch})`);
  const tableAfter = server.served.slice(tableServed);
  check(tableRequests.length === 0 && tableAfter.length === 0, `no request after the table's page loaded (page: ${tableRequests.length}, server: ${tableAfter.length})`);
  const memory = peakMemory(browser);
  console.log(
    JSON.stringify({
      pictures: made.pictures,
      size: Number(opt.size),
      format: opt.format,
      model: opt.model,
      ingestSeconds: result?.ingest?.seconds,
      workerSeconds: result?.ingest?.workerSeconds,
      picturesPerSecond: result?.ingest?.picturesPerSecond,
      pageAccuracy: acc,
      nativeAccuracy: reference.test_accuracy,
      fallback: result?.fallback ?? null,
      medianSamplesPerSecond: result?.medianSamplesPerSecond,
      peakRendererBytes: memory.renderer,
      peakGpuProcessBytes: memory.gpu,
    }),
  );
} finally {
  await browser.close();
  server.stop();
}
console.log(`${failures ? "FAILED" : "passed"}: own data end to end in ${((Date.now() - started) / 1000).toFixed(0)} s`);
process.exit(failures ? 1 : 0);

// The user's own data in the page: what was dropped or picked (a folder of class subfolders, a
// CSV/TSV, an .npz) as files with paths, the ingest worker's client, and the listing shown
// before training (classes with counts and thumbnails, input, split, notes, bad files).
// Nothing here sends anything anywhere: files are read from the user's disk into this tab.

const TABLE = /\.(csv|tsv|txt)$/i;
const NPZ = /\.npz$/i;

// A dropped item's files: a folder's, walked (readEntries until it returns nothing, as MDN
// says), or one file. Each is {path (relative to the folder), file}.
async function walk(entry, prefix, out) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    out.push({ path: prefix + entry.name, file });
    return;
  }
  const reader = entry.createReader();
  for (;;) {
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (batch.length === 0) break;
    for (const child of batch) await walk(child, `${prefix}${entry.name}/`, out);
  }
}

// What a drop brings: {kind: "folder", root, files} or {kind: "table"|"npz", file}.
export async function fromDrop(dataTransfer) {
  const entries = [...dataTransfer.items].map((i) => i.webkitGetAsEntry?.()).filter(Boolean);
  const dir = entries.find((e) => e.isDirectory);
  if (dir) {
    const files = [];
    await walk(dir, "", files);
    // Paths relative to the dropped folder itself.
    const cut = dir.name.length + 1;
    return { kind: "folder", root: dir.name, files: files.map((f) => ({ path: f.path.slice(cut), file: f.file })) };
  }
  return fromFiles([...dataTransfer.files]);
}

// What a picker brings: a folder (webkitdirectory: each file's webkitRelativePath starts with
// the folder's name) or one file.
export function fromFiles(list) {
  const files = [...list];
  if (files.length === 0) throw new Error("nothing was dropped");
  const rel = files[0].webkitRelativePath;
  if (rel) {
    const root = rel.split("/")[0];
    return { kind: "folder", root, files: files.map((file) => ({ path: file.webkitRelativePath.slice(root.length + 1), file })) };
  }
  if (files.length > 1) throw new Error(`${files.length} files were dropped: drop one folder (a subfolder of pictures per class), one CSV or one .npz`);
  const file = files[0];
  if (TABLE.test(file.name)) return { kind: "table", file };
  if (NPZ.test(file.name)) return { kind: "npz", file };
  throw new Error(`${file.name}: not data the page reads: a folder of class subfolders of pictures, a .csv/.tsv or an .npz`);
}

// The ingest worker, started once with the page's compiled wasm module.
export class Ingest {
  constructor(module) {
    this.worker = new Worker(new URL("./ingest.js", import.meta.url), { type: "module" });
    this.next = 0;
    this.pending = new Map();
    this.ready = new Promise((resolve, reject) => {
      this.worker.onerror = (e) => reject(new Error(`the ingest worker failed to start: ${e.message}`));
      this.worker.onmessage = ({ data }) => {
        if (data.ready) return resolve();
        const job = this.pending.get(data.id);
        if (!job) return;
        if (data.progress) return job.progress(...data.progress);
        this.pending.delete(data.id);
        if (data.error) job.reject(new Error(data.error));
        else job.resolve(data);
      };
    });
    this.worker.postMessage({ module });
  }

  // Reads a folder's pictures in the worker; `progress(pass, done, total)`.
  async folder(root, files, options, progress) {
    await this.ready;
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, progress });
      this.worker.postMessage({ id, root, paths: files.map((f) => f.path), files: files.map((f) => f.file), options });
    });
  }
}

const el = (tag, props = {}, ...children) => {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...children);
  return e;
};

// RGBA bytes of `count` pictures of h×w, one after another, as canvases.
function thumbnails(rgba, h, w) {
  const size = 4 * h * w;
  const out = [];
  for (let at = 0; at + size <= rgba.length; at += size) {
    const c = el("canvas", { width: w, height: h, className: "thumb" });
    c.getContext("2d").putImageData(new ImageData(new Uint8ClampedArray(rgba.slice(at, at + size)), w, h), 0, 0);
    out.push(c);
  }
  return out;
}

// The listing: what was found, from UserData.summary() (and its thumbnails).
export function showListing(root, data, summary) {
  const s = summary;
  const input = s.image ? `${s.image[0]}×${s.image[1]}×${s.image[2]} (channels × height × width)` : `${s.features} values`;
  root.querySelector("#found-text").textContent =
    `${s.name} (${s.format}): ${s.trainSamples.toLocaleString()} training and ${s.testSamples.toLocaleString()} test samples in ${s.classes.length} classes; input ${input}; split: ${s.split}.`;
  root.querySelector("#notes").replaceChildren(...s.notes.map((n) => el("li", { textContent: n })));
  const rows = s.classes.map((c, i) => {
    const pics = s.image ? thumbnails(data.thumbnails(i, 6), s.image[1], s.image[2]) : [];
    const row = el("tr", {}, el("td", { textContent: c.name }), el("td", { textContent: c.train.toLocaleString() }), el("td", { textContent: c.test.toLocaleString() }), el("td", { className: "thumbs" }, ...pics));
    row.dataset.class = c.name;
    return row;
  });
  root.querySelector("#classes").tBodies[0].replaceChildren(...rows);
  const bad = root.querySelector("#bad");
  bad.replaceChildren(...s.bad.map(([file, why]) => el("li", { textContent: `${file}: ${why}` })));
  root.querySelector("#bad-head").hidden = s.bad.length === 0;
  root.querySelector("#bad-head").textContent = `${s.bad.length} picture${s.bad.length === 1 ? "" : "s"} could not be read and ${s.bad.length === 1 ? "is" : "are"} left out:`;
}

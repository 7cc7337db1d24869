// The ingest worker: reads a dropped folder's pictures off the page's thread with the same
// reader native `train` uses (soma-web's readPictures: headers, then decoding, resizing and
// packing), posting progress as it goes. The page starts it once, when it loads, and hands it
// the wasm module it compiled, so that reading dropped data makes no network request.
//
// Messages in:  {module} (first), then {id, root, paths, files, options}.
// Messages out: {ready} | {id, progress: [pass, done, total]} | {id, found} (its pixel and label
// buffers transferred) | {id, error}.
import init, { readPictures } from "./pkg/soma_web.js";

let ready = null;

self.onmessage = async ({ data }) => {
  if (data.module) {
    ready = init({ module_or_path: data.module });
    await ready;
    self.postMessage({ ready: true });
    return;
  }
  const { id, root, paths, files, options } = data;
  try {
    await ready;
    const started = performance.now();
    const progress = (pass, done, total) => self.postMessage({ id, progress: [pass, done, total] });
    const found = readPictures(root, paths, files, options ?? {}, progress);
    const buffers = [found.train, found.test].filter(Boolean).flatMap((s) => [s.pixels.buffer, s.labels.buffer]);
    self.postMessage({ id, found, seconds: (performance.now() - started) / 1000 }, buffers);
  } catch (e) {
    self.postMessage({ id, error: String(e.message ?? e) });
  }
};

//! The ingest worker's half (`web/ingest.js` runs it in a dedicated worker): a dropped
//! folder's pictures read, decoded, resized and packed by the same reader as native `train`
//! (`folder::read_from`), off the page's thread. Files are read one at a time with
//! `FileReaderSync` (workers only); the header pass keeps what it read for the decoding pass up
//! to [`KEEP_BYTES`], so that most folders are read from disk once. What it
//! found goes back to the page as plain data ([`FolderData`]'s fields, pixels and labels as
//! typed arrays the worker transfers), where [`crate::UserData::from_folder`] takes it.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use js_sys::{Array, Function, Object, Reflect, Uint8Array, Uint32Array};
use serde::{Deserialize, Serialize};
use soma::data::folder::{self, FolderData, FolderOptions, Samples, Source};
use soma::data::picture::{self, Decoded, Header};
use wasm_bindgen::prelude::*;
use web_sys::{File, FileReaderSync};

use crate::trainer::{from_js, js};

/// A folder's findings without its pixels, labels and files (those travel as arrays).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FolderMeta {
    pub classes: Vec<String>,
    pub channels: u8,
    pub height: u32,
    pub width: u32,
    pub split_folder: Option<String>,
    pub size_rule: String,
    pub resized: usize,
    pub ignored: Vec<String>,
    pub bad: Vec<(String, String)>,
}

/// How the page asks a folder to be read: `{size: [h, w], channels}`, both optional.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct ReadOptions {
    size: Option<(u32, u32)>,
    channels: Option<u8>,
}

/// The most bytes of files the header pass keeps for the decoding pass: each synchronous read
/// is a round trip to the browser's file system, which bounds the reading rate, so a file read
/// once is read twice as fast; past this the rest is read again.
const KEEP_BYTES: usize = 256 << 20;

/// The dropped files, by path relative to the folder, read when the reader asks.
struct Files {
    root: PathBuf,
    files: BTreeMap<PathBuf, File>,
    reader: FileReaderSync,
    /// Called as `progress(pass, done, total)`: pass 0 reads headers, pass 1 decodes.
    progress: Function,
    total: usize,
    done: [Cell<usize>; 2],
    /// What the header pass read, for the decoding pass, and its bytes.
    kept: RefCell<BTreeMap<PathBuf, Vec<u8>>>,
    kept_bytes: Cell<usize>,
}

impl Files {
    fn bytes(&self, rel: &Path) -> Result<Vec<u8>, String> {
        let name = self.name(rel);
        let file = self
            .files
            .get(rel)
            .ok_or_else(|| format!("{name}: not among the dropped files"))?;
        let buffer = self
            .reader
            .read_as_array_buffer(file)
            .map_err(|e| format!("{name}: cannot read: {}", describe(&e)))?;
        Ok(Uint8Array::new(&buffer).to_vec())
    }

    /// Counts a picture of `pass` and reports every 32nd (and the last).
    fn tick(&self, pass: usize) {
        let done = self.done[pass].get() + 1;
        self.done[pass].set(done);
        if done.is_multiple_of(32) || done == self.total {
            let _ = self.progress.call3(
                &JsValue::NULL,
                &(pass as u32).into(),
                &(done as u32).into(),
                &(self.total as u32).into(),
            );
        }
    }
}

impl Source for Files {
    fn name(&self, rel: &Path) -> String {
        self.root.join(rel).display().to_string()
    }
    fn header(&self, rel: &Path) -> Result<Header, String> {
        self.tick(0);
        let bytes = self.bytes(rel)?;
        let header = picture::header(&self.name(rel), &bytes);
        if header.is_ok() && self.kept_bytes.get() + bytes.len() <= KEEP_BYTES {
            self.kept_bytes.set(self.kept_bytes.get() + bytes.len());
            self.kept.borrow_mut().insert(rel.to_path_buf(), bytes);
        }
        header
    }
    fn decode(&self, rel: &Path) -> Result<Decoded, String> {
        self.tick(1);
        let kept = self.kept.borrow_mut().remove(rel);
        let bytes = match kept {
            Some(b) => b,
            None => self.bytes(rel)?,
        };
        picture::decode(&self.name(rel), &bytes)
    }
}

/// A JavaScript exception's message.
fn describe(e: &JsValue) -> String {
    Reflect::get(e, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}

/// Reads the pictures of a dropped folder named `root`: `paths[i]` (relative to it, `/`
/// separated) is `files[i]`. Bad pictures are listed (`bad`), not fatal: the page shows them.
/// Returns `{meta, train: {pixels, labels, files}, test}` (`test` null without a split folder).
#[wasm_bindgen(js_name = readPictures)]
pub fn read_pictures(
    root: String,
    paths: Vec<String>,
    files: Array,
    options: JsValue,
    progress: Function,
) -> Result<JsValue, JsError> {
    let options: ReadOptions = from_js(options, "folder options")?;
    let rels: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
    let total = rels
        .iter()
        .filter(|p| folder::is_picture(p) && !folder::is_hidden(p))
        .count();
    let source = Files {
        root: PathBuf::from(&root),
        files: rels
            .iter()
            .cloned()
            .zip(files.iter().map(File::from))
            .collect(),
        reader: FileReaderSync::new().map_err(|e| JsError::new(&describe(&e)))?,
        progress,
        total,
        done: [Cell::new(0), Cell::new(0)],
        kept: RefCell::new(BTreeMap::new()),
        kept_bytes: Cell::new(0),
    };
    let opts = FolderOptions {
        size: options.size,
        channels: options.channels,
        skip_bad: true,
    };
    let data = folder::read_from(Path::new(&root), &rels, &source, &opts).map_err(js)?;
    to_js_folder(data)
}

fn to_js_folder(data: FolderData) -> Result<JsValue, JsError> {
    let text = |p: &PathBuf| p.display().to_string();
    let meta = FolderMeta {
        classes: data.classes,
        channels: data.channels,
        height: data.height,
        width: data.width,
        split_folder: data.split_folder,
        size_rule: data.size_rule,
        resized: data.resized,
        ignored: data.ignored.iter().map(text).collect(),
        bad: data
            .bad
            .iter()
            .map(|(p, why)| (text(p), why.clone()))
            .collect(),
    };
    let out = Object::new();
    let set = |o: &Object, k: &str, v: &JsValue| {
        Reflect::set(o, &k.into(), v).map_err(|e| JsError::new(&describe(&e)))
    };
    let samples = |s: &Samples| -> Result<JsValue, JsError> {
        let o = Object::new();
        set(&o, "pixels", &Uint8Array::from(&s.pixels[..]).into())?;
        set(&o, "labels", &Uint32Array::from(&s.labels[..]).into())?;
        let files: Array = s.files.iter().map(|f| JsValue::from(text(f))).collect();
        set(&o, "files", &files.into())?;
        Ok(o.into())
    };
    set(
        &out,
        "meta",
        &serde_wasm_bindgen::to_value(&meta).map_err(|e| JsError::new(&e.to_string()))?,
    )?;
    set(&out, "train", &samples(&data.train)?)?;
    let test = match &data.test {
        Some(t) => samples(t)?,
        None => JsValue::NULL,
    };
    set(&out, "test", &test)?;
    Ok(out.into())
}

/// The page's half: [`read_pictures`]' answer back as a [`FolderData`].
pub(crate) fn from_js_folder(found: &JsValue) -> Result<FolderData, JsError> {
    let get =
        |o: &JsValue, k: &str| Reflect::get(o, &k.into()).map_err(|e| JsError::new(&describe(&e)));
    let meta: FolderMeta = serde_wasm_bindgen::from_value(get(found, "meta")?)
        .map_err(|e| JsError::new(&format!("the worker's folder: {e}")))?;
    let samples = |o: JsValue| -> Result<Samples, JsError> {
        let files: Array = get(&o, "files")?.into();
        Ok(Samples {
            pixels: Uint8Array::new(&get(&o, "pixels")?).to_vec(),
            labels: Uint32Array::new(&get(&o, "labels")?).to_vec(),
            files: files
                .iter()
                .map(|f| PathBuf::from(f.as_string().unwrap_or_default()))
                .collect(),
        })
    };
    let test = get(found, "test")?;
    Ok(FolderData {
        classes: meta.classes,
        channels: meta.channels,
        height: meta.height,
        width: meta.width,
        train: samples(get(found, "train")?)?,
        test: if test.is_null() || test.is_undefined() {
            None
        } else {
            Some(samples(test)?)
        },
        split_folder: meta.split_folder,
        size_rule: meta.size_rule,
        resized: meta.resized,
        ignored: meta.ignored.into_iter().map(PathBuf::from).collect(),
        bad: meta
            .bad
            .into_iter()
            .map(|(p, why)| (PathBuf::from(p), why))
            .collect(),
    })
}

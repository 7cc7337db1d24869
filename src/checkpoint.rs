//! Checkpoints: the network description, its parameters, the optimizer with its state and the
//! number of completed epochs, in one [safetensors](https://github.com/huggingface/safetensors)
//! file that any safetensors reader can open.
//!
//! # Layout (format version 2)
//!
//! Tensors, all `F32`, row-major:
//! - `layer{l}.w` of shape `[in, out]` and `layer{l}.b` of shape `[out]` for every layer `l`;
//! - `optim.{s}.layer{l}.w` / `optim.{s}.layer{l}.b` for every optimizer slot `s` (slot 0 is the
//!   momentum velocity or Adam's first moment `m`, slot 1 Adam's second moment `v`).
//!
//! Metadata (string → string):
//!
//! | key         | example                                                  |
//! |-------------|----------------------------------------------------------|
//! | `format`    | `soma-checkpoint`                                        |
//! | `version`   | `1`                                                      |
//! | `sizes`     | `784,64,64,10`                                           |
//! | `hidden`    | `sigmoid`                                                |
//! | `output`    | `softmax-cross-entropy`                                  |
//! | `optimizer` | `{"beta1":0.9,"beta2":0.999,"eps":1e-8,"name":"adam","weight_decay":0.0}` |
//! | `step`      | `1200` (optimizer steps taken)                           |
//! | `epoch`     | `2` (epochs completed; training resumes from here)       |
//! | `checksum`  | `fnv1a64:…` over every tensor's name and bytes           |
//! | `input_scale`, `input_shift` | `0.012728` / `-0.42407` : network input `x = pixel · scale + shift` |
//! | `image`     | `28,28` (rows, columns), or `none` when inputs are not an image |
//! | `dataset`   | `mnist`                                                  |
//! | `classes`   | `["0","1",…,"9"]` (JSON), or `[]` when outputs are not classes |
//!
//! The last five keys (a [`ModelInfo`]) are what version 2 adds: with them a checkpoint is a
//! model that can be used on new data. A checkpoint without them ([`Checkpoint::model`] `None`)
//! is written as, and read back from, version 1, which is the same layout without those keys;
//! it resumes training as before, but prediction must be told the input scaling.
//!
//! Writes are atomic: the file is written to a temporary sibling, flushed and synced, then
//! renamed over the target, so a crash or a failed save never leaves a half-written checkpoint
//! where a good one was. Loads validate everything before building anything, and every problem
//! is an [`Error::Checkpoint`] naming the file and what was wrong.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use ndarray::{Array1, Array2};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde_json::{Map, Number, Value};

use crate::error::{Error, Result};
use crate::model::ModelInfo;
use crate::net::{Activation, Network, Output};
use crate::optim::{OptimState, Optimizer};
use crate::params::{Layer, Params};

/// The value of the `format` metadata key.
pub const FORMAT: &str = "soma-checkpoint";

/// The format version this code writes for a checkpoint with a [`ModelInfo`].
pub const VERSION: u32 = 2;

/// The older version, without a [`ModelInfo`]: still read, and written for a checkpoint that
/// has none.
pub const VERSION_1: u32 = 1;

/// The largest checkpoint [`load`] reads (4 GiB): far above any network soma trains, and a
/// guard against reading a wrong or hostile file into memory.
pub const MAX_FILE_BYTES: u64 = 4 << 30;

/// Everything needed to resume a training run.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// The network the parameters belong to.
    pub network: Network,
    /// Weights and biases.
    pub params: Params,
    /// The optimizer and its hyper-parameters.
    pub optimizer: Optimizer,
    /// The optimizer's step count and state tensors.
    pub state: OptimState,
    /// Epochs completed; the training loop resumes from this epoch.
    pub epoch: u64,
    /// Input normalisation, image shape and class names; `None` for a version 1 file.
    pub model: Option<ModelInfo>,
}

impl Checkpoint {
    /// Checks that the parameters and optimizer state have the shapes the network and optimizer
    /// imply. [`save`] refuses a checkpoint that fails this, so every saved file loads back.
    pub fn validate(&self) -> Result<()> {
        self.params
            .check_shape(&self.network, "checkpoint parameters")?;
        if self.state.slots.len() != self.optimizer.slots() {
            return Err(Error::shape(
                format!("state of optimizer {}", self.optimizer.name()),
                format!("{} state slots", self.optimizer.slots()),
                format!("{} state slots", self.state.slots.len()),
            ));
        }
        for (s, slot) in self.state.slots.iter().enumerate() {
            slot.check_shape(&self.network, &format!("optimizer state slot {s}"))?;
        }
        self.optimizer.validate()?;
        if let Some(model) = &self.model {
            model.check(&self.network)?;
        }
        Ok(())
    }

    /// Saves to `path` (see [`save`]).
    pub fn save(&self, path: &Path) -> Result<()> {
        save(path, self)
    }
}

/// Writes `ckpt` to `path` atomically.
///
/// The bytes go to a temporary file in the same directory, which is flushed and synced to disk
/// and then renamed over `path`. On any error the temporary file is removed and a checkpoint
/// already at `path` is left untouched.
pub fn save(path: &Path, ckpt: &Checkpoint) -> Result<()> {
    ckpt.validate()
        .map_err(|e| bad(path, format!("refusing to save: {e}")))?;
    let bytes = encode(path, ckpt)?;
    write_atomic(path, &bytes)
}

/// Checks that a checkpoint can be saved at `path` (its directory exists and takes a new
/// file) by creating and removing a temporary file there, so that a run can fail at its start
/// rather than after its first epoch. Nothing at `path` itself is touched.
pub fn check_writable(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if path.is_dir() {
        return Err(bad(path, "cannot save here: the path is a directory"));
    }
    if !dir.is_dir() {
        return Err(bad(
            path,
            format!(
                "cannot save here: the directory {} does not exist",
                dir.display()
            ),
        ));
    }
    // Dropping the guard removes the probe.
    let (_probe, _file) = create_temp(path, dir).map_err(|e| {
        bad(
            path,
            format!(
                "cannot save here: no file can be created in {}: {e}",
                dir.display()
            ),
        )
    })?;
    Ok(())
}

/// Reads and validates the checkpoint at `path`.
///
/// Every problem (a missing file, a file too large, a truncated or corrupt file, missing or
/// malformed metadata, a missing tensor or one of the wrong type or shape, optimizer state that
/// does not fit the optimizer, a checksum mismatch) is an error naming the file; nothing panics.
pub fn load(path: &Path) -> Result<Checkpoint> {
    let bytes = read_bounded(path)?;
    decode(path, &bytes)
}

/// Loads the checkpoint at `path` and checks it was saved for `expected`: same layer sizes,
/// hidden activation and output. The error names both networks.
pub fn load_into(path: &Path, expected: &Network) -> Result<Checkpoint> {
    let ckpt = load(path)?;
    if ckpt.network != *expected {
        return Err(bad(
            path,
            format!(
                "checkpoint is {}, the run asks for {}",
                describe(&ckpt.network),
                describe(expected)
            ),
        ));
    }
    Ok(ckpt)
}

/// `784-64-64-10 sigmoid softmax-cross-entropy`.
fn describe(net: &Network) -> String {
    format!(
        "{} {} {}",
        join_sizes(net.sizes(), "-"),
        net.hidden(),
        net.output()
    )
}

fn join_sizes(sizes: &[usize], sep: &str) -> String {
    sizes
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(sep)
}

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding

/// Name of a parameter tensor (`layer0.w`) or of an optimizer slot's (`optim.1.layer0.w`).
fn tensor_name(slot: Option<usize>, layer: usize, part: char) -> String {
    match slot {
        None => format!("layer{layer}.{part}"),
        Some(s) => format!("optim.{s}.layer{layer}.{part}"),
    }
}

/// Every tensor of `ckpt`, by name, as little-endian bytes with its shape.
fn tensors_of(ckpt: &Checkpoint) -> Vec<(String, Vec<usize>, Vec<u8>)> {
    let mut out = Vec::new();
    let sets = std::iter::once((None, &ckpt.params)).chain(
        ckpt.state
            .slots
            .iter()
            .enumerate()
            .map(|(s, p)| (Some(s), p)),
    );
    for (slot, params) in sets {
        for (l, layer) in params.layers.iter().enumerate() {
            let w = layer.w.iter().flat_map(|x| x.to_le_bytes()).collect();
            out.push((tensor_name(slot, l, 'w'), layer.w.shape().to_vec(), w));
            let b = layer.b.iter().flat_map(|x| x.to_le_bytes()).collect();
            out.push((tensor_name(slot, l, 'b'), layer.b.shape().to_vec(), b));
        }
    }
    out
}

/// FNV-1a (64-bit) over each tensor's name, a separator and its bytes, in name order: catches
/// corrupted tensor data, which the safetensors format itself cannot notice.
fn checksum<'a>(tensors: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> String {
    let mut sorted: Vec<_> = tensors.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (name, data) in sorted {
        for &byte in name.as_bytes().iter().chain(&[0u8]).chain(data) {
            h ^= u64::from(byte);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("fnv1a64:{h:016x}")
}

/// The shortest decimal that reads back as exactly `x`, as a JSON number.
fn json_f32(path: &Path, what: &str, x: f32) -> Result<Value> {
    if !x.is_finite() {
        return Err(bad(path, format!("refusing to save: {what} is {x}")));
    }
    // `{:?}` is Rust's shortest round-trip form (`0.9`, `1e-8`), which is valid JSON.
    let n: Number = serde_json::from_str(&format!("{x:?}")).expect("finite f32 debug form is JSON");
    Ok(Value::Number(n))
}

fn optimizer_json(path: &Path, opt: &Optimizer) -> Result<String> {
    let mut m = Map::new();
    m.insert("name".into(), Value::String(opt.name().into()));
    let fields = opt.hyper_parameters();
    for (k, v) in fields {
        m.insert(
            k.into(),
            json_f32(path, &format!("optimizer hyper-parameter {k}"), v)?,
        );
    }
    Ok(Value::Object(m).to_string())
}

/// The metadata entries of a [`ModelInfo`] (format version 2).
fn model_meta(path: &Path, model: &ModelInfo) -> Result<Vec<(&'static str, String)>> {
    let number = |what, x| json_f32(path, what, x).map(|v| v.to_string());
    Ok(vec![
        ("input_scale", number("input scale", model.normalize.scale)?),
        ("input_shift", number("input shift", model.normalize.shift)?),
        (
            "image",
            match model.image {
                Some((rows, cols)) => format!("{rows},{cols}"),
                None => "none".to_string(),
            },
        ),
        ("dataset", model.dataset.clone()),
        (
            "classes",
            Value::Array(model.classes.iter().cloned().map(Value::String).collect()).to_string(),
        ),
    ])
}

fn encode(path: &Path, ckpt: &Checkpoint) -> Result<Vec<u8>> {
    let net = &ckpt.network;
    let tensors = tensors_of(ckpt);
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), FORMAT.to_string());
    let version = if ckpt.model.is_some() {
        VERSION
    } else {
        VERSION_1
    };
    meta.insert("version".to_string(), version.to_string());
    if let Some(model) = &ckpt.model {
        for (key, value) in model_meta(path, model)? {
            meta.insert(key.to_string(), value);
        }
    }
    meta.insert("sizes".to_string(), join_sizes(net.sizes(), ","));
    meta.insert("hidden".to_string(), net.hidden().to_string());
    meta.insert("output".to_string(), net.output().to_string());
    meta.insert(
        "optimizer".to_string(),
        optimizer_json(path, &ckpt.optimizer)?,
    );
    meta.insert("step".to_string(), ckpt.state.step.to_string());
    meta.insert("epoch".to_string(), ckpt.epoch.to_string());
    meta.insert(
        "checksum".to_string(),
        checksum(tensors.iter().map(|(n, _, d)| (n.as_str(), d.as_slice()))),
    );
    let views = tensors
        .iter()
        .map(|(name, shape, data)| {
            TensorView::new(Dtype::F32, shape.clone(), data)
                .map(|v| (name.as_str(), v))
                .map_err(|e| bad(path, format!("cannot encode tensor {name}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, Some(meta))
        .map_err(|e| bad(path, format!("cannot encode as safetensors: {e}")))
}

// ---------------------------------------------------------------------------------------------
// Atomic write

/// A temporary file that is removed when dropped unless it was renamed into place.
struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Creates a fresh temporary sibling of `target` (`.name.soma-tmp.<pid>.<n>`).
fn create_temp(target: &Path, dir: &Path) -> Result<(TempFile, File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = target
        .file_name()
        .ok_or_else(|| bad(target, "the path does not name a file"))?
        .to_string_lossy();
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.soma-tmp.{}.{n}", std::process::id()));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(file) => {
                return Ok((
                    TempFile {
                        path: tmp,
                        armed: true,
                    },
                    file,
                ));
            }
            // A leftover of a crashed process with the same pid: take the next name.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < u64::MAX => continue,
            Err(e) => return Err(Error::io(tmp, "create temporary checkpoint file", e)),
        }
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let (mut temp, mut file) = create_temp(path, dir)?;
    file.write_all(bytes)
        .map_err(|e| Error::io(&temp.path, "write checkpoint", e))?;
    file.flush()
        .map_err(|e| Error::io(&temp.path, "flush checkpoint", e))?;
    file.sync_all()
        .map_err(|e| Error::io(&temp.path, "sync checkpoint to disk", e))?;
    drop(file);
    fs::rename(&temp.path, path).map_err(|e| Error::io(path, "replace checkpoint", e))?;
    temp.armed = false;
    // Make the rename itself durable. Directories cannot be opened as files on every platform,
    // so this is Unix only.
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, "sync directory after saving checkpoint", e))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// Reads the whole file, refusing anything over [`MAX_FILE_BYTES`] before allocating for it.
fn read_bounded(path: &Path) -> Result<Vec<u8>> {
    let file = File::open(path).map_err(|e| Error::io(path, "open checkpoint", e))?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io(path, "read checkpoint metadata", e))?;
    if !meta.is_file() {
        return Err(bad(path, "not a regular file"));
    }
    let len = meta.len();
    if len > MAX_FILE_BYTES {
        return Err(bad(
            path,
            format!(
                "file is {len} bytes, more than the {MAX_FILE_BYTES}-byte limit for checkpoints"
            ),
        ));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    // `take` bounds the read even if the file grows after the size check.
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, "read checkpoint", e))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(bad(
            path,
            "file grew past the checkpoint size limit while being read",
        ));
    }
    Ok(bytes)
}

/// The metadata of a checkpoint, with errors that name the missing or malformed key.
struct Meta<'a> {
    path: &'a Path,
    map: &'a HashMap<String, String>,
}

impl Meta<'_> {
    fn get(&self, key: &str) -> Result<&str> {
        self.map
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| bad(self.path, format!("metadata key `{key}` is missing")))
    }

    fn malformed(&self, key: &str, expected: &str, found: &str) -> Error {
        bad(
            self.path,
            format!("metadata key `{key}`: expected {expected}, found {found:?}"),
        )
    }

    fn u64(&self, key: &str) -> Result<u64> {
        let s = self.get(key)?;
        s.parse()
            .map_err(|_| self.malformed(key, "a non-negative integer", s))
    }

    /// A finite f32 written as a decimal, read exactly (no double rounding via f64).
    fn f32(&self, key: &str) -> Result<f32> {
        let s = self.get(key)?;
        match s.trim().parse::<f32>() {
            Ok(x) if x.is_finite() => Ok(x),
            _ => Err(self.malformed(key, "a finite decimal number", s)),
        }
    }

    /// The version 2 keys: normalisation, image shape, dataset and class names.
    fn model(&self) -> Result<ModelInfo> {
        let normalize = crate::data::Normalize {
            scale: self.f32("input_scale")?,
            shift: self.f32("input_shift")?,
        };
        let s = self.get("image")?;
        let image = if s == "none" {
            None
        } else {
            let dims = s
                .split(',')
                .map(|p| p.trim().parse::<usize>())
                .collect::<std::result::Result<Vec<_>, _>>();
            match dims.as_deref() {
                Ok([rows, cols]) if *rows > 0 && *cols > 0 => Some((*rows, *cols)),
                _ => return Err(self.malformed("image", "`rows,cols` or `none`", s)),
            }
        };
        let dataset = self.get("dataset")?.to_string();
        let s = self.get("classes")?;
        let classes = match serde_json::from_str::<Value>(s) {
            Ok(Value::Array(items)) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(name) => Ok(name),
                    _ => Err(self.malformed("classes", "a JSON array of strings", s)),
                })
                .collect::<Result<Vec<_>>>()?,
            _ => return Err(self.malformed("classes", "a JSON array of strings", s)),
        };
        Ok(ModelInfo {
            normalize,
            image,
            dataset,
            classes,
        })
    }

    fn network(&self) -> Result<Network> {
        let s = self.get("sizes")?;
        let sizes = s
            .split(',')
            .map(|p| p.trim().parse::<usize>())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| self.malformed("sizes", "comma-separated layer sizes", s))?;
        let h = self.get("hidden")?;
        let hidden: Activation = h
            .parse()
            .map_err(|e| self.malformed("hidden", &format!("an activation ({e})"), h))?;
        let o = self.get("output")?;
        let output: Output = o
            .parse()
            .map_err(|e| self.malformed("output", &format!("an output ({e})"), o))?;
        Network::new(&sizes, hidden, output).map_err(|e| {
            bad(
                self.path,
                format!("metadata describes no valid network: {e}"),
            )
        })
    }

    fn optimizer(&self) -> Result<Optimizer> {
        let s = self.get("optimizer")?;
        let expected = "a JSON object with the optimizer's name and hyper-parameters";
        let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(s) else {
            return Err(self.malformed("optimizer", expected, s));
        };
        let name = match obj.get("name") {
            Some(Value::String(n)) => n.as_str(),
            _ => return Err(self.malformed("optimizer", "a string field `name`", s)),
        };
        let Ok(default) = Optimizer::from_name(name) else {
            return Err(self.malformed("optimizer", "name sgd, momentum or adam", s));
        };
        let allowed: Vec<&str> = default.hyper_parameters().iter().map(|p| p.0).collect();
        if let Some(k) = obj
            .keys()
            .find(|k| *k != "name" && !allowed.contains(&k.as_str()))
        {
            return Err(bad(
                self.path,
                format!("metadata key `optimizer`: unknown field `{k}` for {name} in {s:?}"),
            ));
        }
        let field = |k: &str| -> Result<f32> {
            let v = obj.get(k).ok_or_else(|| {
                bad(
                    self.path,
                    format!("metadata key `optimizer`: {name} needs field `{k}`, missing in {s:?}"),
                )
            })?;
            // Read the decimal text as f32 directly: exact, with no double rounding via f64.
            match v {
                Value::Number(n) => match n.to_string().parse::<f32>() {
                    Ok(x) if x.is_finite() => Ok(x),
                    _ => Err(self.malformed("optimizer", &format!("a finite f32 `{k}`"), s)),
                },
                _ => Err(self.malformed("optimizer", &format!("a number `{k}`"), s)),
            }
        };
        Optimizer::from_hyper_parameters(name, field)
    }
}

fn shape_str(shape: &[usize]) -> String {
    format!("{shape:?}")
}

/// Reads tensor `name`, checking it exists, is F32 and has exactly `shape`.
fn read_tensor(path: &Path, st: &SafeTensors, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
    let t = st
        .tensor(name)
        .map_err(|_| bad(path, format!("tensor `{name}` is missing")))?;
    if t.dtype() != Dtype::F32 {
        return Err(bad(
            path,
            format!("tensor `{name}`: expected dtype F32, found {:?}", t.dtype()),
        ));
    }
    if t.shape() != shape {
        return Err(bad(
            path,
            format!(
                "tensor `{name}`: expected shape {}, found {}",
                shape_str(shape),
                shape_str(t.shape())
            ),
        ));
    }
    let data = t.data();
    let n: usize = shape.iter().product();
    if data.len() != n * 4 {
        // safetensors checks this; kept so a bad file can never panic below.
        return Err(bad(
            path,
            format!(
                "tensor `{name}`: expected {} bytes, found {}",
                n * 4,
                data.len()
            ),
        ));
    }
    Ok(data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn read_params(
    path: &Path,
    st: &SafeTensors,
    net: &Network,
    slot: Option<usize>,
) -> Result<Params> {
    let layers = (0..net.layers())
        .map(|l| {
            let (i, o) = net.layer_shape(l);
            let w = read_tensor(path, st, &tensor_name(slot, l, 'w'), &[i, o])?;
            let b = read_tensor(path, st, &tensor_name(slot, l, 'b'), &[o])?;
            Ok(Layer {
                w: Array2::from_shape_vec((i, o), w).expect("length checked"),
                b: Array1::from(b),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Params { layers })
}

fn decode(path: &Path, bytes: &[u8]) -> Result<Checkpoint> {
    if bytes.len() < 8 {
        return Err(bad(
            path,
            format!(
                "file is {} bytes, too short for a safetensors file (truncated?)",
                bytes.len()
            ),
        ));
    }
    let not_safetensors = |e| {
        bad(
            path,
            format!("not a valid safetensors file (truncated or corrupt?): {e}"),
        )
    };
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(not_safetensors)?;
    let st = SafeTensors::deserialize(bytes).map_err(not_safetensors)?;
    let empty = HashMap::new();
    let meta = Meta {
        path,
        map: header.metadata().as_ref().unwrap_or(&empty),
    };

    let format = meta.get("format")?;
    if format != FORMAT {
        return Err(meta.malformed("format", FORMAT, format));
    }
    let version = meta.get("version")?;
    let has_model = match version.parse::<u32>() {
        Ok(VERSION_1) => false,
        Ok(VERSION) => true,
        _ => {
            return Err(meta.malformed(
                "version",
                &format!("{VERSION_1} or {VERSION} (the versions this build reads)"),
                version,
            ));
        }
    };
    let network = meta.network()?;
    let optimizer = meta.optimizer()?;
    optimizer
        .validate()
        .map_err(|e| bad(path, format!("metadata key `optimizer`: {e}")))?;
    let model = if has_model {
        let model = meta.model()?;
        model
            .check(&network)
            .map_err(|e| bad(path, format!("version 2 model metadata: {e}")))?;
        Some(model)
    } else {
        None
    };
    let step = meta.u64("step")?;
    let epoch = meta.u64("epoch")?;
    let sum = meta.get("checksum")?;

    // Exactly the expected set of tensors: a stray one means the file is not what the metadata
    // says (for example Adam moments in a file that claims SGD).
    let slots = optimizer.slots();
    let expected: Vec<String> = (0..=slots)
        .flat_map(|s| {
            let slot = s.checked_sub(1);
            (0..network.layers())
                .flat_map(move |l| [tensor_name(slot, l, 'w'), tensor_name(slot, l, 'b')])
        })
        .collect();
    let mut names = st.names();
    names.sort_unstable();
    if let Some(extra) = names.iter().find(|n| !expected.iter().any(|e| e == *n)) {
        return Err(bad(
            path,
            format!(
                "unexpected tensor `{extra}` for network {} with optimizer {} ({slots} state slots)",
                describe(&network),
                optimizer.name()
            ),
        ));
    }

    let params = read_params(path, &st, &network, None)?;
    let state_slots = (0..slots)
        .map(|s| read_params(path, &st, &network, Some(s)))
        .collect::<Result<Vec<_>>>()?;

    let found = checksum(
        st.iter()
            .map(|(name, view)| (name, view.data()))
            .collect::<Vec<_>>(),
    );
    if found != sum {
        return Err(bad(
            path,
            format!("tensor data is corrupt: checksum expected {sum}, found {found}"),
        ));
    }

    Ok(Checkpoint {
        network,
        params,
        optimizer,
        state: OptimState {
            step,
            slots: state_slots,
        },
        epoch,
        model,
    })
}

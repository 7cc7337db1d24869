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
//! **Version 3** is written for a network with spatial layers (a CNN). It adds two keys:
//!
//! | key      | example                                                          |
//! |----------|------------------------------------------------------------------|
//! | `input`  | `1,28,28`: the image the network reads, channels, rows, columns  |
//! | `layers` | `conv8k5,relu,pool,conv16k5,relu,pool,dense10` (the layer string, [`crate::layers`]) |
//!
//! `sizes` and `hidden` still describe the dense part (its first size is the flattened
//! features) and must agree with `layers`; the [`ModelInfo`] keys are optional and present
//! together. A convolution's `layer{l}.w` is `[C_out, C_in·k·k]`: PyTorch's
//! `[C_out, C_in, k, k]` with the last three axes flattened, and the convolutions come first
//! (`layer0`, `layer1`, … then the dense layers). Dense networks are still written as version
//! 2 (or 1), so that older builds read them.
//!
//! **Version 4** is written for a model trained on a user's data, whose inputs an older build
//! would prepare wrongly: its [`ModelInfo`] keys are required, `layers` and `input` optional
//! (present for a CNN, as in version 3), and it adds:
//!
//! | key          | example                                                         |
//! |--------------|-----------------------------------------------------------------|
//! | `image`      | `3,64,64` (channels, rows, columns) as well as version 2's forms |
//! | `input_maps` | `{"channel":[[0.0171,-2.1],[0.0175,-2.0],[0.0174,-1.8]]}`: `[scale, shift]` per image channel, or `{"feature":[…]}` per network input, or `{}` |
//! | `source`     | `"pictures"`, `"arrays"`, `"idx"`, or `{"table":{"label":"species","columns":[{"name":"petal_width"},{"name":"colour","levels":["blue","red"]}]}}` |
//!
//! A file is version 4 only when one of these is needed (see `model_meta.rs`).
//!
//! **Version 5** is written for a regression model (output `linear-mse`): version 4's keys plus
//!
//! | key       | example                                                             |
//! |-----------|---------------------------------------------------------------------|
//! | `targets` | `[{"name":"price","scale":0.0123,"shift":-2.51}]`: per output, the target's name and the map `t = y · scale + shift` that standardised it; prediction reports `(t - shift) / scale` |
//!
//! **Version 6** is written for a network that versions 1–5 cannot describe, because its
//! layers have activations of their own (hidden dense layers with different ones, a layer
//! with none): `input` and `layers` are present for every network (`n,1,1` for values), and
//! the rest is as in the versions before (the [`ModelInfo`] keys optional, with version 4's and
//! 5's keys where the model needs them).
//!
//! Writes are atomic: the file is written to a temporary sibling, flushed and synced, then
//! renamed over the target, so a crash or a failed save never leaves a half-written checkpoint
//! where a good one was. Loads validate everything before building anything, and every problem
//! is an [`Error::Checkpoint`] naming the file and what was wrong.

use std::collections::HashMap;
// Files are native-only: in a browser a checkpoint goes to and from bytes
// (`Checkpoint::to_bytes`, `Checkpoint::from_bytes`).
#[cfg(not(target_arch = "wasm32"))]
use std::fs::{self, File, OpenOptions};
#[cfg(not(target_arch = "wasm32"))]
use std::io::{Read, Write};
use std::path::Path;
#[cfg(not(target_arch = "wasm32"))]
use std::path::PathBuf;
#[cfg(not(target_arch = "wasm32"))]
use std::sync::atomic::{AtomicU64, Ordering};

use ndarray::{Array1, Array2};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde_json::{Map, Number, Value};

use crate::error::{Error, Result};
use crate::model::ModelInfo;
use crate::net::{Activation, Network, Output};
use crate::optim::{OptimState, Optimizer};
use crate::params::{Params, Weights};

mod model_meta;
mod read;
mod write;

use read::decode;
#[cfg(not(target_arch = "wasm32"))]
use read::read_bounded;
use write::{checksum, encode, tensor_name};
#[cfg(not(target_arch = "wasm32"))]
use write::{create_temp, write_atomic};

/// The value of the `format` metadata key.
pub const FORMAT: &str = "soma-checkpoint";

/// The format version this code writes for a checkpoint with a [`ModelInfo`].
pub const VERSION: u32 = 2;

/// The version written for a network with spatial layers (convolutions, pools): version 2's
/// keys (the [`ModelInfo`] ones optional, present together) plus `input` and `layers`.
pub const VERSION_3: u32 = 3;

/// The version written for a model whose inputs need per-channel or per-feature maps, a
/// source other than IDX images, or an image of several channels (see the module docs).
pub const VERSION_4: u32 = 4;

/// The version written for a regression model: version 4's keys plus `targets`, the names and
/// maps of its real-valued outputs (see the module docs).
pub const VERSION_5: u32 = 5;

/// The version written for a network the older versions' rules cannot describe: layers with
/// activations of their own (hidden dense layers with different ones, or none), a convolution
/// without one. It has `input` and `layers` for every network; the [`ModelInfo`] keys are
/// optional (present together), with version 4's and 5's when the model needs them.
pub const VERSION_6: u32 = 6;

/// Whether versions 1 to 5 describe `net`: its layers are of the kinds they know (convolution,
/// max-pool, dense), every one that takes an activation but the last has one, and the hidden
/// dense layers share theirs.
fn legacy_layers(net: &Network) -> bool {
    use crate::layer::Layer;
    let known = net.layers().iter().all(|l| {
        matches!(
            l,
            Layer::Conv(_) | Layer::MaxPool(_) | Layer::Dense(_) | Layer::Activation(_)
        )
    });
    let nodes = net.nodes();
    let all_activated = nodes[..nodes.len() - 1]
        .iter()
        .all(|n| n.act.is_some() || !n.op().fuses_activation());
    known && all_activated && net.dense_part().1.is_some()
}

/// The older version, without a [`ModelInfo`]: still read, and written for a checkpoint that
/// has none.
pub const VERSION_1: u32 = 1;

/// The largest checkpoint [`load`] reads (4 GiB): far above any network soma trains, and a
/// guard against reading a wrong or hostile file into memory.
pub const MAX_FILE_BYTES: u64 = 4 << 30;

/// The largest optimizer step count a checkpoint may hold: 2^53, more steps than any run takes
/// (285 years at a million steps a second) and exact as a JavaScript number. It keeps a resumed
/// run's step counter, which the backends advance with plain `+ 1`, far from overflowing: a
/// file claiming `u64::MAX` steps loaded, then overflowed on the first training step.
pub const MAX_STEP: u64 = 1 << 53;

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
        if self.state.step > MAX_STEP {
            return Err(Error::arg(
                "optimizer step count",
                format!("at most {MAX_STEP} (2^53)"),
                self.state.step,
            ));
        }
        if let Some(model) = &self.model {
            model.check(&self.network)?;
        }
        Ok(())
    }

    /// Saves to `path` (see [`save`]).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn save(&self, path: &Path) -> Result<()> {
        save(path, self)
    }

    /// The bytes of the file [`save`] would write (validated first), for where there is no
    /// file system: a browser's download or storage. Errors name `<checkpoint bytes>`.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        encode_checked(Path::new(BYTES), self)
    }

    /// Reads and validates a checkpoint from a file's bytes, as thoroughly as [`load`] does;
    /// `name` (a file name or URL) is what errors name.
    pub fn from_bytes(name: &str, bytes: &[u8]) -> Result<Checkpoint> {
        let path = Path::new(name);
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(bad(
                path,
                format!(
                    "{} bytes, more than the {MAX_FILE_BYTES}-byte limit for checkpoints",
                    bytes.len()
                ),
            ));
        }
        decode(path, bytes)
    }
}

/// What errors of [`Checkpoint::to_bytes`] name in place of a path.
const BYTES: &str = "<checkpoint bytes>";

/// Validates `ckpt` and encodes it; errors name `path`.
fn encode_checked(path: &Path, ckpt: &Checkpoint) -> Result<Vec<u8>> {
    ckpt.validate()
        .map_err(|e| bad(path, format!("refusing to save: {e}")))?;
    encode(path, ckpt)
}

/// Writes `ckpt` to `path` atomically.
///
/// The bytes go to a temporary file in the same directory, which is flushed and synced to disk
/// and then renamed over `path`. On any error the temporary file is removed and a checkpoint
/// already at `path` is left untouched.
#[cfg(not(target_arch = "wasm32"))]
pub fn save(path: &Path, ckpt: &Checkpoint) -> Result<()> {
    let bytes = encode_checked(path, ckpt)?;
    write_atomic(path, &bytes)
}

/// Checks that a checkpoint can be saved at `path` (its directory exists and takes a new
/// file) by creating and removing a temporary file there, so that a run can fail at its start
/// rather than after its first epoch. Nothing at `path` itself is touched.
#[cfg(not(target_arch = "wasm32"))]
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
#[cfg(not(target_arch = "wasm32"))]
pub fn load(path: &Path) -> Result<Checkpoint> {
    let bytes = read_bounded(path)?;
    decode(path, &bytes)
}

/// Loads the checkpoint at `path` and checks it was saved for `expected`: same layer sizes,
/// hidden activation and output. The error names both networks.
#[cfg(not(target_arch = "wasm32"))]
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
    match net.dense_stack() {
        Some((sizes, hidden)) => {
            format!("{} {hidden} {}", join_sizes(&sizes, "-"), net.output())
        }
        None => net.to_string(),
    }
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

//! Writing a checkpoint: tensors by name, the checksum, the metadata as JSON, and the atomic
//! temp-file + fsync + rename.

use super::*;

/// Name of a parameter tensor (`layer0.w`) or of an optimizer slot's (`optim.1.layer0.w`).
pub(super) fn tensor_name(slot: Option<usize>, layer: usize, part: char) -> String {
    match slot {
        None => format!("layer{layer}.{part}"),
        Some(s) => format!("optim.{s}.layer{layer}.{part}"),
    }
}

/// Every tensor of `ckpt`, by name, as little-endian bytes with its shape.
pub(super) fn tensors_of(ckpt: &Checkpoint) -> Vec<(String, Vec<usize>, Vec<u8>)> {
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
pub(super) fn checksum<'a>(tensors: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> String {
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
pub(super) fn json_f32(path: &Path, what: &str, x: f32) -> Result<Value> {
    if !x.is_finite() {
        return Err(bad(path, format!("refusing to save: {what} is {x}")));
    }
    // `{:?}` is Rust's shortest round-trip form (`0.9`, `1e-8`), which is valid JSON.
    let n: Number = serde_json::from_str(&format!("{x:?}")).expect("finite f32 debug form is JSON");
    Ok(Value::Number(n))
}

pub(super) fn optimizer_json(path: &Path, opt: &Optimizer) -> Result<String> {
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

pub(super) fn encode(path: &Path, ckpt: &Checkpoint) -> Result<Vec<u8>> {
    let net = &ckpt.network;
    let tensors = tensors_of(ckpt);
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), FORMAT.to_string());
    let version = if !super::legacy_layers(net) {
        VERSION_6
    } else if ckpt.model.as_ref().is_some_and(|m| !m.targets.is_empty()) {
        VERSION_5
    } else if ckpt.model.as_ref().is_some_and(model_meta::needs_version_4) {
        VERSION_4
    } else if net.image().is_some() {
        VERSION_3
    } else if ckpt.model.is_some() {
        VERSION
    } else {
        VERSION_1
    };
    if version == VERSION_6 || net.image().is_some() {
        let input = net.input();
        meta.insert(
            "input".to_string(),
            format!("{},{},{}", input.c, input.h, input.w),
        );
        meta.insert("layers".to_string(), crate::layers::layer_string(net));
    }
    meta.insert("version".to_string(), version.to_string());
    if let Some(model) = &ckpt.model {
        for (key, value) in model_meta::write(path, model)? {
            meta.insert(key.to_string(), value);
        }
    }
    let (sizes, hidden) = net.dense_part();
    meta.insert("sizes".to_string(), join_sizes(&sizes, ","));
    meta.insert("hidden".to_string(), hidden.unwrap_or_default().to_string());
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

#[cfg(not(target_arch = "wasm32"))]
/// A temporary file that is removed when dropped unless it was renamed into place.
pub(super) struct TempFile {
    path: PathBuf,
    armed: bool,
}

#[cfg(not(target_arch = "wasm32"))]
impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
/// Creates a fresh temporary sibling of `target` (`.name.soma-tmp.<pid>.<n>`).
pub(super) fn create_temp(target: &Path, dir: &Path) -> Result<(TempFile, File)> {
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

#[cfg(not(target_arch = "wasm32"))]
pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
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

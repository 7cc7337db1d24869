//! Reading a checkpoint: a size-bounded read, then every metadata key and tensor validated
//! before anything is built.

use super::*;
use crate::shape::Chw;

/// The most values per sample a version 3 checkpoint's `input` may claim: 2^24, the pixels of
/// the largest picture predict reads.
const MAX_INPUT_VALUES: usize = 1 << 24;

#[cfg(not(target_arch = "wasm32"))]
/// Reads the whole file, refusing anything over [`MAX_FILE_BYTES`] before allocating for it.
pub(super) fn read_bounded(path: &Path) -> Result<Vec<u8>> {
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
pub(super) struct Meta<'a> {
    pub(super) path: &'a Path,
    pub(super) map: &'a HashMap<String, String>,
}

impl Meta<'_> {
    pub(super) fn get(&self, key: &str) -> Result<&str> {
        self.map
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| bad(self.path, format!("metadata key `{key}` is missing")))
    }

    pub(super) fn malformed(&self, key: &str, expected: &str, found: &str) -> Error {
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
    pub(super) fn f32(&self, key: &str) -> Result<f32> {
        let s = self.get(key)?;
        match s.trim().parse::<f32>() {
            Ok(x) if x.is_finite() => Ok(x),
            _ => Err(self.malformed(key, "a finite decimal number", s)),
        }
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
        let invalid = |e: Error| {
            bad(
                self.path,
                format!("metadata describes no valid network: {e}"),
            )
        };
        if !self.map.contains_key("layers") {
            return Network::new(&sizes, hidden, output).map_err(invalid);
        }
        let s = self.get("input")?;
        let dims = s
            .split(',')
            .map(|p| p.trim().parse::<usize>())
            .collect::<std::result::Result<Vec<_>, _>>();
        let input = match dims.as_deref() {
            // Bounded like a picture predict reads: the workspaces follow from this shape.
            Ok([c, h, w]) if *c > 0 && *h > 0 && *w > 0 && c * h * w <= MAX_INPUT_VALUES => {
                Chw::new(*c, *h, *w)
            }
            _ => {
                return Err(self.malformed(
                    "input",
                    &format!("`channels,rows,columns`, at most {MAX_INPUT_VALUES} values"),
                    s,
                ));
            }
        };
        let s = self.get("layers")?;
        let net = crate::layers::from_string(input, s, output).map_err(invalid)?;
        let (dense, shared) = net.dense_part();
        if dense != sizes || (dense.len() > 2 && shared.is_some_and(|a| a != hidden)) {
            return Err(self.malformed(
                "sizes",
                &format!(
                    "the dense part of `layers` ({}, {})",
                    join_sizes(&dense, ","),
                    shared.map_or("activations of their own".into(), |a| a.to_string())
                ),
                &format!("{s} with sizes {}, {hidden}", join_sizes(&sizes, ",")),
            ));
        }
        Ok(net)
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

pub(super) fn shape_str(shape: &[usize]) -> String {
    format!("{shape:?}")
}

/// Reads tensor `name`, checking it exists, is F32 and has exactly `shape`.
pub(super) fn read_tensor(
    path: &Path,
    st: &SafeTensors,
    name: &str,
    shape: &[usize],
) -> Result<Vec<f32>> {
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

pub(super) fn read_params(
    path: &Path,
    st: &SafeTensors,
    net: &Network,
    slot: Option<usize>,
) -> Result<Params> {
    let layers = net
        .weight_shapes()
        .enumerate()
        .map(|(l, s)| {
            let (i, o) = (s.rows, s.cols);
            let w = read_tensor(path, st, &tensor_name(slot, l, 'w'), &[i, o])?;
            let b = read_tensor(path, st, &tensor_name(slot, l, 'b'), &[s.bias])?;
            Ok(Weights {
                w: Array2::from_shape_vec((i, o), w).expect("length checked"),
                b: Array1::from(b),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Params { layers })
}

/// Whether `name` is a tensor of a network of `layers` layers with `slots` optimizer slots:
/// exactly what [`tensor_name`] writes for one of them (so `layer01.w` or `layer+1.w` is not).
fn is_expected(name: &str, layers: usize, slots: usize) -> bool {
    let (slot, rest) = match name.strip_prefix("optim.") {
        Some(rest) => match rest.split_once('.') {
            Some((s, rest)) => match s.parse::<usize>() {
                Ok(s) if s < slots => (Some(s), rest),
                _ => return false,
            },
            None => return false,
        },
        None => (None, name),
    };
    let Some((layer, part)) = rest
        .strip_prefix("layer")
        .and_then(|rest| rest.split_once('.'))
    else {
        return false;
    };
    let part = match part {
        "w" => 'w',
        "b" => 'b',
        _ => return false,
    };
    match layer.parse::<usize>() {
        Ok(l) if l < layers => tensor_name(slot, l, part) == name,
        _ => false,
    }
}

pub(super) fn decode(path: &Path, bytes: &[u8]) -> Result<Checkpoint> {
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
    let version = match version.parse::<u32>() {
        Ok(v @ (VERSION_1 | VERSION | VERSION_3 | VERSION_4 | VERSION_5 | VERSION_6)) => v,
        _ => {
            return Err(meta.malformed(
                "version",
                &format!("{VERSION_1} to {VERSION_6} (the versions this build reads)"),
                version,
            ));
        }
    };
    let has_model = match version {
        VERSION_1 => false,
        VERSION | VERSION_4 | VERSION_5 => true,
        _ => meta.map.contains_key("dataset"),
    };
    // Version 6 has version 4's model keys when its model needs them.
    let version_4 = match version {
        VERSION_6 => meta.map.contains_key("source"),
        v => v >= VERSION_4,
    };
    if version == VERSION_3 || version == VERSION_6 {
        meta.get("layers")?;
    } else if !version_4 && meta.map.contains_key("layers") {
        return Err(meta.malformed(
            "version",
            &format!("{VERSION_3} to {VERSION_6} for a checkpoint with `layers`"),
            &version.to_string(),
        ));
    }
    let network = meta.network()?;
    let optimizer = meta.optimizer()?;
    optimizer
        .validate()
        .map_err(|e| bad(path, format!("metadata key `optimizer`: {e}")))?;
    let model = if has_model {
        let mut model = meta.model(version_4)?;
        if version == VERSION_5 || (version == VERSION_6 && meta.map.contains_key("targets")) {
            model.targets = meta.targets()?;
        }
        model
            .check(&network)
            .map_err(|e| bad(path, format!("model metadata: {e}")))?;
        Some(model)
    } else {
        None
    };
    let step = meta.u64("step")?;
    if step > MAX_STEP {
        return Err(meta.malformed(
            "step",
            &format!("a step count of at most {MAX_STEP} (2^53)"),
            &step.to_string(),
        ));
    }
    let epoch = meta.u64("epoch")?;
    let sum = meta.get("checksum")?;

    // Exactly the expected set of tensors: a stray one means the file is not what the metadata
    // says (for example Adam moments in a file that claims SGD). Each name is checked by
    // reading it, not against a list of every expected name: such a list costs memory and time
    // in the layer count the metadata claims (a `sizes` of a million layers in 2 MB of text
    // made a 48 MB list, and the check was quadratic), and a missing tensor is found below at
    // the first layer that lacks it.
    let slots = optimizer.slots();
    let mut names = st.names();
    names.sort_unstable();
    let weighted = network.weighted_layers();
    if let Some(extra) = names.iter().find(|n| !is_expected(n, weighted, slots)) {
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

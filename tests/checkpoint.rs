//! Checkpoints: exact round trips for every optimizer, strict validation of whatever is on disk
//! (truncated, corrupt, foreign or mismatched files are errors, never panics), atomic
//! overwrites, and interop with the plain `safetensors` crate.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use soma::checkpoint::*;
use soma::data::DatasetKind;
use soma::{
    Activation, Error, Init, ModelInfo, Network, Normalize, OptimState, Optimizer, Output, Params,
};

fn net(sizes: &[usize], hidden: Activation) -> Network {
    Network::new(sizes, hidden, Output::SoftmaxCrossEntropy).unwrap()
}

/// A checkpoint whose every tensor holds distinct, non-zero values (so a swapped or dropped
/// tensor shows), plus the awkward bit patterns a lossy path would change.
fn checkpoint(network: Network, optimizer: Optimizer, seed: u64) -> Checkpoint {
    let mut params = Params::init(&network, Init::Uniform, seed);
    let mut w = params.layers[0].w.iter_mut();
    *w.next().unwrap() = -0.0;
    *w.next().unwrap() = f32::from_bits(1); // smallest subnormal
    params.layers[0].b[0] = f32::from_bits(0x7fc0_1234); // NaN with a payload
    let mut state = OptimState::new(&optimizer, &params);
    for (s, slot) in state.slots.iter_mut().enumerate() {
        *slot = Params::init(&network, Init::He, seed + 100 + s as u64);
    }
    state.step = 12_345;
    Checkpoint {
        network,
        params,
        optimizer,
        state,
        epoch: 7,
        model: None,
    }
}

fn bits(p: &Params) -> Vec<u32> {
    p.layers
        .iter()
        .flat_map(|l| l.w.iter().chain(l.b.iter()).map(|x| x.to_bits()))
        .collect()
}

fn assert_identical(a: &Checkpoint, b: &Checkpoint) {
    assert_eq!(a.network, b.network);
    assert_eq!(a.optimizer, b.optimizer);
    assert_eq!(a.epoch, b.epoch);
    assert_eq!(a.state.step, b.state.step);
    assert_eq!(bits(&a.params), bits(&b.params));
    for (l, (x, y)) in a.params.layers.iter().zip(&b.params.layers).enumerate() {
        assert_eq!(x.w.dim(), y.w.dim(), "layer {l} w shape");
        assert_eq!(x.b.dim(), y.b.dim(), "layer {l} b shape");
    }
    assert_eq!(a.state.slots.len(), b.state.slots.len());
    for (x, y) in a.state.slots.iter().zip(&b.state.slots) {
        assert_eq!(bits(x), bits(y));
    }
}

/// Asserts `r` is an `Error::Checkpoint` about `path` and returns its full message.
fn checkpoint_error(r: soma::Result<Checkpoint>, path: &Path) -> String {
    match r {
        Ok(c) => panic!(
            "expected an error for {}, loaded {}",
            path.display(),
            c.network
        ),
        Err(e @ Error::Checkpoint { .. }) => {
            let Error::Checkpoint { path: p, .. } = &e else {
                unreachable!()
            };
            assert_eq!(p, path, "error names the wrong file: {e}");
            let msg = e.to_string();
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            msg
        }
        Err(e) => panic!("expected Error::Checkpoint, got {e:?}"),
    }
}

/// Entries of `dir`, sorted, to show that no temporary file was left behind.
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn small() -> Checkpoint {
    checkpoint(net(&[5, 4, 3], Activation::Tanh), Optimizer::adam(), 3)
}

/// The metadata of the checkpoint file at `path`.
fn metadata(path: &Path) -> HashMap<String, String> {
    let bytes = fs::read(path).unwrap();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    header.metadata().clone().unwrap()
}

fn saved(dir: &Path, ckpt: &Checkpoint) -> PathBuf {
    let path = dir.join("run.safetensors");
    save(&path, ckpt).unwrap();
    path
}

/// Re-serializes the file at `path` after `edit` changed its metadata and tensors (name →
/// dtype, shape, bytes): the way to build well-formed safetensors files that are bad
/// checkpoints.
type Tensors = Vec<(String, Dtype, Vec<usize>, Vec<u8>)>;
fn rewrite(path: &Path, edit: impl FnOnce(&mut HashMap<String, String>, &mut Tensors)) {
    let bytes = fs::read(path).unwrap();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta = header.metadata().clone().unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Tensors = st
        .iter()
        .map(|(n, v)| {
            (
                n.to_string(),
                v.dtype(),
                v.shape().to_vec(),
                v.data().to_vec(),
            )
        })
        .collect();
    edit(&mut meta, &mut tensors);
    let views: Vec<_> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    fs::write(path, safetensors::serialize(views, Some(meta)).unwrap()).unwrap();
}

#[test]
fn round_trip_is_bit_identical_for_every_optimizer() {
    let dir = tempfile::tempdir().unwrap();
    let optimizers = [
        Optimizer::Sgd,
        Optimizer::momentum(),
        Optimizer::Momentum {
            momentum: 0.85,
            weight_decay: 1e-4,
        },
        Optimizer::adam(),
        Optimizer::Adam {
            beta1: 0.8,
            beta2: 0.995,
            eps: 1e-7,
            weight_decay: 3e-4,
        },
        // Values whose shortest decimal form is long: must still come back bit for bit.
        Optimizer::Adam {
            beta1: f32::from_bits(0x3f66_6667),
            beta2: 1.0 - f32::EPSILON,
            eps: f32::MIN_POSITIVE,
            weight_decay: 0.1 + 0.2,
        },
    ];
    for (i, opt) in optimizers.into_iter().enumerate() {
        let hidden = Activation::ALL[i % Activation::ALL.len()];
        let ckpt = checkpoint(net(&[784, 64, 64, 10], hidden), opt, i as u64);
        let path = dir.path().join(format!("{i}.safetensors"));
        save(&path, &ckpt).unwrap();
        let back = load(&path).unwrap();
        assert_identical(&ckpt, &back);
        assert_eq!(back.state.slots.len(), opt.slots(), "{opt:?}");
        assert_eq!(back.epoch, 7);
        assert_eq!(back.state.step, 12_345);
        // And through the method and `load_into` with the right network.
        ckpt.save(&path).unwrap();
        assert_identical(&ckpt, &load_into(&path, &ckpt.network).unwrap());
    }
    // The sigmoid-MSE output and a one-layer network survive too.
    let mse = Network::new(&[2, 1], Activation::Sigmoid, Output::SigmoidMse).unwrap();
    let ckpt = checkpoint(mse, Optimizer::momentum(), 9);
    let path = saved(dir.path(), &ckpt);
    assert_identical(&ckpt, &load(&path).unwrap());
}

#[test]
fn loading_into_another_network_names_both() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = checkpoint(net(&[784, 32, 10], Activation::Sigmoid), Optimizer::Sgd, 1);
    let path = saved(dir.path(), &ckpt);

    let want = net(&[784, 64, 64, 10], Activation::Sigmoid);
    let msg = checkpoint_error(load_into(&path, &want), &path);
    assert!(msg.contains("784-32-10 sigmoid"), "{msg}");
    assert!(msg.contains("784-64-64-10 sigmoid"), "{msg}");

    // Same sizes, other activation: still a different network.
    let msg = checkpoint_error(
        load_into(&path, &net(&[784, 32, 10], Activation::Relu)),
        &path,
    );
    assert!(msg.contains("sigmoid") && msg.contains("relu"), "{msg}");

    // Same sizes and activation, other output.
    let mse = Network::new(&[784, 32, 10], Activation::Sigmoid, Output::SigmoidMse).unwrap();
    let msg = checkpoint_error(load_into(&path, &mse), &path);
    assert!(msg.contains("sigmoid-mse"), "{msg}");

    assert_identical(&ckpt, &load_into(&path, &ckpt.network).unwrap());
}

#[test]
fn truncated_files_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved(dir.path(), &small());
    let full = fs::read(&path).unwrap();
    let cut = dir.path().join("cut.safetensors");
    // Every length short of the whole file: header length, header, and tensor data cut.
    for len in 0..full.len() {
        fs::write(&cut, &full[..len]).unwrap();
        let msg = checkpoint_error(load(&cut), &cut);
        assert!(!msg.is_empty(), "cut at {len}");
    }
    // Appended bytes are as wrong as missing ones.
    let mut long = full.clone();
    long.extend_from_slice(&[0; 4]);
    fs::write(&cut, &long).unwrap();
    checkpoint_error(load(&cut), &cut);
    // The original still loads: the test above failed for the right reason.
    fs::write(&cut, &full).unwrap();
    assert_identical(&small(), &load(&cut).unwrap());
}

#[test]
fn every_corrupted_byte_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved(dir.path(), &small());
    let full = fs::read(&path).unwrap();
    let bad = dir.path().join("bad.safetensors");
    // Flipping any byte (length prefix, JSON header, padding or tensor data) must be noticed:
    // the header no longer parses or no longer matches, or the data checksum differs.
    for i in 0..full.len() {
        let mut b = full.clone();
        b[i] ^= 0xff;
        fs::write(&bad, &b).unwrap();
        checkpoint_error(load(&bad), &bad);
    }
    // A single flipped bit in the tensor data specifically names the checksum.
    let mut b = full.clone();
    let last = b.len() - 1;
    b[last] ^= 0x01;
    fs::write(&bad, &b).unwrap();
    let msg = checkpoint_error(load(&bad), &bad);
    assert!(msg.contains("checksum"), "{msg}");
}

#[test]
fn garbage_and_foreign_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.safetensors");

    // Pseudo-random bytes (a fixed LCG: the test is deterministic).
    let mut x: u64 = 0x1234_5678;
    let garbage: Vec<u8> = (0..4096)
        .map(|_| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (x >> 56) as u8
        })
        .collect();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("random", garbage),
        ("text", b"this is not a checkpoint\n".to_vec()),
        ("huge header length", u64::MAX.to_le_bytes().to_vec()),
        ("header past the end", {
            let mut b = 1_000u64.to_le_bytes().to_vec();
            b.extend_from_slice(b"{}");
            b
        }),
        ("header claims a huge tensor", {
            let h = br#"{"a":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,4]}}"#;
            let mut b = (h.len() as u64).to_le_bytes().to_vec();
            b.extend_from_slice(h);
            b.extend_from_slice(&[0; 4]);
            b
        }),
        ("safetensors without metadata", {
            let data = [0u8; 8];
            let v = TensorView::new(Dtype::F32, vec![2], &data).unwrap();
            safetensors::serialize([("layer0.w", v)], None).unwrap()
        }),
    ];
    for (what, bytes) in cases {
        fs::write(&path, &bytes).unwrap();
        let msg = checkpoint_error(load(&path), &path);
        assert!(!msg.is_empty(), "{what}");
    }

    // A directory and a missing file are errors too (the missing file an I/O error).
    checkpoint_error(load(dir.path()), dir.path());
    let missing = dir.path().join("missing.safetensors");
    match load(&missing) {
        Err(Error::Io { path, .. }) => assert_eq!(path, missing),
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

#[test]
fn files_over_the_size_limit_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.safetensors");
    // Sparse: no disk space or memory is used, and `load` must not try to read it all.
    let f = fs::File::create(&path).unwrap();
    f.set_len(MAX_FILE_BYTES + 1).unwrap();
    drop(f);
    let msg = checkpoint_error(load(&path), &path);
    assert!(msg.contains(&MAX_FILE_BYTES.to_string()), "{msg}");
}

#[test]
fn missing_metadata_keys_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let keys = [
        "format",
        "version",
        "sizes",
        "hidden",
        "output",
        "optimizer",
        "step",
        "epoch",
        "checksum",
    ];
    for key in keys {
        let path = saved(dir.path(), &small());
        rewrite(&path, |meta, _| {
            assert!(meta.remove(key).is_some(), "saved files have `{key}`");
        });
        let msg = checkpoint_error(load(&path), &path);
        assert!(msg.contains(&format!("`{key}` is missing")), "{key}: {msg}");
    }
}

#[test]
fn malformed_metadata_is_an_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, &str)] = &[
        ("format", "gguf", "format"),
        ("version", "7", "version"),
        ("sizes", "5,four,3", "sizes"),
        ("sizes", "5", "network"),
        ("sizes", "5,0,3", "network"),
        ("hidden", "swish", "hidden"),
        ("output", "softmax", "output"),
        ("optimizer", "adam", "optimizer"),
        ("optimizer", r#"{"name":"lion"}"#, "optimizer"),
        ("optimizer", r#"{"name":"adam","beta1":0.9}"#, "beta2"),
        (
            "optimizer",
            r#"{"name":"adam","beta1":"x","beta2":0.999,"eps":1e-8,"weight_decay":0}"#,
            "beta1",
        ),
        (
            "optimizer",
            r#"{"name":"adam","beta1":1e99,"beta2":0.999,"eps":1e-8,"weight_decay":0}"#,
            "beta1",
        ),
        (
            "optimizer",
            r#"{"name":"adam","beta1":0.9,"beta2":0.999,"eps":1e-8,"weight_decay":0,"lr":1}"#,
            "lr",
        ),
        ("step", "-1", "step"),
        ("epoch", "seven", "epoch"),
        ("checksum", "fnv1a64:0000000000000000", "checksum"),
    ];
    for &(key, value, needle) in cases {
        let path = saved(dir.path(), &small());
        rewrite(&path, |meta, _| {
            meta.insert(key.to_string(), value.to_string());
        });
        let msg = checkpoint_error(load(&path), &path);
        assert!(msg.contains(needle), "{key}={value}: {msg}");
    }
}

#[test]
fn tensors_must_match_the_network_and_optimizer() {
    let dir = tempfile::tempdir().unwrap();
    // (edit, words the message must contain)
    type Edit = Box<dyn Fn(&mut Tensors)>;
    let find = |t: &mut Tensors, name: &str| t.iter().position(|x| x.0 == name).unwrap();
    let cases: Vec<(Edit, Vec<&str>)> = vec![
        (
            Box::new(move |t| {
                let i = find(t, "layer0.w");
                t[i].2 = vec![4, 5];
            }),
            vec!["layer0.w", "[5, 4]", "[4, 5]"],
        ),
        (
            Box::new(move |t| {
                let i = find(t, "optim.1.layer1.b");
                t[i].2 = vec![1, 3];
            }),
            vec!["optim.1.layer1.b", "[3]", "[1, 3]"],
        ),
        (
            Box::new(move |t| {
                let i = find(t, "layer1.b");
                t[i].1 = Dtype::I32;
            }),
            vec!["layer1.b", "F32", "I32"],
        ),
        (
            Box::new(move |t| {
                let i = find(t, "layer1.b");
                t.remove(i);
            }),
            vec!["layer1.b", "missing"],
        ),
        (
            // Adam needs two slots: drop the second.
            Box::new(|t| t.retain(|x| !x.0.starts_with("optim.1."))),
            vec!["optim.1.layer0", "missing"],
        ),
        (
            Box::new(|t| t.push(("optim.2.layer0.w".into(), Dtype::F32, vec![1], vec![0; 4]))),
            vec!["unexpected", "optim.2.layer0.w"],
        ),
    ];
    for (edit, words) in cases {
        let path = saved(dir.path(), &small());
        rewrite(&path, |_, t| edit(t));
        let msg = checkpoint_error(load(&path), &path);
        for w in words {
            assert!(msg.contains(w), "`{w}` not in: {msg}");
        }
    }

    // Metadata that claims SGD over a file holding Adam moments.
    let path = saved(dir.path(), &small());
    rewrite(&path, |meta, _| {
        meta.insert("optimizer".into(), r#"{"name":"sgd"}"#.into());
    });
    let msg = checkpoint_error(load(&path), &path);
    assert!(msg.contains("unexpected tensor `optim.0."), "{msg}");
}

#[test]
fn saving_over_an_existing_checkpoint_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let first = small();
    let path = saved(dir.path(), &first);
    let mut second = checkpoint(net(&[6, 2], Activation::Relu), Optimizer::momentum(), 4);
    second.epoch = 8;
    save(&path, &second).unwrap();
    assert_identical(&second, &load(&path).unwrap());
    assert_eq!(entries(dir.path()), ["run.safetensors"]);

    // A relative path with no directory part works as well.
    let here = std::env::current_dir().unwrap();
    std::env::set_current_dir(dir.path()).unwrap();
    let r = save(Path::new("run.safetensors"), &first);
    std::env::set_current_dir(here).unwrap();
    r.unwrap();
    assert_identical(&first, &load(&path).unwrap());
    assert_eq!(entries(dir.path()), ["run.safetensors"]);
}

#[test]
fn a_failed_save_leaves_the_old_file_and_no_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let old = small();
    let path = saved(dir.path(), &old);
    let old_bytes = fs::read(&path).unwrap();
    let new = checkpoint(net(&[5, 4, 3], Activation::Tanh), Optimizer::adam(), 99);

    // The target is a directory: the temporary file is written, the rename fails, and the
    // temporary file must go.
    let as_dir = dir.path().join("dir.safetensors");
    fs::create_dir(&as_dir).unwrap();
    fs::write(as_dir.join("keep"), b"x").unwrap();
    assert!(save(&as_dir, &new).is_err());
    assert_eq!(entries(&as_dir), ["keep"]);
    assert_eq!(entries(dir.path()), ["dir.safetensors", "run.safetensors"]);

    // An inconsistent checkpoint (parameters for another network) is refused before writing.
    let mut wrong = new.clone();
    wrong.params = Params::init(&net(&[5, 2, 3], Activation::Tanh), Init::Uniform, 0);
    let msg = checkpoint_error(save(&path, &wrong).map(|_| old.clone()), &path);
    assert!(msg.contains("refusing"), "{msg}");
    // Optimizer state that does not fit the optimizer, likewise.
    let mut wrong = new.clone();
    wrong.state.slots.pop();
    checkpoint_error(save(&path, &wrong).map(|_| old.clone()), &path);
    // Non-finite hyper-parameters cannot be written as JSON: refused, not written as garbage.
    let mut wrong = new.clone();
    wrong.optimizer = Optimizer::Adam {
        beta1: f32::NAN,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
    };
    checkpoint_error(save(&path, &wrong).map(|_| old.clone()), &path);

    // A directory that does not exist.
    assert!(save(&dir.path().join("nope/run.safetensors"), &new).is_err());

    assert_eq!(fs::read(&path).unwrap(), old_bytes);
    assert_eq!(entries(dir.path()), ["dir.safetensors", "run.safetensors"]);

    // A read-only directory. Root ignores permissions, so this part only runs where the
    // permission bits are enforced.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let ro = dir.path().join("ro");
        fs::create_dir(&ro).unwrap();
        let path = saved(&ro, &old);
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
        let enforced = fs::File::create(ro.join("probe")).is_err();
        if enforced {
            assert!(save(&path, &new).is_err());
            assert_eq!(fs::read(&path).unwrap(), old_bytes);
            assert_eq!(entries(&ro), ["run.safetensors"]);
        } else {
            eprintln!("running as root: read-only directory case not exercised");
            fs::remove_file(ro.join("probe")).unwrap();
        }
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o755)).unwrap();
    }

    // And the old checkpoint still loads as it was.
    assert_identical(&old, &load(&path).unwrap());
}

#[test]
fn saved_files_read_with_the_plain_safetensors_crate() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = checkpoint(
        net(&[784, 64, 64, 10], Activation::Sigmoid),
        Optimizer::adam(),
        5,
    );
    let path = saved(dir.path(), &ckpt);
    let bytes = fs::read(&path).unwrap();

    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().clone().unwrap();
    assert_eq!(meta["format"], "soma-checkpoint");
    assert_eq!(meta["version"], "1");
    assert_eq!(meta["sizes"], "784,64,64,10");
    assert_eq!(meta["hidden"], "sigmoid");
    assert_eq!(meta["output"], "softmax-cross-entropy");
    assert_eq!(meta["step"], "12345");
    assert_eq!(meta["epoch"], "7");
    let opt: serde_json::Value = serde_json::from_str(&meta["optimizer"]).unwrap();
    assert_eq!(opt["name"], "adam");
    assert_eq!(opt["beta1"].as_f64(), Some(0.9));
    assert_eq!(opt["beta2"].as_f64(), Some(0.999));
    assert_eq!(opt["eps"].as_f64(), Some(1e-8));
    assert_eq!(opt["weight_decay"].as_f64(), Some(0.0));

    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut names = st.names();
    names.sort();
    let mut want = Vec::new();
    for prefix in ["", "optim.0.", "optim.1."] {
        for l in 0..3 {
            want.push(format!("{prefix}layer{l}.b"));
            want.push(format!("{prefix}layer{l}.w"));
        }
    }
    want.sort();
    assert_eq!(names, want);

    let f32s = |name: &str, shape: &[usize]| -> Vec<u32> {
        let t = st.tensor(name).unwrap();
        assert_eq!(t.dtype(), Dtype::F32, "{name}");
        assert_eq!(t.shape(), shape, "{name}");
        t.data()
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    let shapes: Vec<_> = ckpt.network.weight_shapes().collect();
    for (l, layer) in ckpt.params.layers.iter().enumerate() {
        let (i, o) = (shapes[l].rows, shapes[l].cols);
        let w: Vec<u32> = layer.w.iter().map(|x| x.to_bits()).collect();
        assert_eq!(
            f32s(&format!("layer{l}.w"), &[i, o]),
            w,
            "row-major [in, out]"
        );
        let b: Vec<u32> = layer.b.iter().map(|x| x.to_bits()).collect();
        assert_eq!(f32s(&format!("layer{l}.b"), &[o]), b);
        for s in 0..2 {
            let m = &ckpt.state.slots[s].layers[l];
            let w: Vec<u32> = m.w.iter().map(|x| x.to_bits()).collect();
            assert_eq!(f32s(&format!("optim.{s}.layer{l}.w"), &[i, o]), w);
        }
    }
    // Spot check against the layout: w[r][c] sits at r * out + c.
    let w0 = f32s("layer0.w", &[784, 64]);
    assert_eq!(w0[3 * 64 + 17], ckpt.params.layers[0].w[[3, 17]].to_bits());
}

// ---------------------------------------------------------------------------------------------
// Format version 2: the model description

/// `small()` with a model description: awkward scale bits and names that need JSON escaping.
fn small_model() -> Checkpoint {
    let mut c = small();
    c.model = Some(ModelInfo {
        image: None,
        dataset: "toy set".into(),
        classes: vec!["cat".into(), "a \"quoted\" dog".into(), "ünïcode/ß".into()],
        ..ModelInfo::plain(Normalize {
            scale: f32::from_bits(0x3c50_8b3d),
            shift: -0.424_072_47,
        })
    });
    c
}

#[test]
fn version_2_round_trips_the_model_and_version_1_still_loads() {
    let dir = tempfile::tempdir().unwrap();
    let with = small_model();
    let path = saved(dir.path(), &with);
    let back = load(&path).unwrap();
    assert_identical(&with, &back);
    assert_eq!(back.model, with.model);
    let (m, b) = (with.model.unwrap(), back.model.unwrap());
    assert_eq!(m.normalize.scale.to_bits(), b.normalize.scale.to_bits());
    assert_eq!(m.normalize.shift.to_bits(), b.normalize.shift.to_bits());
    let bytes = fs::read(&path).unwrap();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().clone().unwrap();
    assert_eq!(meta["version"], "2");
    assert_eq!(meta["image"], "none");
    assert_eq!(meta["dataset"], "toy set");

    // A checkpoint without a model description is a version 1 file, and loads as one.
    let path = saved(dir.path(), &small());
    let bytes = fs::read(&path).unwrap();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(header.metadata().as_ref().unwrap()["version"], "1");
    let back = load(&path).unwrap();
    assert_eq!(back.model, None);
    assert_identical(&small(), &back);

    // What `mnist --save` writes: 28×28 images and the ten digits.
    let mut mnist = checkpoint(net(&[784, 16, 10], Activation::Sigmoid), Optimizer::Sgd, 1);
    let info = ModelInfo::for_dataset(DatasetKind::Mnist, Normalize::standardize(&[0, 255, 17]));
    mnist.model = Some(info.clone());
    let path = dir.path().join("mnist.safetensors");
    save(&path, &mnist).unwrap();
    let bytes = fs::read(&path).unwrap();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().clone().unwrap();
    assert_eq!(meta["image"], "28,28");
    assert_eq!(
        meta["classes"],
        r#"["0","1","2","3","4","5","6","7","8","9"]"#
    );
    assert_eq!(load(&path).unwrap().model, Some(info));
}

#[test]
fn model_metadata_is_checked_and_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for key in ["input_scale", "input_shift", "image", "dataset", "classes"] {
        let path = saved(dir.path(), &small_model());
        rewrite(&path, |meta, _| {
            assert!(meta.remove(key).is_some(), "version 2 files have `{key}`");
        });
        let msg = checkpoint_error(load(&path), &path);
        assert!(msg.contains(&format!("`{key}` is missing")), "{key}: {msg}");
    }
    let cases: &[(&str, &str, &str)] = &[
        ("input_scale", "abc", "input_scale"),
        ("input_scale", "inf", "input_scale"),
        ("input_scale", "0", "input scale"),
        ("input_shift", "NaN", "input_shift"),
        ("image", "28x28", "image"),
        ("image", "0,5", "image"),
        ("image", "1,4", "image shape"), // 4 pixels for a 5-input network
        ("classes", "[1,2,3]", "classes"),
        ("classes", r#"["a","b"]"#, "class names"), // 2 names for 3 outputs
        ("classes", "cat,dog,eel", "classes"),
    ];
    for &(key, value, needle) in cases {
        let path = saved(dir.path(), &small_model());
        rewrite(&path, |meta, _| {
            meta.insert(key.to_string(), value.to_string());
        });
        let msg = checkpoint_error(load(&path), &path);
        assert!(msg.contains(needle), "{key}={value}: {msg}");
    }
    // A description that does not fit its network is refused when saving, too.
    let mut wrong = small_model();
    wrong.model.as_mut().unwrap().classes.pop();
    let path = dir.path().join("wrong.safetensors");
    let msg = checkpoint_error(save(&path, &wrong).map(|_| small()), &path);
    assert!(
        msg.contains("refusing") && msg.contains("class names"),
        "{msg}"
    );
    assert!(!path.exists());
}

#[test]
fn hyper_parameters_out_of_range_are_refused_on_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved(dir.path(), &small());
    rewrite(&path, |meta, _| {
        meta.insert(
            "optimizer".into(),
            r#"{"name":"adam","beta1":0.9,"beta2":0.999,"eps":1e-8,"weight_decay":-0.1}"#.into(),
        );
    });
    let msg = checkpoint_error(load(&path), &path);
    assert!(
        msg.contains("weight decay") && msg.contains("-0.1"),
        "{msg}"
    );
}

// ---------------------------------------------------------------------------------------------
// Format version 4: a model trained on a user's data

/// `small()` (5 inputs) as a table model: a numeric column and a one-hot one of four levels,
/// standardised per feature.
fn small_table_model() -> Checkpoint {
    use soma::model::{Source, TableColumn};
    let mut c = small();
    c.model = Some(ModelInfo {
        feature_maps: (0..5)
            .map(|i| Normalize {
                scale: 0.5 + i as f32,
                shift: -0.25 * i as f32,
            })
            .collect(),
        source: Source::Table {
            columns: vec![
                TableColumn::Numeric {
                    name: "petal \"width\"".into(),
                },
                TableColumn::OneHot {
                    name: "colour".into(),
                    levels: vec!["blue".into(), "green".into(), "red".into(), "ünï".into()],
                },
            ],
            label: "species".into(),
        },
        dataset: "flowers".into(),
        classes: vec!["a".into(), "b".into(), "c".into()],
        ..ModelInfo::plain(Normalize::IDENTITY)
    });
    c
}

#[test]
fn version_4_round_trips_maps_sources_and_colour_images() {
    let dir = tempfile::tempdir().unwrap();
    let table = small_table_model();
    let path = saved(dir.path(), &table);
    let back = load(&path).unwrap();
    assert_eq!(back.model, table.model);
    let meta = metadata(&path);
    assert_eq!(meta["version"], "4");
    assert!(meta["source"].contains("\"table\""), "{}", meta["source"]);

    // A 3×2×2 image model (12 inputs) with per-channel maps: `image` is `c,h,w`.
    let net = Network::new(&[12, 3], Activation::Sigmoid, Output::SoftmaxCrossEntropy).unwrap();
    let params = Params::init(&net, Init::Uniform, 2);
    let pictures = Checkpoint {
        state: OptimState::new(&Optimizer::Sgd, &params),
        network: net,
        params,
        optimizer: Optimizer::Sgd,
        epoch: 1,
        model: Some(ModelInfo {
            channel_maps: vec![Normalize::UNIT, Normalize::IDENTITY, Normalize::UNIT],
            image: Some(soma::shape::Chw::new(3, 2, 2)),
            source: soma::model::Source::Pictures,
            classes: vec!["x".into(), "y".into(), "z".into()],
            ..ModelInfo::plain(Normalize::IDENTITY)
        }),
    };
    let path = dir.path().join("pictures.safetensors");
    save(&path, &pictures).unwrap();
    assert_eq!(load(&path).unwrap().model, pictures.model);
    assert_eq!(metadata(&path)["image"], "3,2,2");

    // A model that needs nothing new stays version 2.
    let path = saved(dir.path(), &small_model());
    assert_eq!(metadata(&path)["version"], "2");
}

/// A regression model of 5 inputs and 2 targets (a linear output), as a table.
fn small_regression_model() -> Checkpoint {
    use soma::model::{Source, TableColumn, Target};
    let net = Network::new(&[5, 4, 2], Activation::Relu, Output::LinearMse).unwrap();
    let mut c = checkpoint(net, Optimizer::adam(), 3);
    c.model = Some(ModelInfo {
        feature_maps: vec![Normalize::UNIT; 5],
        source: Source::Table {
            columns: (0..5)
                .map(|i| TableColumn::Numeric {
                    name: format!("x{i}"),
                })
                .collect(),
            label: "price".into(),
        },
        targets: vec![
            Target {
                name: "price \"€\"".into(),
                map: Normalize {
                    scale: f32::from_bits(0x3a83_126f),
                    shift: -2.5,
                },
            },
            Target {
                name: "rent".into(),
                map: Normalize::IDENTITY,
            },
        ],
        ..ModelInfo::plain(Normalize::IDENTITY)
    });
    c
}

#[test]
fn version_5_round_trips_regression_targets_and_refuses_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let model = small_regression_model();
    let path = saved(dir.path(), &model);
    let back = load(&path).unwrap();
    assert_eq!(back.model, model.model);
    assert_eq!(back.network.output(), Output::LinearMse);
    let meta = metadata(&path);
    assert_eq!(meta["version"], "5");
    assert_eq!(meta["output"], "linear-mse");
    let cases: &[(&str, &str)] = &[
        ("[]", "targets"),
        (
            r#"[{"name":"a","scale":1,"shift":0}]"#,
            "regression targets",
        ),
        (
            r#"[{"name":"a","scale":1},{"name":"b","scale":1,"shift":0}]"#,
            "targets",
        ),
        (
            r#"[{"name":"a","scale":0,"shift":0},{"name":"b","scale":1,"shift":0}]"#,
            "scale",
        ),
        (
            r#"[{"name":1,"scale":1,"shift":0},{"name":"b","scale":1,"shift":0}]"#,
            "targets",
        ),
    ];
    for &(value, needle) in cases {
        let path = saved(dir.path(), &small_regression_model());
        rewrite(&path, |meta, _| {
            meta.insert("targets".to_string(), value.to_string());
        });
        let msg = checkpoint_error(load(&path), &path);
        assert!(msg.contains(needle), "targets={value}: {msg}");
    }
    // Version 5 needs its key.
    let path = saved(dir.path(), &small_regression_model());
    rewrite(&path, |meta, _| {
        meta.remove("targets");
    });
    assert!(checkpoint_error(load(&path), &path).contains("targets"));
}

#[test]
fn malformed_version_4_keys_are_errors_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, &str)] = &[
        ("input_maps", "[1,2]", "input_maps"),
        ("input_maps", r#"{"feature":[[1,0],[2,0]]}"#, "per-feature"),
        ("input_maps", r#"{"feature":[[1,"x"]]}"#, "input_maps"),
        ("input_maps", r#"{"pixel":[[1,0]]}"#, "input_maps"),
        (
            "input_maps",
            r#"{"feature":[[0,0],[1,0],[1,0],[1,0],[1,0]]}"#,
            "scale",
        ),
        ("source", r#""pictures!""#, "source"),
        ("source", r#"{"table":{"label":"y"}}"#, "source"),
        (
            "source",
            r#"{"table":{"label":"y","columns":[{"name":"a","levels":[]}]}}"#,
            "source",
        ),
        (
            "source",
            r#"{"table":{"label":"y","columns":[{"name":"a"}]}}"#,
            "table columns",
        ),
        ("image", "3,1", "image"),
    ];
    for &(key, value, needle) in cases {
        let path = saved(dir.path(), &small_table_model());
        rewrite(&path, |meta, _| {
            meta.insert(key.to_string(), value.to_string());
        });
        let msg = checkpoint_error(load(&path), &path);
        assert!(msg.contains(needle), "{key}={value}: {msg}");
    }
    // A version 2 file may not use version 4's image form.
    let path = saved(dir.path(), &small_model());
    rewrite(&path, |meta, _| {
        meta.insert("image".into(), "1,1,5".into());
    });
    assert!(checkpoint_error(load(&path), &path).contains("image"));
}

/// Layers with activations of their own are written as version 6 (with `input` and `layers`,
/// a dense stack's too) and come back the same network, model and tensors; networks the older
/// versions describe keep their versions, so that older builds still read them.
#[test]
fn version_6_round_trips_layers_with_their_own_activations() {
    let dir = tempfile::tempdir().unwrap();
    let values = soma::shape::Chw::new(12, 1, 1);
    let image = soma::shape::Chw::new(1, 8, 8);
    let cases = [
        (values, "dense8,relu,dense6,tanh,dense3", "12,1,1"),
        (values, "dense8,dense3", "12,1,1"),
        (image, "conv2k3,pool,dense5,relu,dense3", "1,8,8"),
        // Layer kinds the older versions do not know, every layer activated.
        (
            image,
            "conv2k3,relu,avgpool,tanh,dense5,relu,dense3",
            "1,8,8",
        ),
        (image, "conv2k3,relu,dropout0.5,dense3", "1,8,8"),
    ];
    for (input, text, want_input) in cases {
        let network = soma::layers::from_string(input, text, Output::SoftmaxCrossEntropy).unwrap();
        let mut ckpt = checkpoint(network, Optimizer::adam(), 9);
        let path = saved(dir.path(), &ckpt);
        let meta = metadata(&path);
        assert_eq!(meta["version"], VERSION_6.to_string(), "{text}");
        assert_eq!(
            (meta["input"].as_str(), meta["layers"].as_str()),
            (want_input, text)
        );
        assert_identical(&load(&path).unwrap(), &ckpt);
        // With a model: per-feature maps (version 4's keys) or an image (version 2's).
        ckpt.model = Some(if input == image {
            ModelInfo {
                image: Some(image),
                ..ModelInfo::plain(Normalize::UNIT)
            }
        } else {
            ModelInfo {
                feature_maps: vec![Normalize::UNIT; input.len()],
                ..ModelInfo::plain(Normalize::IDENTITY)
            }
        });
        let path = saved(dir.path(), &ckpt);
        assert_eq!(load(&path).unwrap().model, ckpt.model, "{text}");
    }
    for (text, version) in [
        ("dense8,relu,dense6,relu,dense3", "1"),
        ("conv2k3,relu,pool,dense5,relu,dense3", "3"),
    ] {
        let input = if text.starts_with("conv") {
            image
        } else {
            values
        };
        let network = soma::layers::from_string(input, text, Output::SoftmaxCrossEntropy).unwrap();
        let path = saved(dir.path(), &checkpoint(network, Optimizer::Sgd, 1));
        assert_eq!(metadata(&path)["version"], version, "{text}");
    }
}

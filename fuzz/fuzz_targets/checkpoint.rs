//! Checkpoints from bytes (`Checkpoint::from_bytes`), then what the page does with one a user
//! uploads (web/src/trainer.rs, `loadCheckpoint`), on the CPU backend: check the network reads
//! 28×28 digits and the model metadata fits it, build a backend from the network, parameters
//! and optimizer, restore the optimizer state, and predict one digit. Every step must return
//! `Ok` or an `Error`: a checkpoint that loads must never make a later step panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use soma::backend::Backend;
use soma::checkpoint::Checkpoint;
use soma::cpu::CpuBackend;
use soma::{ModelInfo, Normalize, data::DatasetKind, digit};

fuzz_target!(|data: &[u8]| {
    let Ok(ckpt) = Checkpoint::from_bytes("fuzz-checkpoint", data) else {
        return;
    };
    // As the page: a version 1 file takes the page's own model description.
    let model = ckpt
        .model
        .clone()
        .unwrap_or_else(|| ModelInfo::for_dataset(DatasetKind::Mnist, Normalize::UNIT));
    let side = digit::SIDE;
    if ckpt.network.inputs() != side * side || model.image != Some((side, side)) {
        return;
    }
    if model.check(&ckpt.network).is_err() {
        return;
    }
    let Ok(mut backend) = CpuBackend::new(&ckpt.network, ckpt.params, ckpt.optimizer) else {
        return;
    };
    if backend.set_optim_state(&ckpt.state).is_err() {
        return;
    }
    // One mid-grey digit, normalised as the checkpoint says.
    let Ok(inputs) = model.inputs(&[128; 28 * 28], side * side) else {
        return;
    };
    if let Ok(probs) = backend.predict(inputs.view()) {
        assert_eq!(probs.dim(), (1, ckpt.network.outputs()));
        for (i, _) in soma::model::top_k(probs.row(0).as_slice().unwrap_or(&[]), 3) {
            let _ = model.class_name(i);
        }
    }
});

//! Checkpoints from bytes (`Checkpoint::from_bytes`), then what the page does with one a user
//! uploads (web/src/trainer.rs, `loadCheckpoint`), on the CPU backend: check the network reads
//! 28×28 digits and the model metadata fits it, build a backend from the network, parameters
//! and optimizer, restore the optimizer state, predict one digit, then resume training from the
//! checkpoint's epoch and step for one step (the page's `start`: `Run::new`, the training set,
//! one tick). Every step must return `Ok` or an `Error`: a checkpoint that loads must never make
//! a later step panic (a step count of `u64::MAX` once overflowed on the first training step).
#![no_main]

use libfuzzer_sys::fuzz_target;
use soma::backend::Backend;
use soma::checkpoint::Checkpoint;
use soma::cpu::CpuBackend;
use soma::train::{Run, Schedule, TrainConfig};
use soma::{Dataset, Inputs, ModelInfo, Normalize, Targets, data::DatasetKind, digit};

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
    if ckpt.network.inputs() != side * side
        || model.image != Some(soma::shape::Chw::new(1, side, side))
    {
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
    // One digit labelled 0, with as many classes as the network has outputs (the page's
    // MNIST set fits only 10; any count must be an error or train).
    let Ok(train) = Dataset::new(
        side * side,
        Inputs::U8(vec![128; side * side]),
        Targets::Labels {
            labels: vec![0],
            classes: ckpt.network.outputs(),
        },
        model.normalize,
    ) else {
        return;
    };
    let cfg = TrainConfig {
        epochs: ckpt.epoch.saturating_add(1),
        batch_size: 1,
        lr: 0.01,
        schedule: Schedule::Constant,
        seed: 1,
        batches_per_tick: 1,
        augment: 0,
    };
    let Ok(mut run) = Run::new(&backend, &train, &cfg, ckpt.epoch) else {
        return;
    };
    if backend.set_train_data(&train).is_err() || backend.take_stats().is_err() {
        return;
    }
    if let Some(tick) = run.next_tick() {
        let order = run.samples(&tick).to_vec();
        if backend
            .train_batches(&order, cfg.batch_size, tick.lr)
            .is_ok()
            && let Ok(stats) = backend.take_stats()
        {
            let _ = run.record(&tick, stats);
        }
    }
});

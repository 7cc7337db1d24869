//! Determinism, parameter and optimizer-state access, and bit-identical resume from a
//! checkpoint, on any backend.

use super::*;

// ---------------------------------------------------------------------------------------------
// Determinism, parameters and state

pub(crate) fn the_same_seed_gives_bit_identical_training(make: &Make) {
    let net = blob_net();
    let data = blobs(300);
    let run = |seed: u64| {
        let mut b = make(
            &net,
            Params::init(&net, Init::Uniform, seed),
            Optimizer::adam(),
        )
        .unwrap();
        let config = TrainConfig {
            seed,
            lr: 0.01,
            ..cfg(3, Schedule::Cosine { floor: 0.1 })
        };
        let report = train(b.as_mut(), &data, None, &config, 0, |_| {}).unwrap();
        (b.params().unwrap(), report.epochs[2].train)
    };
    let (a, sa) = run(11);
    let (b, sb) = run(11);
    assert_eq!(a, b, "same seed, different parameters");
    assert_eq!(sa.loss_sum.to_bits(), sb.loss_sum.to_bits());
    let (c, _) = run(12);
    assert!(
        max_abs_diff(&a, &c) > 1e-3,
        "a different seed should train differently"
    );
}

pub(crate) fn set_params_and_params_round_trip(make: &Make) {
    let net = blob_net();
    let mut b = make(&net, Params::init(&net, Init::Uniform, 1), Optimizer::Sgd).unwrap();
    let other = Params::init(&net, Init::He, 99);
    assert_ne!(b.params().unwrap(), other);
    b.set_params(&other).unwrap();
    assert_eq!(b.params().unwrap(), other);
    // The new parameters are the ones used.
    let mut fresh = make(&net, other.clone(), Optimizer::Sgd).unwrap();
    let x = Array2::from_elem((2, 4), 0.3f32);
    assert_eq!(
        b.predict(x.view()).unwrap(),
        fresh.predict(x.view()).unwrap()
    );
    // A wrong shape is refused and leaves the parameters alone.
    let wrong = Params::init(
        &Network::new(&[4, 9, 3], Activation::Tanh, Output::SoftmaxCrossEntropy).unwrap(),
        Init::Uniform,
        1,
    );
    assert!(matches!(b.set_params(&wrong), Err(Error::Shape { .. })));
    assert_eq!(b.params().unwrap(), other);
    // So is a wrong shape at construction.
    assert!(make(&net, wrong, Optimizer::Sgd).is_err());
}

pub(crate) fn set_optim_state_checks_slots_and_shapes(make: &Make) {
    let net = blob_net();
    let p = Params::init(&net, Init::Uniform, 1);
    let mut b = make(&net, p.clone(), Optimizer::adam()).unwrap();
    let mut state = b.optim_state().unwrap();
    assert_eq!(state.slots.len(), 2);
    assert_eq!(state.step, 0);
    // Round trip of a modified state: both slots, with different contents, so that a slot
    // written to the wrong place or not at all shows.
    state.step = 17;
    state.slots[0] = Params::init(&net, Init::Uniform, 4);
    state.slots[1] = Params::init(&net, Init::Uniform, 5);
    b.set_optim_state(&state).unwrap();
    assert_eq!(b.optim_state().unwrap(), state);
    // Wrong number of slots: one (momentum's) or none (SGD's).
    for slots in [1, 0, 3] {
        let bad = OptimState {
            step: 1,
            slots: vec![p.zeros_like(); slots],
        };
        let err = b.set_optim_state(&bad);
        assert!(
            matches!(err, Err(Error::Shape { .. })),
            "{slots} slots: {err:?}"
        );
    }
    // Right count, wrong shape.
    let other = Network::new(&[4, 5, 3], Activation::Tanh, Output::SoftmaxCrossEntropy).unwrap();
    let bad = OptimState {
        step: 1,
        slots: vec![Params::zeros(&other); 2],
    };
    assert!(b.set_optim_state(&bad).is_err());
    assert_eq!(
        b.optim_state().unwrap(),
        state,
        "a refused state changes nothing"
    );
}

/// A backend that passes everything to another, except that the first evaluation (the loop
/// runs one after each epoch when given a test set) snapshots the parameters and optimizer
/// state and then fails: a run of the full configuration interrupted after its first epoch.
struct Interrupted {
    inner: Box<dyn Backend>,
    snapshot: Option<(Params, OptimState)>,
}

impl Backend for Interrupted {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn network(&self) -> &Network {
        self.inner.network()
    }
    fn optimizer(&self) -> Optimizer {
        self.inner.optimizer()
    }
    fn set_train_data(&mut self, data: &Dataset) -> soma::Result<()> {
        self.inner.set_train_data(data)
    }
    fn train_batches(&mut self, order: &[u32], batch_size: usize, lr: f32) -> soma::Result<()> {
        self.inner.train_batches(order, batch_size, lr)
    }
    fn take_stats(&mut self) -> soma::Result<Stats> {
        self.inner.take_stats()
    }
    fn evaluate(&mut self, _: &Dataset) -> soma::Result<Stats> {
        self.snapshot = Some((self.inner.params()?, self.inner.optim_state()?));
        Err(Error::arg(
            "run",
            "no interruption",
            "interrupted after epoch 1",
        ))
    }
    fn predict(&mut self, inputs: ArrayView2<f32>) -> soma::Result<Array2<f32>> {
        self.inner.predict(inputs)
    }
    fn params(&mut self) -> soma::Result<Params> {
        self.inner.params()
    }
    fn set_params(&mut self, params: &Params) -> soma::Result<()> {
        self.inner.set_params(params)
    }
    fn optim_state(&mut self) -> soma::Result<OptimState> {
        self.inner.optim_state()
    }
    fn set_optim_state(&mut self, state: &OptimState) -> soma::Result<()> {
        self.inner.set_optim_state(state)
    }
}

/// How the first epoch of the split run is done.
#[derive(Clone, Copy, Debug)]
enum FirstEpoch {
    /// A run configured for 1 epoch, as `--epochs 1 --save` then `--epochs 2 --load` does.
    /// Only exact when the schedule does not depend on the total number of epochs.
    SeparateRun,
    /// The 2-epoch run itself, interrupted after epoch 1.
    Interrupted,
}

/// Two epochs in one go equal one epoch, a checkpoint saved and loaded into a fresh backend,
/// and one more epoch, bit for bit.
fn check_resume(make: &Make, optimizer: Optimizer, schedule: Schedule, first: FirstEpoch) {
    let net = blob_net();
    let data = blobs(200);
    let config = TrainConfig {
        lr: if optimizer.name() == "adam" {
            0.01
        } else {
            0.1
        },
        ..cfg(2, schedule)
    };
    let p0 = Params::init(&net, Init::Uniform, 21);

    let mut straight = make(&net, p0.clone(), optimizer).unwrap();
    train(straight.as_mut(), &data, None, &config, 0, |_| {}).unwrap();

    let (params, state) = match first {
        FirstEpoch::SeparateRun => {
            let mut b = make(&net, p0, optimizer).unwrap();
            let one = TrainConfig {
                epochs: 1,
                ..config.clone()
            };
            train(b.as_mut(), &data, None, &one, 0, |_| {}).unwrap();
            (b.params().unwrap(), b.optim_state().unwrap())
        }
        FirstEpoch::Interrupted => {
            let mut b = Interrupted {
                inner: make(&net, p0, optimizer).unwrap(),
                snapshot: None,
            };
            let run = train(&mut b, &data, Some(&data), &config, 0, |_| {});
            assert!(run.is_err(), "the run should have been interrupted");
            b.snapshot.expect("snapshot after epoch 1")
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("after-1.safetensors");
    Checkpoint {
        network: net.clone(),
        params,
        optimizer,
        state,
        epoch: 1,
        model: None,
    }
    .save(&path)
    .unwrap();

    let ckpt = checkpoint::load_into(&path, &net).unwrap();
    assert_eq!(ckpt.epoch, 1);
    assert_eq!(ckpt.optimizer, optimizer);
    assert_eq!(
        ckpt.state.step, 13,
        "200 samples in batches of 16: 13 steps"
    );
    let mut resumed = make(&net, ckpt.params, ckpt.optimizer).unwrap();
    resumed.set_optim_state(&ckpt.state).unwrap();
    let report = train(resumed.as_mut(), &data, None, &config, ckpt.epoch, |_| {}).unwrap();
    assert_eq!(report.epochs.len(), 1);
    assert_eq!(report.epochs[0].epoch, 2);

    let (a, b) = (straight.params().unwrap(), resumed.params().unwrap());
    assert!(
        a == b,
        "{}: {optimizer} {schedule:?} {first:?}: resumed run differs by {}",
        straight.name(),
        max_abs_diff(&a, &b)
    );
    assert_eq!(
        straight.optim_state().unwrap(),
        resumed.optim_state().unwrap()
    );
}

pub(crate) fn resuming_from_a_checkpoint_is_bit_identical_with_momentum(make: &Make) {
    let opt = Optimizer::momentum().with_weight_decay(1e-3);
    check_resume(make, opt, Schedule::Constant, FirstEpoch::SeparateRun);
    check_resume(make, opt, Schedule::Constant, FirstEpoch::Interrupted);
}

pub(crate) fn resuming_from_a_checkpoint_is_bit_identical_with_adam(make: &Make) {
    check_resume(
        make,
        Optimizer::adam(),
        Schedule::Constant,
        FirstEpoch::SeparateRun,
    );
    check_resume(
        make,
        Optimizer::adam(),
        Schedule::Constant,
        FirstEpoch::Interrupted,
    );
}

pub(crate) fn resuming_an_interrupted_cosine_run_is_bit_identical(make: &Make) {
    // The cosine rate depends on the step's place in the whole run, so the interrupted run must
    // be the 2-epoch one (a separate 1-epoch run decays to the floor within its one epoch).
    let cosine = Schedule::Cosine { floor: 0.05 };
    check_resume(make, Optimizer::momentum(), cosine, FirstEpoch::Interrupted);
    check_resume(make, Optimizer::adam(), cosine, FirstEpoch::Interrupted);
}

//! Training, evaluation, prediction and batching, on any backend.

use super::*;

// ---------------------------------------------------------------------------------------------
// Training, evaluation, prediction

pub(crate) fn training_reduces_the_loss_and_learns_the_problem(make: &Make) {
    let net = blob_net();
    let data = blobs(512);
    let mut b = make(
        &net,
        Params::init(&net, Init::Uniform, 3),
        Optimizer::momentum(),
    )
    .unwrap();
    let before = b.evaluate(&data).unwrap();
    let report = train(
        b.as_mut(),
        &data,
        Some(&data),
        &cfg(20, Schedule::Constant),
        0,
        |_| {},
    )
    .unwrap();
    let after = b.evaluate(&data).unwrap();
    assert_eq!(report.epochs.len(), 20);
    assert!(
        after.mean_loss() < 0.25 * before.mean_loss(),
        "loss {} -> {}",
        before.mean_loss(),
        after.mean_loss()
    );
    assert!(after.accuracy() > 0.9, "accuracy {}", after.accuracy());
    // The per-epoch training loss goes down too, and every sample is counted once per epoch.
    let first = report.epochs[0].train;
    let last = report.epochs[19].train;
    assert_eq!(first.samples, 512);
    assert!(last.mean_loss() < 0.5 * first.mean_loss());
    // The loop's evaluation after the last epoch is the one we just made.
    assert_eq!(report.epochs[19].test, Some(after));
}

pub(crate) fn evaluate_changes_neither_parameters_nor_optimizer_state(make: &Make) {
    let net = blob_net();
    let data = blobs(100);
    let mut b = make(
        &net,
        Params::init(&net, Init::Uniform, 1),
        Optimizer::adam(),
    )
    .unwrap();
    b.set_train_data(&data).unwrap();
    b.train_batches(&(0..100).collect::<Vec<u32>>(), 10, 0.01)
        .unwrap();
    let (p, s) = (b.params().unwrap(), b.optim_state().unwrap());
    let stats_before = b.take_stats().unwrap();
    assert_eq!(stats_before.samples, 100);
    let e1 = b.evaluate(&data).unwrap();
    let e2 = b.evaluate(&blobs(3000)).unwrap(); // more rows than one evaluation chunk
    assert_eq!(e1.samples, 100);
    assert_eq!(e2.samples, 3000);
    assert_eq!(b.params().unwrap(), p);
    assert_eq!(b.optim_state().unwrap(), s);
    assert_eq!(b.evaluate(&data).unwrap(), e1, "evaluation is repeatable");
    // Evaluation does not count as training.
    assert_eq!(b.take_stats().unwrap().samples, 0);
}

pub(crate) fn predict_gives_probabilities_for_softmax_and_sigmoids_for_mse(make: &Make) {
    let net = blob_net();
    let mut b = make(&net, Params::init(&net, Init::Uniform, 2), Optimizer::Sgd).unwrap();
    let x = Array2::from_shape_fn((1500, 4), |(r, c)| ((r * 7 + c * 3) % 11) as f32 - 5.0);
    let p = b.predict(x.view()).unwrap();
    assert_eq!(p.dim(), (1500, 3));
    for row in p.rows() {
        let sum: f32 = row.sum();
        assert!((sum - 1.0).abs() < PROB_SUM_TOL, "row sums to {sum}");
        assert!(row.iter().all(|&v| (0.0..=1.0).contains(&v)));
    }
    // Rows differ (the network is not constant) and a row's output does not depend on the
    // others in its chunk.
    assert_ne!(p.row(0), p.row(1));
    let single = b.predict(x.slice(ndarray::s![1200..1201, ..])).unwrap();
    assert_eq!(single.row(0), p.row(1200));

    // Sigmoid-MSE: each output in (0, 1), matching σ(x·w + b) by hand for a single layer.
    let net = Network::new(&[3, 2], Activation::Sigmoid, Output::SigmoidMse).unwrap();
    let params = Params::init(&net, Init::Uniform, 4);
    let mut b = make(&net, params.clone(), Optimizer::Sgd).unwrap();
    let x = array![[0.5f32, -1.0, 2.0]];
    let y = b.predict(x.view()).unwrap();
    for o in 0..2 {
        let z: f64 = params.layers[0].b[o] as f64
            + (0..3)
                .map(|i| x[[0, i]] as f64 * params.layers[0].w[[i, o]] as f64)
                .sum::<f64>();
        let want = 1.0 / (1.0 + (-z).exp());
        assert!(
            (y[[0, o]] as f64 - want).abs() < SIGMOID_TOL,
            "{} vs {want}",
            y[[0, o]]
        );
    }
}

pub(crate) fn take_stats_counts_a_call_and_resets(make: &Make) {
    let net = Network::new(
        &[784, 32, 10],
        Activation::Relu,
        Output::SoftmaxCrossEntropy,
    )
    .unwrap();
    let mut b = make(&net, Params::init(&net, Init::Uniform, 1), Optimizer::Sgd).unwrap();
    let data = mnist_like(300, 4);
    b.set_train_data(&data).unwrap();
    let order = epoch_order(data.len(), 1, 0);
    b.train_batches(&order, 64, 0.1).unwrap();
    let s = b.take_stats().unwrap();
    assert_eq!(s.samples, 300, "{}", b.name());
    assert!(s.mean_loss().is_finite() && s.mean_loss() > 0.0);
    assert_eq!(
        b.take_stats().unwrap(),
        Stats::default(),
        "{}: stats reset",
        b.name()
    );
    let mut x = Array2::zeros((37, 784));
    gather_inputs(&data, &(0..37).collect::<Vec<u32>>(), x.view_mut());
    let p = b.predict(x.view()).unwrap();
    assert_eq!(p.dim(), (37, 10));
    for row in p.rows() {
        assert!(
            (row.sum() - 1.0).abs() < PROB_SUM_TOL,
            "{}: probabilities sum to 1",
            b.name()
        );
    }
}

pub(crate) fn the_seed_exercises_converge(make: &Make) {
    // The XOR network of the crate docs, with SGD as the tutorials train it, and with momentum.
    let net = Network::new(&[2, 4, 1], Activation::Sigmoid, Output::SigmoidMse).unwrap();
    let data = xor();
    let runs = [
        (Optimizer::Sgd, 0, 2.0, 5000),
        (Optimizer::momentum(), 1, 0.5, 2000),
    ];
    for (opt, seed, lr, steps) in runs {
        let mut b = make(&net, Params::init(&net, Init::Uniform, seed), opt).unwrap();
        b.set_train_data(&data).unwrap();
        for _ in 0..steps {
            b.train_batches(&[0, 1, 2, 3], 4, lr).unwrap();
        }
        let stats = b.evaluate(&data).unwrap();
        assert!(
            stats.mean_loss() < 0.01,
            "{} {opt}: XOR MSE {}",
            b.name(),
            stats.mean_loss()
        );
        assert_eq!(stats.correct, 4, "{} {opt}", b.name());
    }
}

// ---------------------------------------------------------------------------------------------
// Batching

pub(crate) fn one_full_batch_step_matches_the_hand_computed_update(make: &Make) {
    let (x, y) = small_rows();
    let lr = 0.5;
    // Sigmoid-MSE and linear-MSE with two outputs, and softmax-CE with labels (argmax of the
    // targets).
    for output in Output::ALL {
        let net = Network::new(&[3, 2], Activation::Sigmoid, output).unwrap();
        let p = Params::init(&net, Init::Uniform, 9);
        let (data, y64) = match output {
            Output::SigmoidMse | Output::LinearMse => {
                (Dataset::from_rows(&x, &y).unwrap(), to64(&y))
            }
            Output::SoftmaxCrossEntropy => {
                let labels: Vec<u32> = y.iter().map(|r| (r[1] > r[0]) as u32).collect();
                let one_hot = labels
                    .iter()
                    .map(|&l| vec![(l == 0) as u8 as f64, (l == 1) as u8 as f64])
                    .collect();
                let data = Dataset::new(
                    3,
                    Inputs::F32(x.concat()),
                    Targets::Labels { labels, classes: 2 },
                    Normalize::IDENTITY,
                )
                .unwrap();
                (data, one_hot)
            }
        };
        let mut b = make(&net, p.clone(), Optimizer::Sgd).unwrap();
        b.set_train_data(&data).unwrap();
        b.train_batches(&[0, 1, 2, 3, 4], 5, lr as f32).unwrap();
        let g = hand_grad(output, &p, &to64(&x), &y64);
        assert_sgd_step(&output.to_string(), &p, &b.params().unwrap(), lr, &g);
        // A batch larger than the order is one batch of all of it: the same step, bit for bit,
        // except on the fused step, which splits its gradient sums by the batch capacity (a
        // larger one may add them in another order): there, the same oracle.
        let mut big = make(&net, p.clone(), Optimizer::Sgd).unwrap();
        big.set_train_data(&data).unwrap();
        big.train_batches(&[0, 1, 2, 3, 4], 64, lr as f32).unwrap();
        let what = format!("{output}, batch 64");
        assert_sgd_step(&what, &p, &big.params().unwrap(), lr, &g);
        if !big.details().contains("training step: fused") {
            assert_eq!(big.params().unwrap(), b.params().unwrap(), "{what}");
        }
    }
}

pub(crate) fn a_final_partial_batch_is_one_smaller_step(make: &Make) {
    let (x, y) = small_rows();
    let net = Network::new(&[3, 2], Activation::Sigmoid, Output::SigmoidMse).unwrap();
    let data = Dataset::from_rows(&x, &y).unwrap();
    let p0 = Params::init(&net, Init::Uniform, 5);
    let lr = 1.0;
    let order = [4u32, 0, 3, 1, 2];

    // Batches of 2: [4, 0], [3, 1], then the remainder [2] as a batch of one.
    let mut b = make(&net, p0.clone(), Optimizer::Sgd).unwrap();
    b.set_train_data(&data).unwrap();
    b.train_batches(&order, 2, lr as f32).unwrap();
    let stats = b.take_stats().unwrap();
    assert_eq!(stats.samples, 5);

    // The same three steps by hand, each with its own B (2, 2, then 1).
    let (x64, y64) = (to64(&x), to64(&y));
    let mut p = p0.clone();
    for batch in order.chunks(2) {
        let xb: Vec<_> = batch.iter().map(|&i| x64[i as usize].clone()).collect();
        let yb: Vec<_> = batch.iter().map(|&i| y64[i as usize].clone()).collect();
        let (gw, gb) = hand_grad(Output::SigmoidMse, &p, &xb, &yb);
        let l = &mut p.layers[0];
        l.w.zip_mut_with(&gw, |w, &g| *w = (*w as f64 - lr * g) as f32);
        l.b.zip_mut_with(&gb, |b, &g| *b = (*b as f64 - lr * g) as f32);
    }
    let got = b.params().unwrap();
    assert!(
        max_abs_diff(&got, &p) < PARAM_TOL,
        "partial batches: off by {}",
        max_abs_diff(&got, &p)
    );
    // And the remainder really was a step: stopping after 4 samples gives other parameters.
    let mut four = make(&net, p0, Optimizer::Sgd).unwrap();
    four.set_train_data(&data).unwrap();
    four.train_batches(&order[..4], 2, lr as f32).unwrap();
    assert!(max_abs_diff(&four.params().unwrap(), &got) > 1e-4);
    // One call over the whole order equals one call per batch, bit for bit.
    let mut split = make(&net, Params::init(&net, Init::Uniform, 5), Optimizer::Sgd).unwrap();
    split.set_train_data(&data).unwrap();
    for batch in order.chunks(2) {
        split.train_batches(batch, 2, lr as f32).unwrap();
    }
    assert_eq!(split.params().unwrap(), got);
}

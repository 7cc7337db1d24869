//! Bad input, and one optimizer step of each kind computed by hand, on any backend.

use super::*;

// ---------------------------------------------------------------------------------------------
// Bad input

pub(crate) fn data_of_the_wrong_width_is_a_shape_error(make: &Make) {
    let net = blob_net(); // 4 inputs, 3 outputs
    let mut b = make(&net, Params::init(&net, Init::Uniform, 1), Optimizer::Sgd).unwrap();
    let wide = Dataset::from_rows(&[vec![0.0; 5]], &[vec![1.0, 0.0, 0.0]]).unwrap();
    let few_targets = Dataset::from_rows(&[vec![0.0; 4]], &[vec![1.0, 0.0]]).unwrap();
    for bad in [&wide, &few_targets] {
        assert!(matches!(b.set_train_data(bad), Err(Error::Shape { .. })));
        assert!(matches!(b.evaluate(bad), Err(Error::Shape { .. })));
        assert!(matches!(
            train(
                b.as_mut(),
                bad,
                None,
                &cfg(1, Schedule::Constant),
                0,
                |_| {}
            ),
            Err(Error::Shape { .. })
        ));
    }
    let x = Array2::<f32>::zeros((2, 3));
    assert!(matches!(b.predict(x.view()), Err(Error::Shape { .. })));
}

pub(crate) fn bad_training_arguments_are_errors(make: &Make) {
    let net = blob_net();
    let p = Params::init(&net, Init::Uniform, 1);
    let mut b = make(&net, p.clone(), Optimizer::Sgd).unwrap();
    // No training set yet.
    assert!(matches!(
        b.train_batches(&[0], 1, 0.1),
        Err(Error::Argument { .. })
    ));
    b.set_train_data(&blobs(10)).unwrap();
    // Batch size 0, from the backend and from the loop.
    assert!(matches!(
        b.train_batches(&[0, 1], 0, 0.1),
        Err(Error::Argument { .. })
    ));
    let zero = TrainConfig {
        batch_size: 0,
        ..cfg(1, Schedule::Constant)
    };
    assert!(matches!(
        train(b.as_mut(), &blobs(10), None, &zero, 0, |_| {}),
        Err(Error::Argument { .. })
    ));
    // An index past the end of the training set.
    assert!(matches!(
        b.train_batches(&[0, 10], 2, 0.1),
        Err(Error::Argument { .. })
    ));
    // None of the refused calls trained anything.
    assert_eq!(b.params().unwrap(), p);
    assert_eq!(b.take_stats().unwrap().samples, 0);
}

// ---------------------------------------------------------------------------------------------
// Optimizers, one step by hand

pub(crate) fn momentum_with_weight_decay_matches_two_hand_computed_steps(make: &Make) {
    let (x, y) = small_rows();
    let net = Network::new(&[3, 2], Activation::Sigmoid, Output::SigmoidMse).unwrap();
    let data = Dataset::from_rows(&x, &y).unwrap();
    let p0 = Params::init(&net, Init::Uniform, 8);
    let (mu, wd, lr) = (0.9f32, 0.05f32, 0.5f32);
    let opt = Optimizer::Momentum {
        momentum: mu,
        weight_decay: wd,
    };
    let mut b = make(&net, p0.clone(), opt).unwrap();
    b.set_train_data(&data).unwrap();
    let all = [0u32, 1, 2, 3, 4];
    let (x64, y64) = (to64(&x), to64(&y));
    let (mu, wd, lr) = (mu as f64, wd as f64, lr as f64);

    // Step 1: v = g + wd·p; p -= lr·v.  Step 2: v = μ·v + g + wd·p; p -= lr·v.
    let mut p = p0.clone();
    let mut vw = Array2::<f64>::zeros((3, 2));
    let mut vb = Array1::<f64>::zeros(2);
    for step in 1..=2 {
        b.train_batches(&all, 5, lr as f32).unwrap();
        let (gw, gb) = hand_grad(Output::SigmoidMse, &p, &x64, &y64);
        let l = &mut p.layers[0];
        for ((w, v), g) in l.w.iter_mut().zip(vw.iter_mut()).zip(gw.iter()) {
            *v = mu * *v + g + wd * *w as f64;
            *w = (*w as f64 - lr * *v) as f32;
        }
        for ((bias, v), g) in l.b.iter_mut().zip(vb.iter_mut()).zip(gb.iter()) {
            *v = mu * *v + g + wd * *bias as f64;
            *bias = (*bias as f64 - lr * *v) as f32;
        }
        let got = b.params().unwrap();
        assert!(
            max_abs_diff(&got, &p) < PARAM_TOL,
            "step {step}: off by {}",
            max_abs_diff(&got, &p)
        );
        // The velocity is the optimizer state.
        let state = b.optim_state().unwrap();
        assert_eq!(state.step, step);
        let v = &state.slots[0].layers[0];
        for (&got, &want) in v.w.iter().zip(vw.iter()).chain(v.b.iter().zip(vb.iter())) {
            assert!(
                (got as f64 - want).abs() < PARAM_TOL,
                "velocity {got} vs {want}"
            );
        }
    }
    // Weight decay mattered: without it the parameters differ.
    let mut plain = make(&net, p0, Optimizer::momentum()).unwrap();
    plain.set_train_data(&data).unwrap();
    plain.train_batches(&all, 5, lr as f32).unwrap();
    plain.train_batches(&all, 5, lr as f32).unwrap();
    assert!(max_abs_diff(&plain.params().unwrap(), &p) > 1e-3);
}

pub(crate) fn adams_first_step_moves_each_parameter_by_lr_times_the_gradient_sign(make: &Make) {
    let (x, y) = small_rows();
    let net = Network::new(&[3, 2], Activation::Sigmoid, Output::SigmoidMse).unwrap();
    let data = Dataset::from_rows(&x, &y).unwrap();
    let p0 = Params::init(&net, Init::Uniform, 6);
    let lr = 1e-3;
    let mut b = make(&net, p0.clone(), Optimizer::adam()).unwrap();
    b.set_train_data(&data).unwrap();
    b.train_batches(&[0, 1, 2, 3, 4], 5, lr as f32).unwrap();
    let got = b.params().unwrap();
    let (gw, gb) = hand_grad(Output::SigmoidMse, &p0, &to64(&x), &to64(&y));
    let before = p0.layers[0].w.iter().chain(p0.layers[0].b.iter());
    let after = got.layers[0].w.iter().chain(got.layers[0].b.iter());
    let grads = gw.iter().chain(gb.iter());
    let mut checked = 0;
    for ((&p, &q), &g) in before.zip(after).zip(grads) {
        // m̂ = g and v̂ = g² after one step, so the move is lr·g/(|g| + ε) = lr·sign(g) up to
        // ε/|g| (≤ 1e-4 here) and the f32 rounding of p (≈ 6e-8, i.e. 6e-5 of lr). The GPU's
        // f32 gradient differs from the CPU's by a few ulps, which cancels in g/|g|.
        assert!(
            g.abs() > 1e-4,
            "gradient {g} too small to have a clear sign"
        );
        let moved = p as f64 - q as f64;
        let want = lr * g.signum();
        assert!(
            (moved - want).abs() < 1e-3 * lr + 1e-7,
            "moved {moved}, expected {want} (gradient {g})"
        );
        checked += 1;
    }
    assert_eq!(checked, 8);
}

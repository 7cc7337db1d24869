//! The per-op parity cases: every GPU kernel against the CPU reference (ndarray math and the
//! `soma::ops` references) on seeded random inputs and shapes that fit no tile: 1×1×1, 7×13×5,
//! 64×784×64, 100×784×64 and 257×300×129 (M×K×N).
//!
//! One body per case, shared by two runners that differ only in how an op waits for the
//! device: `tests/gpu_ops.rs` natively (the blocking `GpuOps` calls, each case driven by
//! `pollster::block_on`) and `web/tests/parity.rs` in a browser on WebGPU (the `_async` calls,
//! awaited). Both implement [`Ops`] and list the cases through [`every_op_case!`], so neither
//! can leave one out; the inputs, shapes and tolerances are the same bits on both.

use ndarray::{Array1, Array2, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use soma::data::Sample;
use soma::gpu::GpuOps;
use soma::gpu::ops::{Derivative, MatmulSpec, OpTargets, Readout, UpdateSpec};
use soma::ops::avgpool::{AvgPoolShape, avg_pool, avg_pool_backward};
use soma::ops::batchnorm::{self as bn, BnShape};
use soma::ops::conv::{ConvShape, Padding};
use soma::ops::dropout::{Draw, Rate};
use soma::ops::gather::gather_inputs;
use soma::ops::matmul::TILES;
use soma::ops::pool::PoolShape;
use soma::ops::{conv, dropout, loss, optim, pool, reduce};
use soma::shape::Chw;
use soma::{Activation, Dataset, Inputs, Normalize, Optimizer, Output, Targets};

/// How the cases run `soma::gpu::GpuOps`' prepared ops: blocking natively
/// (`tests/gpu_ops.rs`), awaited in a browser (`web/tests/parity.rs`). Each op is called as
/// itself; only the wait differs.
pub trait Ops {
    fn gpu(&self) -> &GpuOps;
    async fn run<'a, T>(&'a self, op: soma::Result<Readout<'a, T>>) -> soma::Result<T>;
}

/// Calls `$run!(case)` for every case that needs a device (each an `async fn(&impl Ops)` of
/// this module); [`the_tile_rule_picks_every_tile`] needs none.
macro_rules! every_op_case {
    ($run:ident) => {
        $run!(matmul_all_forms_match_exact_products);
        $run!(weight_gradient_with_ones_row_gives_bias_gradient);
        $run!(forward_epilogue_bias_and_every_activation);
        $run!(input_gradient_epilogue_multiplies_derivative_of_stored_output);
        $run!(softmax_cross_entropy_matches_cpu_including_huge_logits);
        $run!(mse_outputs_match_cpu);
        $run!(every_optimizer_matches_cpu_update_over_several_steps);
        $run!(weight_gradient_epilogue_applies_every_optimizer_on_every_tile);
        $run!(shifted_image_gather_matches_cpu);
        $run!(gather_u8_and_f32_with_scale_and_shift);
        $run!(vector_gathers_reach_past_2_24_samples);
        $run!(argmax_ties_pick_the_first_like_the_cpu);
        $run!(conv_forward_matches_cpu_with_every_activation);
        $run!(conv_input_gradient_matches_cpu_times_each_derivative);
        $run!(conv_update_gives_cpu_gradients_to_every_optimizer);
        $run!(max_pool_matches_cpu_with_ties_and_routes_gradients_back);
        $run!(avg_pool_matches_cpu_with_every_activation_and_spreads_gradients);
        $run!(dropout_draws_the_cpu_masks_exactly);
        $run!(batch_norm_kernels_match_cpu);
        $run!(nan_goes_through_pool_and_every_activation_as_on_the_cpu);
        $run!(grids_fold_past_65535_workgroups);
    };
}
pub(crate) use every_op_case;

/// Matmul: |gpu − exact| ≤ MATMUL_REL·√K·Σ_k|a_ik·b_kj|. A sum of K f32 products in any order
/// has a rounding error that grows like √K·u·Σ|terms| (u ≈ 6e-8) for independent roundings;
/// 1e-5 leaves room for the different blocking/FMA order, far below any indexing bug (O(1)).
const MATMUL_REL: f64 = 1e-5;
/// Absolute slack for values through an activation or a transcendental (exp, log, tanh):
/// a few f32 ulps of results of magnitude ≤ 1.
const ULPS_ABS: f64 = 1e-6;
/// Loss sums: the per-row f32 losses are reduced in a different order (tree vs sequential);
/// relative error of a sum of ≤ 300 terms is ≤ 300·u ≈ 2e-5 in the worst case.
const LOSS_SUM_REL: f64 = 2e-5;
/// Optimizer: one step is ~10 f32 operations per value, each rounded once, possibly fused
/// (FMA) on the GPU; 5 steps on values of magnitude ≤ 1 stay within a few 1e-7.
const OPTIM_ABS: f32 = 1e-6;

/// m×k×n: sizes that fit no tile (1, 5, 7, 13, 129, 257, 300) and the showcase's first layer at
/// batch 64 and 100. Every matmul case runs each shape on every tile (`ops::matmul::TILES`), not
/// only on the one this adapter's steps would choose.
const SHAPES: [(usize, usize, usize); 5] = [
    (1, 1, 1),
    (7, 13, 5),
    (64, 784, 64),
    (100, 784, 64),
    (257, 300, 129),
];

/// The steps' tile rule picks each tile of `TILES` for some product and adapter: the small and
/// the large staged tiles on GPUs for these shapes, the direct ones on software adapters of 4,
/// 8 and 16 lanes; and never a workgroup narrower than the adapter's SIMD group.
pub fn the_tile_rule_picks_every_tile() {
    use soma::ops::matmul::{TILES, TileTarget, choose_tile};
    let targets = [
        TileTarget::Gpu,
        TileTarget::Software { lanes: 4 },
        TileTarget::Software { lanes: 8 },
        TileTarget::Software { lanes: 16 },
    ];
    let picked: Vec<_> = targets
        .iter()
        .flat_map(|&t| {
            SHAPES
                .iter()
                .map(move |&(m, k, n)| choose_tile(m as u32, n as u32, k as u32, t))
        })
        .collect();
    for tile in TILES {
        assert!(
            picked.contains(&tile),
            "{tile:?} is never chosen: {picked:?}"
        );
    }
}

fn random(rng: &mut Pcg64Mcg, rows: usize, cols: usize, scale: f32) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |_| (rng.random::<f32>() * 2.0 - 1.0) * scale)
}

fn to64(a: ArrayView2<f32>) -> Array2<f64> {
    a.mapv(|v| v as f64)
}

/// Checks `got` against `exact` with the matmul bound, `scale` = Σ|a||b| per element.
fn assert_matmul_close(
    what: &str,
    got: &Array2<f32>,
    exact: &Array2<f64>,
    scale: &Array2<f64>,
    k: usize,
    extra_abs: f64,
) {
    assert_eq!(got.dim(), exact.dim(), "{what}: shape");
    let tol_k = MATMUL_REL * (k as f64).sqrt();
    for ((idx, &g), (&e, &s)) in got.indexed_iter().zip(exact.iter().zip(scale.iter())) {
        let tol = tol_k * s + extra_abs + 1e-30;
        assert!(
            (g as f64 - e).abs() <= tol,
            "{what}: at {idx:?} gpu {g} vs exact {e} (tolerance {tol:e})"
        );
    }
}

pub async fn matmul_all_forms_match_exact_products(ops: &impl Ops) {
    let mut rng = Pcg64Mcg::seed_from_u64(1);
    for (m, k, n) in SHAPES {
        let a = random(&mut rng, m, k, 1.0);
        let b = random(&mut rng, k, n, 1.0);
        let exact = to64(a.view()).dot(&to64(b.view()));
        let scale = to64(a.view())
            .mapv(f64::abs)
            .dot(&to64(b.view()).mapv(f64::abs));
        // Each form takes its operands as stored: Aᵀ as K×M, Bᵀ as N×K.
        let at = a.t().as_standard_layout().to_owned();
        let bt = b.t().as_standard_layout().to_owned();
        let forms = [
            ("A·B", &a, &b, false, false),
            ("Aᵀ·B", &at, &b, true, false),
            ("A·Bᵀ", &a, &bt, false, true),
        ];
        for tile in TILES {
            for (form, x, y, trans_a, trans_b) in forms {
                let spec = MatmulSpec {
                    trans_a,
                    trans_b,
                    tile: Some(tile),
                    ..Default::default()
                };
                let got = ops
                    .run(ops.gpu().matmul(x.view(), y.view(), spec))
                    .await
                    .unwrap();
                let what = format!("{form} {m}x{k}x{n} on {tile:?}");
                assert_matmul_close(&what, &got, &exact, &scale, k, 0.0);
            }
        }
    }
}

pub async fn weight_gradient_with_ones_row_gives_bias_gradient(ops: &impl Ops) {
    let mut rng = Pcg64Mcg::seed_from_u64(2);
    // Backprop shapes: x is B×in, dz is B×out; dW = xᵀ·dz, db = colsum(dz) in the extra row.
    for (b, inp, out) in [(1, 1, 1), (13, 7, 5), (100, 784, 64), (64, 64, 10)] {
        let x = random(&mut rng, b, inp, 1.0);
        let dz = random(&mut rng, b, out, 0.1);
        let mut x1 = to64(x.view());
        x1.push_column(Array1::ones(b).view()).unwrap();
        let exact = x1.t().dot(&to64(dz.view()));
        let scale = x1.t().mapv(f64::abs).dot(&to64(dz.view()).mapv(f64::abs));
        for tile in TILES {
            let got = ops
                .run(ops.gpu().matmul(
                    x.view(),
                    dz.view(),
                    MatmulSpec {
                        trans_a: true,
                        ones_row: true,
                        tile: Some(tile),
                        ..Default::default()
                    },
                ))
                .await
                .unwrap();
            let what = format!("dW+db {b}x{inp}x{out} on {tile:?}");
            assert_matmul_close(&what, &got, &exact, &scale, b, 0.0);
        }
        // And the standalone reduce kernel agrees with the CPU's column sums.
        let sums = ops.run(ops.gpu().column_sums(dz.view())).await.unwrap();
        let mut cpu_sums = Array1::zeros(out);
        reduce::column_sums(dz.view(), cpu_sums.view_mut());
        for (g, c) in sums.iter().zip(cpu_sums.iter()) {
            assert!((g - c).abs() as f64 <= MATMUL_REL * (b as f64).sqrt() * 0.1 * b as f64);
        }
    }
}

pub async fn forward_epilogue_bias_and_every_activation(ops: &impl Ops) {
    let mut rng = Pcg64Mcg::seed_from_u64(3);
    for (m, k, n) in SHAPES {
        let x = random(&mut rng, m, k, 1.0);
        let w = random(&mut rng, k, n, 1.0 / (k as f32).sqrt() * 3.0);
        let bias = Array1::from_shape_fn(n, |_| rng.random::<f32>() - 0.5);
        let z64 = to64(x.view()).dot(&to64(w.view()));
        let scale = to64(x.view())
            .mapv(f64::abs)
            .dot(&to64(w.view()).mapv(f64::abs));
        let acts = Activation::ALL.map(Some);
        for act in acts.into_iter().chain([None]) {
            // f' ≤ 1 for every activation, so the product's error passes through undamped.
            let mut exact = z64.clone();
            for mut row in exact.rows_mut() {
                for (v, &b) in row.iter_mut().zip(bias.iter()) {
                    let z = (*v + b as f64) as f32;
                    *v = act.map_or(z, |a| a.apply(z)) as f64;
                }
            }
            for tile in TILES {
                let got = ops
                    .run(ops.gpu().matmul(
                        x.view(),
                        w.view(),
                        MatmulSpec {
                            bias: Some(bias.view()),
                            act,
                            tile: Some(tile),
                            ..Default::default()
                        },
                    ))
                    .await
                    .unwrap();
                let what = format!("x·W+b then {act:?} {m}x{k}x{n} on {tile:?}");
                assert_matmul_close(&what, &got, &exact, &scale, k, ULPS_ABS);
            }
        }
    }
}

pub async fn input_gradient_epilogue_multiplies_derivative_of_stored_output(ops: &impl Ops) {
    let mut rng = Pcg64Mcg::seed_from_u64(4);
    for (m, k, n) in SHAPES {
        // delta_prev (m×n) = dz (m×k) · Wᵀ where W is n×k, times f'(a_prev) (m×n).
        let dz = random(&mut rng, m, k, 1.0);
        let w = random(&mut rng, n, k, 1.0);
        let z_prev = random(&mut rng, m, n, 3.0);
        let prod = to64(dz.view()).dot(&to64(w.view()).t());
        let scale = to64(dz.view())
            .mapv(f64::abs)
            .dot(&to64(w.view()).mapv(f64::abs).t());
        for act in Activation::ALL {
            let a_prev = z_prev.mapv(|z| act.apply(z));
            let mut exact = prod.clone();
            exact.zip_mut_with(&a_prev, |v, &a| {
                *v *= act.derivative_from_output(a) as f64;
            });
            for tile in TILES {
                let got = ops
                    .run(ops.gpu().matmul_derivative(
                        dz.view(),
                        w.view(),
                        true,
                        a_prev.view(),
                        act,
                        Some(tile),
                    ))
                    .await
                    .unwrap();
                let what = format!("dz·Wᵀ⊙{act}'(a) {m}x{k}x{n} on {tile:?}");
                assert_matmul_close(&what, &got, &exact, &scale, k, ULPS_ABS);
            }
        }
    }
}

/// The CPU reference of the loss kernel (`ops::loss::output_delta`, which the CPU backend
/// runs; it takes MSE's sigmoids from the forward pass): outputs, delta, loss sum and correct
/// count.
fn cpu_loss(
    output: Output,
    z: &Array2<f32>,
    y: &Array2<f32>,
) -> (Array2<f32>, Array2<f32>, f64, u32) {
    let mut out = z.clone();
    if output == Output::SigmoidMse {
        out.mapv_inplace(soma::ops::activation::sigmoid);
    }
    let mut delta = Array2::zeros(z.dim());
    let s = loss::output_delta(
        output,
        out.view_mut(),
        y.view(),
        delta.view_mut(),
        z.nrows(),
    );
    (out, delta, s.loss_sum, s.correct as u32)
}

fn assert_all_close(what: &str, got: &Array2<f32>, want: &Array2<f32>, abs: f64) {
    assert_eq!(got.dim(), want.dim(), "{what}: shape");
    for ((idx, &g), &w) in got.indexed_iter().zip(want.iter()) {
        assert!(
            ((g - w) as f64).abs() <= abs * (1.0 + w.abs() as f64),
            "{what} at {idx:?}: gpu {g} vs cpu {w}"
        );
    }
}

pub async fn softmax_cross_entropy_matches_cpu_including_huge_logits(ops: &impl Ops) {
    let mut rng = Pcg64Mcg::seed_from_u64(5);
    for (rows, classes, scale) in [
        (1, 2, 1.0),
        (7, 3, 4.0),
        (100, 10, 3.0),
        (300, 10, 80.0),
        (64, 129, 2.0),
    ] {
        let z = random(&mut rng, rows, classes, scale);
        let labels: Vec<u32> = (0..rows)
            .map(|_| rng.random_range(0..classes as u32))
            .collect();
        let onehot = Array2::from_shape_fn((rows, classes), |(r, c)| {
            (labels[r] == c as u32) as u8 as f32
        });
        let (p, d, loss, correct) = cpu_loss(Output::SoftmaxCrossEntropy, &z, &onehot);
        assert!(loss.is_finite(), "reference loss finite at scale {scale}");
        for targets in [OpTargets::Labels(&labels), OpTargets::Values(onehot.view())] {
            let got = ops
                .run(
                    ops.gpu()
                        .loss(Output::SoftmaxCrossEntropy, z.view(), targets),
                )
                .await
                .unwrap();
            let what = format!("softmax-CE {rows}x{classes} scale {scale}");
            assert_all_close(&format!("{what} probabilities"), &got.outputs, &p, ULPS_ABS);
            assert_all_close(
                &format!("{what} delta"),
                &got.delta,
                &d,
                ULPS_ABS / rows as f64,
            );
            assert_eq!(got.correct, correct, "{what} correct");
            let rel = (got.loss_sum as f64 - loss).abs() / loss.max(1e-6);
            assert!(
                rel <= LOSS_SUM_REL + ULPS_ABS * rows as f64 / loss.max(1e-6),
                "{what} loss {} vs {loss}",
                got.loss_sum
            );
        }
    }
    // Soft targets (rows summing to one) go through the values path.
    let z = random(&mut rng, 33, 5, 2.0);
    let mut y = random(&mut rng, 33, 5, 1.0).mapv(f32::abs);
    for mut row in y.rows_mut() {
        let s = row.sum();
        row.mapv_inplace(|v| v / s);
    }
    let (p, d, loss, correct) = cpu_loss(Output::SoftmaxCrossEntropy, &z, &y);
    let got = ops
        .run(ops.gpu().loss(
            Output::SoftmaxCrossEntropy,
            z.view(),
            OpTargets::Values(y.view()),
        ))
        .await
        .unwrap();
    assert_all_close("soft-target probabilities", &got.outputs, &p, ULPS_ABS);
    assert_all_close("soft-target delta", &got.delta, &d, ULPS_ABS);
    assert_eq!(got.correct, correct);
    assert!((got.loss_sum as f64 - loss).abs() / loss <= LOSS_SUM_REL);
}

/// Sigmoid-MSE and linear-MSE (regression: the outputs are the logits, nothing is correct).
pub async fn mse_outputs_match_cpu(ops: &impl Ops) {
    let mut rng = Pcg64Mcg::seed_from_u64(6);
    for output in [Output::SigmoidMse, Output::LinearMse] {
        for (rows, width) in [(1, 1), (4, 1), (100, 10), (257, 3)] {
            let z = random(&mut rng, rows, width, 4.0);
            let y = Array2::from_shape_fn((rows, width), |_| rng.random::<f32>());
            let (a, d, loss, correct) = cpu_loss(output, &z, &y);
            let got = ops
                .run(
                    ops.gpu()
                        .loss(output, z.view(), OpTargets::Values(y.view())),
                )
                .await
                .unwrap();
            let what = format!("{output} {rows}x{width}");
            assert_all_close(&format!("{what} outputs"), &got.outputs, &a, ULPS_ABS);
            assert_all_close(&format!("{what} delta"), &got.delta, &d, ULPS_ABS);
            assert_eq!(got.correct, correct, "{what} correct");
            assert!(
                (got.loss_sum as f64 - loss).abs() <= LOSS_SUM_REL * loss + ULPS_ABS,
                "{what} loss"
            );
        }
    }
}

pub async fn every_optimizer_matches_cpu_update_over_several_steps(ops: &impl Ops) {
    let mut rng = Pcg64Mcg::seed_from_u64(7);
    let optimizers = [
        Optimizer::Sgd,
        Optimizer::momentum(),
        Optimizer::momentum().with_weight_decay(1e-2),
        Optimizer::adam(),
        Optimizer::adam().with_weight_decay(1e-3),
    ];
    for opt in optimizers {
        for n in [1usize, 1000, 70_000] {
            let mut p_cpu = Array1::from_shape_fn(n, |_| rng.random::<f32>() - 0.5);
            let mut s_cpu: Vec<Array1<f32>> = (0..opt.slots()).map(|_| Array1::zeros(n)).collect();
            let mut p_gpu = p_cpu.clone();
            let mut s_gpu = s_cpu.clone();
            for t in 1..=5u64 {
                let g = Array1::from_shape_fn(n, |_| rng.random::<f32>() - 0.5);
                let mut views: Vec<_> = s_cpu.iter_mut().map(|s| s.view_mut()).collect();
                optim::update(&opt, 0.05, t, p_cpu.view_mut(), g.view(), &mut views);
                let sv: Vec<_> = s_gpu.iter().map(|s| s.view()).collect();
                let (p, s) = ops
                    .run(
                        ops.gpu()
                            .optimizer_step(&opt, 0.05, t, p_gpu.view(), g.view(), &sv),
                    )
                    .await
                    .unwrap();
                p_gpu = p;
                s_gpu = s;
            }
            let diff = p_gpu
                .iter()
                .zip(&p_cpu)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(diff <= OPTIM_ABS, "{opt:?} n={n}: params differ by {diff}");
            for (a, b) in s_gpu.iter().zip(&s_cpu) {
                let d = a
                    .iter()
                    .zip(b)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max);
                assert!(d <= OPTIM_ABS, "{opt:?} n={n}: state differs by {d}");
            }
        }
    }
}

/// The training step's weight-gradient kernel: `[xᵀ·δ; 1ᵀ·δ]` with the optimizer applied in
/// its epilogue, to the layer's parameters and state in place, on every tile. The reference is
/// the CPU optimizer applied to the same gradient as the plain ones-row matmul computes it on
/// that tile (`weight_gradient_with_ones_row_gives_bias_gradient` checks that one against the
/// exact product): both kernels accumulate in the same order, so what is left to differ is
/// the update itself, held to [`OPTIM_ABS`] as in the standalone optimizer's case. The state
/// comes from earlier steps (non-zero, Adam's second moments positive) and sits past a gap in
/// the state buffer, as a second layer's does.
pub async fn weight_gradient_epilogue_applies_every_optimizer_on_every_tile(ops: &impl Ops) {
    let mut rng = Pcg64Mcg::seed_from_u64(11);
    let optimizers = [
        Optimizer::Sgd,
        Optimizer::momentum().with_weight_decay(1e-2),
        Optimizer::adam().with_weight_decay(1e-3),
    ];
    let (lr, t) = (0.05, 3);
    for (b, inp, out) in [(1, 1, 1), (13, 7, 5), (100, 784, 64), (64, 64, 10)] {
        let x = random(&mut rng, b, inp, 1.0);
        let dz = random(&mut rng, b, out, 0.1);
        let params = random(&mut rng, inp + 1, out, 0.5);
        for opt in optimizers {
            let slots: Vec<Array2<f32>> = (0..opt.slots())
                .map(|s| {
                    let v = random(&mut rng, inp + 1, out, 0.01);
                    // Adam's second moment is a running mean of squares.
                    if s == 1 { v.mapv(|v| v * v) } else { v }
                })
                .collect();
            for tile in TILES {
                let what = format!("{opt:?} {b}x{inp}x{out} on {tile:?}");
                let plain = MatmulSpec {
                    trans_a: true,
                    ones_row: true,
                    tile: Some(tile),
                    ..Default::default()
                };
                let grad = ops
                    .run(ops.gpu().matmul(x.view(), dz.view(), plain))
                    .await
                    .unwrap();
                let mut p_cpu = params.clone();
                let mut s_cpu = slots.clone();
                let mut views: Vec<_> = s_cpu.iter_mut().map(|s| s.view_mut()).collect();
                optim::update(&opt, lr, t, p_cpu.view_mut(), grad.view(), &mut views);
                let spec = UpdateSpec {
                    optimizer: &opt,
                    lr,
                    t,
                    tile: Some(tile),
                };
                let slot_views: Vec<_> = slots.iter().map(|s| s.view()).collect();
                let (p_gpu, s_gpu) = ops
                    .run(ops.gpu().weight_update(
                        x.view(),
                        dz.view(),
                        params.view(),
                        &slot_views,
                        spec,
                    ))
                    .await
                    .unwrap();
                let max_diff = |a: &Array2<f32>, b: &Array2<f32>| {
                    a.iter()
                        .zip(b)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0.0, f32::max)
                };
                let d = max_diff(&p_gpu, &p_cpu);
                assert!(d <= OPTIM_ABS, "{what}: parameters differ by {d}");
                assert_eq!(s_gpu.len(), s_cpu.len(), "{what}: state slots");
                for (g, c) in s_gpu.iter().zip(&s_cpu) {
                    let d = max_diff(g, c);
                    assert!(d <= OPTIM_ABS, "{what}: state differs by {d}");
                }
            }
        }
    }
}

pub async fn shifted_image_gather_matches_cpu(ops: &impl Ops) {
    let mut rng = Pcg64Mcg::seed_from_u64(9);
    // 5x7 images (not square, so swapped axes would show), every shift from -3 to 3, of one
    // channel, of three (RGB, each channel its own map) and of six (past the per-channel maps:
    // one map for all), stored as bytes and as f32.
    let (h, w, len) = (5usize, 7usize, 4usize);
    for (c, per_channel) in [(1usize, false), (3, true), (6, false)] {
        let image = Chw::new(c, h, w);
        let f = image.len();
        let pixels: Vec<u8> = (0..len * f).map(|_| rng.random_range(1..=255)).collect();
        let norm = Normalize {
            scale: 1.0 / 255.0,
            shift: -0.25,
        };
        let maps: Vec<Normalize> = (0..c)
            .map(|k| Normalize {
                scale: 0.01 * (k + 1) as f32,
                shift: -0.5 + 0.3 * k as f32,
            })
            .collect();
        let stored = [
            Inputs::U8(pixels.clone()),
            Inputs::F32(pixels.iter().map(|&p| p as f32 / 7.0).collect()),
        ];
        for inputs in stored {
            let mut ds = Dataset::new(
                f,
                inputs,
                Targets::Labels {
                    labels: vec![0; len],
                    classes: 2,
                },
                norm,
            )
            .unwrap();
            ds.image = Some(image);
            if per_channel {
                ds.set_channel_maps(maps.clone()).unwrap();
            }
            let mut entries = Vec::new();
            for dx in -3..=3i8 {
                for dy in -3..=3i8 {
                    let index = rng.random_range(0..len as u32);
                    entries.push(Sample { index, dx, dy }.encode());
                }
            }
            let mut want = Array2::zeros((entries.len(), f));
            gather_inputs(&ds, &entries, want.view_mut());
            let got = ops
                .run(
                    ops.gpu()
                        .gather_images(ds.inputs(), f, &entries, ds.gather_maps(), ds.image),
                )
                .await
                .unwrap();
            assert_all_close(&format!("shifted gather {image}"), &got, &want, ULPS_ABS);
        }
    }
}

pub async fn gather_u8_and_f32_with_scale_and_shift(ops: &impl Ops) {
    let mut rng = Pcg64Mcg::seed_from_u64(8);
    for (len, features) in [(1, 1), (10, 7), (300, 784)] {
        let pixels: Vec<u8> = (0..len * features).map(|_| rng.random()).collect();
        let labels = vec![0u32; len];
        let norm = Normalize {
            scale: 1.0 / 255.0,
            shift: -0.5,
        };
        let ds = Dataset::new(
            features,
            Inputs::U8(pixels),
            Targets::Labels {
                labels: labels.clone(),
                classes: 2,
            },
            norm,
        )
        .unwrap();
        let indices: Vec<u32> = (0..len * 2 + 3)
            .map(|_| rng.random_range(0..len as u32))
            .collect();
        let mut want = Array2::zeros((indices.len(), features));
        gather_inputs(&ds, &indices, want.view_mut());
        let got = ops
            .run(ops.gpu().gather(ds.inputs(), features, &indices, norm))
            .await
            .unwrap();
        assert_all_close(
            &format!("gather u8 {len}x{features}"),
            &got,
            &want,
            ULPS_ABS,
        );

        let values: Vec<f32> = (0..len * features)
            .map(|_| rng.random::<f32>() * 10.0)
            .collect();
        let norm = Normalize {
            scale: 0.5,
            shift: 1.0,
        };
        let ds = Dataset::new(
            features,
            Inputs::F32(values),
            Targets::Labels { labels, classes: 2 },
            norm,
        )
        .unwrap();
        gather_inputs(&ds, &indices, want.view_mut());
        let got = ops
            .run(ops.gpu().gather(ds.inputs(), features, &indices, norm))
            .await
            .unwrap();
        assert_all_close(
            &format!("gather f32 {len}x{features}"),
            &got,
            &want,
            ULPS_ABS,
        );
    }
}

/// Entries over vectors are whole indices (only an image's entry shares its bits with a
/// shift): samples past 2^24 are gathered, by both the GPU and the CPU reference, from where
/// they are.
pub async fn vector_gathers_reach_past_2_24_samples(ops: &impl Ops) {
    let len = (1usize << 24) + 5;
    let byte = |i: usize| (i * 7 % 251) as u8;
    let ds = Dataset::new(
        1,
        Inputs::U8((0..len).map(byte).collect()),
        Targets::Labels {
            labels: vec![0; len],
            classes: 2,
        },
        Normalize::IDENTITY,
    )
    .unwrap();
    let indices = [len as u32 - 1, 3, 1 << 24, (1 << 24) + 2, 0];
    let want = Array2::from_shape_fn((indices.len(), 1), |(r, _)| {
        byte(indices[r] as usize) as f32
    });
    let mut cpu = Array2::zeros((indices.len(), 1));
    gather_inputs(&ds, &indices, cpu.view_mut());
    assert_eq!(cpu, want, "the CPU reference");
    let got = ops
        .run(
            ops.gpu()
                .gather(ds.inputs(), 1, &indices, Normalize::IDENTITY),
        )
        .await
        .unwrap();
    assert_eq!(got, want, "the GPU gather");
}

pub async fn argmax_ties_pick_the_first_like_the_cpu(ops: &impl Ops) {
    let z = Array2::from_shape_vec((2, 3), vec![1.0, 1.0, 0.0, 0.0, 2.0, 2.0]).unwrap();
    let got = ops
        .run(ops.gpu().loss(
            Output::SoftmaxCrossEntropy,
            z.view(),
            OpTargets::Labels(&[0, 1]),
        ))
        .await
        .unwrap();
    assert_eq!(got.correct, 2);
    assert_eq!(loss::argmax(z.row(1).iter().copied()), 1);
}

/// Convolutions that fit no workgroup or tile: (batch, C_in, H, W, C_out, k, padding). C_in 1, 3
/// and 5; odd sizes; a kernel as wide as its input; both paddings; the `tfjs` preset's layers at
/// a batch of 65 (one more than a workgroup's multiple); channel counts past one block of the
/// kernels' (9 and 13: a full block and part of one) on rows of 11 pixels (two blocks of 4 and
/// part of one); a 9×9 kernel (the update's 8 taps of a row and one more); even kernels (2 and
/// 4, valid padding: same padding takes odd ones); a 10×10 valid kernel (past the update's 8
/// taps, with a 3×2 output).
const CONV_SHAPES: [(usize, usize, usize, usize, usize, usize, Padding); 11] = [
    (1, 1, 1, 1, 1, 1, Padding::Valid),
    (3, 1, 7, 5, 3, 3, Padding::Same),
    (5, 3, 9, 6, 5, 5, Padding::Valid),
    (2, 5, 6, 7, 2, 5, Padding::Same),
    (65, 1, 28, 28, 8, 5, Padding::Valid),
    (65, 8, 12, 12, 16, 5, Padding::Valid),
    (3, 9, 5, 11, 13, 3, Padding::Same),
    (2, 2, 9, 10, 3, 9, Padding::Same),
    (4, 2, 7, 6, 3, 2, Padding::Valid),
    (3, 3, 9, 8, 9, 4, Padding::Valid),
    (2, 2, 12, 11, 3, 10, Padding::Valid),
];

fn conv_shapes() -> impl Iterator<Item = (usize, ConvShape)> {
    CONV_SHAPES.into_iter().map(|(b, c, h, w, co, k, p)| {
        let s = ConvShape::new(Chw::new(c, h, w), co, k, p).expect("valid test shape");
        (b, s)
    })
}

/// GPU and CPU reference, both sums of `k` f32 terms in different orders: each is within
/// MATMUL_REL·√k·Σ|terms| of the exact sum (see [`MATMUL_REL`]), so they are within twice that
/// of each other. `scale` is Σ|terms| per element (the same op on absolute values).
fn assert_sums_close(
    what: &str,
    got: &Array2<f32>,
    cpu: &Array2<f32>,
    scale: &Array2<f32>,
    k: usize,
) {
    assert_eq!(got.dim(), cpu.dim(), "{what}: shape");
    let tol_k = 2.0 * MATMUL_REL * (k as f64).sqrt();
    for ((idx, &g), (&c, &s)) in got.indexed_iter().zip(cpu.iter().zip(scale.iter())) {
        let tol = tol_k * s as f64 + ULPS_ABS;
        assert!(
            (g as f64 - c as f64).abs() <= tol,
            "{what}: at {idx:?} gpu {g} vs cpu {c} (tolerance {tol:e})"
        );
    }
}

/// Every activation, and none.
fn every_activation() -> impl Iterator<Item = Option<Activation>> {
    Activation::ALL.into_iter().map(Some).chain([None])
}

/// `act` applied to every value (`None`: the values as they are), as the CPU backend does.
fn activate(act: Option<Activation>, z: &Array2<f32>) -> Array2<f32> {
    match act {
        Some(f) => z.mapv(|v| f.apply(v)),
        None => z.clone(),
    }
}

fn abs(a: &Array2<f32>) -> Array2<f32> {
    a.mapv(f32::abs)
}

/// The forward pass against `ops::conv::conv2d` followed by the activation (as the CPU backend
/// applies it): a sum of C_in·k² products and the bias, then f.
pub async fn conv_forward_matches_cpu_with_every_activation(ops: &impl Ops) {
    let mut rng = Pcg64Mcg::seed_from_u64(21);
    for (batch, s) in conv_shapes() {
        let (co, taps) = s.weight_dims();
        let x = random(&mut rng, batch, s.input().len(), 1.0);
        let w = random(&mut rng, co, taps, 1.0);
        let b = random(&mut rng, 1, co, 1.0).row(0).to_owned();
        let mut sum = Array2::zeros((batch, s.output().len()));
        conv::conv2d(&s, x.view(), w.view(), b.view(), sum.view_mut()).unwrap();
        let mut scale = Array2::zeros(sum.dim());
        let b_abs = b.mapv(f32::abs);
        conv::conv2d(
            &s,
            abs(&x).view(),
            abs(&w).view(),
            b_abs.view(),
            scale.view_mut(),
        )
        .unwrap();
        for act in every_activation() {
            let got = ops
                .run(ops.gpu().conv2d(&s, x.view(), w.view(), b.view(), act))
                .await
                .unwrap();
            let want = activate(act, &sum);
            // f is 1-Lipschitz for every activation soma has: the sum's error bounds f's.
            assert_sums_close(
                &format!("{s}, B={batch}, {act:?}"),
                &got,
                &want,
                &scale,
                taps + 1,
            );
        }
    }
}

/// The input gradient against `ops::conv::conv2d_input_grad` times f′ of the stored input
/// (every activation, and none): a sum of C_out·k² products, then one multiplication.
pub async fn conv_input_gradient_matches_cpu_times_each_derivative(ops: &impl Ops) {
    let mut rng = Pcg64Mcg::seed_from_u64(22);
    for (batch, s) in conv_shapes() {
        let (co, taps) = s.weight_dims();
        let k2 = s.kernel() * s.kernel();
        let dy = random(&mut rng, batch, s.output().len(), 1.0);
        let w = random(&mut rng, co, taps, 1.0);
        let mut dx = Array2::zeros((batch, s.input().len()));
        conv::conv2d_input_grad(&s, dy.view(), w.view(), dx.view_mut()).unwrap();
        let mut scale = Array2::zeros(dx.dim());
        conv::conv2d_input_grad(&s, abs(&dy).view(), abs(&w).view(), scale.view_mut()).unwrap();
        let z = random(&mut rng, batch, s.input().len(), 3.0);
        let got = ops
            .run(ops.gpu().conv2d_input_grad(&s, dy.view(), w.view(), None))
            .await
            .unwrap();
        assert_sums_close(&format!("{s}, B={batch}"), &got, &dx, &scale, co * k2);
        for act in Activation::ALL {
            let a = z.mapv(|z| act.apply(z));
            let got = ops
                .run(
                    ops.gpu()
                        .conv2d_input_grad(&s, dy.view(), w.view(), Some((a.view(), act))),
                )
                .await
                .unwrap();
            let d = a.mapv(|a| act.derivative_from_output(a));
            // |f′| ≤ 1 for every activation: the product's error is the sum's, plus an ulp.
            let want = &dx * &d;
            let what = format!("{s}, B={batch}, ⊙{act}′");
            assert_sums_close(&what, &got, &want, &scale, co * k2);
        }
    }
}

/// The update kernel: with plain SGD at lr 1 from zero parameters it writes −g, which gives its
/// gradients (a sum over B·OH·OW terms) against `ops::conv::conv2d_param_grads`; then each
/// optimizer, from earlier state past a gap in the state buffer, must update as the CPU's
/// `optim::update` does with those same gradients (within [`OPTIM_ABS`], as the dense
/// update's case).
pub async fn conv_update_gives_cpu_gradients_to_every_optimizer(ops: &impl Ops) {
    let mut rng = Pcg64Mcg::seed_from_u64(23);
    for (batch, s) in conv_shapes() {
        let (co, taps) = s.weight_dims();
        let n = s.parameter_count();
        let x = random(&mut rng, batch, s.input().len(), 1.0);
        let dy = random(&mut rng, batch, s.output().len(), 1.0);
        let (mut dw, mut db) = (Array2::zeros((co, taps)), Array1::zeros(co));
        conv::conv2d_param_grads(&s, x.view(), dy.view(), dw.view_mut(), db.view_mut()).unwrap();
        let (mut sw, mut sb) = (Array2::zeros((co, taps)), Array1::zeros(co));
        conv::conv2d_param_grads(
            &s,
            abs(&x).view(),
            abs(&dy).view(),
            sw.view_mut(),
            sb.view_mut(),
        )
        .unwrap();
        let flat = |w: &Array2<f32>, b: &Array1<f32>| -> Array2<f32> {
            let v: Vec<f32> = w.iter().chain(b.iter()).copied().collect();
            Array2::from_shape_vec((1, n), v).unwrap()
        };
        let sgd = UpdateSpec {
            optimizer: &Optimizer::Sgd,
            lr: 1.0,
            t: 1,
            tile: None,
        };
        let zeros = Array1::zeros(n);
        let (p, _) = ops
            .run(
                ops.gpu()
                    .conv2d_update(&s, x.view(), dy.view(), zeros.view(), &[], sgd),
            )
            .await
            .unwrap();
        let g = p.mapv(|v| -v);
        let plane = s.output().h * s.output().w;
        let what = format!("{s}, B={batch}: gradients");
        let g2 = g.clone().into_shape_with_order((1, n)).unwrap();
        assert_sums_close(&what, &g2, &flat(&dw, &db), &flat(&sw, &sb), batch * plane);

        let optimizers = [
            Optimizer::momentum().with_weight_decay(1e-2),
            Optimizer::adam(),
            Optimizer::adam().with_weight_decay(1e-3),
        ];
        for opt in optimizers {
            let p0 = Array1::from_shape_fn(n, |_| rng.random::<f32>() - 0.5);
            let mut state: Vec<Array1<f32>> = (0..opt.slots())
                .map(|i| Array1::from_shape_fn(n, |_| rng.random::<f32>() * 0.1 + i as f32 * 0.01))
                .collect();
            let views: Vec<_> = state.iter().map(|v| v.view()).collect();
            let spec = UpdateSpec {
                optimizer: &opt,
                lr: 0.05,
                t: 3,
                tile: None,
            };
            let (p, got_state) = ops
                .run(
                    ops.gpu()
                        .conv2d_update(&s, x.view(), dy.view(), p0.view(), &views, spec),
                )
                .await
                .unwrap();
            let mut want = p0.clone();
            let mut sv: Vec<_> = state.iter_mut().map(|v| v.view_mut()).collect();
            optim::update(&opt, 0.05, 3, want.view_mut(), g.view(), &mut sv);
            let diff = |a: &Array1<f32>, b: &Array1<f32>| {
                a.iter()
                    .zip(b)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max)
            };
            assert!(diff(&p, &want) <= OPTIM_ABS, "{s}, {opt:?}: parameters");
            for (a, b) in got_state.iter().zip(&state) {
                assert!(diff(a, b) <= OPTIM_ABS, "{s}, {opt:?}: state");
            }
        }
    }
}

/// The pool against `ops::pool`: maxima and arg-maxes exactly, on values drawn from four levels
/// so that most windows hold ties (the first in row-major order must win on both); then the
/// backward pass from the CPU's arg-maxes, plain and times each activation's f′.
pub async fn max_pool_matches_cpu_with_ties_and_routes_gradients_back(ops: &impl Ops) {
    let mut rng = Pcg64Mcg::seed_from_u64(24);
    for (batch, c, h, w) in [(1, 1, 2, 2), (3, 3, 6, 4), (65, 8, 24, 24), (7, 16, 8, 10)] {
        let s = PoolShape::new(Chw::new(c, h, w)).unwrap();
        let x = Array2::from_shape_fn((batch, s.input().len()), |_| {
            (rng.random_range(0..4u32) as f32 - 1.5) * 0.5
        });
        let (o, len) = (s.output().len(), s.input().len());
        let (mut y, mut at) = (Array2::zeros((batch, o)), Array2::zeros((batch, o)));
        pool::max_pool(&s, x.view(), y.view_mut(), at.view_mut()).unwrap();
        let (gy, gat) = ops.run(ops.gpu().max_pool(&s, x.view())).await.unwrap();
        assert_eq!(gy, y, "{s}, B={batch}: maxima");
        assert_eq!(gat, at, "{s}, B={batch}: arg-maxes");

        let dy = random(&mut rng, batch, o, 1.0);
        let mut dx = Array2::zeros((batch, len));
        pool::max_pool_backward(&s, dy.view(), at.view(), dx.view_mut()).unwrap();
        let got = ops
            .run(ops.gpu().max_pool_backward(&s, dy.view(), at.view(), None))
            .await
            .unwrap();
        assert_eq!(got, dx, "{s}, B={batch}: gradients");
        let z = random(&mut rng, batch, len, 3.0);
        let what = format!("{s}, B={batch}");
        let gpu = |d: Derivative<'_>| ops.gpu().max_pool_backward(&s, dy.view(), at.view(), d);
        times_every_derivative(ops, &what, &z, &dx, gpu).await;
    }
}

/// Average pools, 2×2 and global (windows of 1 to 784 values), forward with every activation
/// and none, backward plain and ⊙ every f′. A window's mean is a sum of n values of magnitude
/// ≤ 1 in any order, then one product: its error is at most n·u ≈ n·6e-8, plus an activation's
/// few ulps.
pub async fn avg_pool_matches_cpu_with_every_activation_and_spreads_gradients(ops: &impl Ops) {
    let mut rng = Pcg64Mcg::seed_from_u64(25);
    let shapes = [
        (1, AvgPoolShape::new(Chw::new(1, 2, 2), 2, 2).unwrap()),
        (3, AvgPoolShape::new(Chw::new(3, 6, 4), 2, 2).unwrap()),
        (65, AvgPoolShape::new(Chw::new(8, 24, 24), 2, 2).unwrap()),
        (5, AvgPoolShape::global(Chw::new(7, 7, 9)).unwrap()),
        (9, AvgPoolShape::global(Chw::new(3, 28, 28)).unwrap()),
        (4, AvgPoolShape::global(Chw::new(13, 1, 1)).unwrap()),
    ];
    for (batch, s) in shapes {
        let (wh, ww) = s.window();
        let tol = (wh * ww) as f64 * 6e-8 + ULPS_ABS;
        let (o, len) = (s.output().len(), s.input().len());
        let x = random(&mut rng, batch, len, 1.0);
        let mut y = Array2::zeros((batch, o));
        avg_pool(&s, x.view(), y.view_mut()).unwrap();
        let acts = Activation::ALL.map(Some);
        for act in acts.into_iter().chain([None]) {
            let got = ops
                .run(ops.gpu().avg_pool(&s, x.view(), act))
                .await
                .unwrap();
            let want = y.mapv(|v| act.map_or(v, |a| a.apply(v)));
            assert_all_close(&format!("{s}, B={batch}, {act:?}"), &got, &want, tol);
        }

        let dy = random(&mut rng, batch, o, 1.0);
        let mut dx = Array2::zeros((batch, len));
        avg_pool_backward(&s, dy.view(), dx.view_mut()).unwrap();
        let got = ops
            .run(ops.gpu().avg_pool_backward(&s, dy.view(), None))
            .await
            .unwrap();
        assert_all_close(&format!("{s}, B={batch}: gradients"), &got, &dx, ULPS_ABS);
        let z = random(&mut rng, batch, len, 3.0);
        let what = format!("{s}, B={batch}");
        let gpu = |d: Derivative<'_>| ops.gpu().avg_pool_backward(&s, dy.view(), d);
        times_every_derivative(ops, &what, &z, &dx, gpu).await;
    }
}

/// Dropout: the GPU draws the CPU's masks bit for bit (the same values kept, each scaled by
/// one product: exact), for rates from 0 to 0.9, steps up to 2³² − 1, several seeds and a block
/// that starts past row 0 (as a CPU thread's block does); evaluation passes the values through;
/// the backward pass goes through the same mask, ⊙ every f′ (an activation's few ulps).
pub async fn dropout_draws_the_cpu_masks_exactly(ops: &impl Ops) {
    let mut rng = Pcg64Mcg::seed_from_u64(26);
    let cases = [
        (1, 1, 0.5, 0, 1, 0),
        (7, 13, 0.25, 3, 12_345, 0),
        (65, 300, 0.1, 9, u32::MAX, 0),
        (5, 33, 0.9, 2, 7, 40),
        (3, 8, 0.0, 1, 2, 0),
    ];
    for (rows, n, p, seed, step, row0) in cases {
        let (rate, draw) = (Rate::new(p), Draw { seed, step, row0 });
        let what = format!("p {p}, {rows}×{n}, seed {seed}, step {step}, from row {row0}");
        let x = random(&mut rng, rows, n, 1.0);
        let mut y = Array2::zeros((rows, n));
        dropout::forward(rate, draw, x.view(), y.view_mut());
        let got = ops
            .run(ops.gpu().dropout(rate, Some(draw), x.view(), None))
            .await
            .unwrap();
        assert_eq!(got, y, "{what}: training");
        for act in Activation::ALL {
            let got = ops
                .run(ops.gpu().dropout(rate, Some(draw), x.view(), Some(act)))
                .await
                .unwrap();
            let want = y.mapv(|v| act.apply(v));
            assert_all_close(&format!("{what}, then {act}"), &got, &want, ULPS_ABS);
        }
        let got = ops
            .run(ops.gpu().dropout(rate, None, x.view(), None))
            .await
            .unwrap();
        assert_eq!(got, x, "{what}: evaluation");

        let dy = random(&mut rng, rows, n, 1.0);
        let mut dx = Array2::zeros((rows, n));
        dropout::backward(rate, draw, dy.view(), dx.view_mut());
        let got = ops
            .run(ops.gpu().dropout_backward(rate, draw, dy.view(), None))
            .await
            .unwrap();
        assert_eq!(got, dx, "{what}: backward");
        let z = random(&mut rng, rows, n, 3.0);
        let what = format!("{what}: backward");
        let gpu = |d: Derivative<'_>| ops.gpu().dropout_backward(rate, draw, dy.view(), d);
        times_every_derivative(ops, &what, &z, &dx, gpu).await;
    }
}

/// Batch norm's five kernels against `ops::batchnorm` (its sums in f64), per channel after a
/// convolution and per feature (a plane of 1), including a batch of one row (σ² = 0) and channel
/// counts that fill no workgroup. Bounds: a workgroup's tree sum of N f32 terms is off by at
/// most log₂N·u·Σ|terms| (u ≈ 6e-8, N ≤ 2¹²), so sums are held to 2e-6·Σ|terms| and means and
/// 1/σ to 1e-5 (relative, from values of size ≤ 1); elementwise kernels to a few ulps, and the
/// update to the optimizer cases' bound.
pub async fn batch_norm_kernels_match_cpu(ops: &impl Ops) {
    let mut rng = Pcg64Mcg::seed_from_u64(27);
    let shapes = [
        (1, 1, 1),
        (1, 3, 4),
        (7, 3, 5),
        (65, 8, 36),
        (33, 16, 1),
        (4, 13, 49),
    ];
    for (rows, channels, plane) in shapes {
        let s = BnShape { channels, plane };
        let what = format!("{channels} channels of {plane}, {rows} rows");
        let n = rows * plane;
        let x = random(&mut rng, rows, s.len(), 1.0);
        let (gamma, beta) = (
            random(&mut rng, 1, channels, 1.0),
            random(&mut rng, 1, channels, 1.0),
        );
        let (gamma, beta) = (gamma.row(0).to_owned(), beta.row(0).to_owned());
        let run_mean = Array1::from_shape_fn(channels, |_| rng.random::<f32>() - 0.5);
        let run_var = Array1::from_shape_fn(channels, |_| rng.random::<f32>() + 0.5);
        let running = (run_mean.view(), run_var.view());

        // Statistics.
        let mut sums = vec![0.0f64; 2 * channels];
        bn::add_moments(s, x.view(), &mut sums);
        let (mut mean, mut inv, mut unbiased) = (
            vec![0.0; channels],
            vec![0.0; channels],
            vec![0.0; channels],
        );
        bn::batch_statistics(s, &sums, n, &mut mean, &mut inv, &mut unbiased);
        let (gm, ginv, grm, grv) = ops
            .run(ops.gpu().batch_norm_stats(s, x.view(), running))
            .await
            .unwrap();
        let row = |v: &[f32]| Array2::from_shape_vec((1, v.len()), v.to_vec()).unwrap();
        let m = bn::MOMENTUM;
        let want_rm: Vec<f32> = run_mean
            .iter()
            .zip(&mean)
            .map(|(r, v)| (1.0 - m) * r + m * v)
            .collect();
        let want_rv: Vec<f32> = run_var
            .iter()
            .zip(&unbiased)
            .map(|(r, v)| (1.0 - m) * r + m * v)
            .collect();
        for (name, got, want) in [
            ("mean", &gm, &mean),
            ("1/σ", &ginv, &inv),
            ("running mean", &grm, &want_rm),
            ("running variance", &grv, &want_rv),
        ] {
            let got = got.view().insert_axis(ndarray::Axis(0)).to_owned();
            assert_all_close(&format!("{what}: {name}"), &got, &row(want), 1e-5);
        }

        // Normalisation, with the batch's statistics and with the running ones.
        let (mean_a, inv_a) = (Array1::from(mean.clone()), Array1::from(inv.clone()));
        let mut y = Array2::zeros((rows, s.len()));
        bn::normalize(
            s,
            x.view(),
            &mean,
            &inv,
            gamma.view(),
            beta.view(),
            y.view_mut(),
        );
        let mut run_inv = vec![0.0; channels];
        bn::running_inv_std(run_var.view(), &mut run_inv);
        let mut y_run = Array2::zeros((rows, s.len()));
        let rm = run_mean.to_vec();
        bn::normalize(
            s,
            x.view(),
            &rm,
            &run_inv,
            gamma.view(),
            beta.view(),
            y_run.view_mut(),
        );
        for act in Activation::ALL.map(Some).into_iter().chain([None]) {
            let f = |v: f32| act.map_or(v, |a| a.apply(v));
            let batch = Some((mean_a.view(), inv_a.view()));
            let gb = (gamma.view(), beta.view());
            let got = ops
                .run(
                    ops.gpu()
                        .batch_norm_normalize(s, x.view(), batch, gb, running, act),
                )
                .await
                .unwrap();
            assert_all_close(
                &format!("{what}: normalised, {act:?}"),
                &got,
                &y.mapv(f),
                1e-5,
            );
            let got = ops
                .run(
                    ops.gpu()
                        .batch_norm_normalize(s, x.view(), None, gb, running, act),
                )
                .await
                .unwrap();
            let want = y_run.mapv(f);
            assert_all_close(&format!("{what}: running, {act:?}"), &got, &want, 1e-5);
        }

        // Gradient sums.
        let dy = random(&mut rng, rows, s.len(), 1.0);
        let mut gsums = vec![0.0f64; 2 * channels];
        bn::add_grad_sums(s, x.view(), dy.view(), &mean, &inv, &mut gsums);
        let (sdy, sdyx) = ops
            .run(ops.gpu().batch_norm_grad_sums(
                s,
                x.view(),
                dy.view(),
                (mean_a.view(), inv_a.view()),
            ))
            .await
            .unwrap();
        for c in 0..channels {
            let terms: f64 = (0..rows)
                .flat_map(|r| (0..plane).map(move |i| (r, c * plane + i)))
                .map(|(r, i)| {
                    dy[[r, i]].abs() as f64
                        * (1.0 + (x[[r, i]] - mean[c]).abs() as f64 * inv[c] as f64)
                })
                .sum();
            let tol = 2e-6 * terms + 1e-7;
            assert!((sdy[c] as f64 - gsums[c]).abs() <= tol, "{what}: Σdy[{c}]");
            assert!(
                (sdyx[c] as f64 - gsums[channels + c]).abs() <= tol,
                "{what}: Σdy·x̂[{c}]"
            );
        }

        // Input gradient, ⊙ f′ of the layer before (taken from x, the layer before's output).
        let a = x.mapv(|v| v.abs());
        for before in Activation::ALL.map(Some).into_iter().chain([None]) {
            let mut dx = Array2::zeros((rows, s.len()));
            bn::input_grad(
                s,
                a.view(),
                dy.view(),
                &mean,
                &inv,
                gamma.view(),
                &gsums,
                n,
                dx.view_mut(),
            );
            if let Some(f) = before {
                dx.zip_mut_with(&a, |d, &a| *d *= f.derivative_from_output(a));
            }
            let sums_f32 = (
                Array1::from_iter((0..channels).map(|c| gsums[c] as f32)),
                Array1::from_iter((0..channels).map(|c| gsums[channels + c] as f32)),
            );
            let got = ops
                .run(ops.gpu().batch_norm_input_grad(
                    s,
                    (a.view(), dy.view()),
                    (mean_a.view(), inv_a.view()),
                    (sums_f32.0.view(), sums_f32.1.view()),
                    gamma.view(),
                    before,
                ))
                .await
                .unwrap();
            assert_all_close(
                &format!("{what}: input gradient ⊙{before:?}′"),
                &got,
                &dx,
                1e-5,
            );
        }

        // The update of γ and β by every optimizer.
        for opt in [
            Optimizer::Sgd,
            Optimizer::momentum(),
            Optimizer::adam().with_weight_decay(1e-3),
        ] {
            let (sdy, sdyx) = (
                Array1::from_iter((0..channels).map(|c| gsums[c] as f32)),
                Array1::from_iter((0..channels).map(|c| gsums[channels + c] as f32)),
            );
            let state: Vec<Array1<f32>> = (0..opt.slots())
                .map(|_| Array1::from_shape_fn(2 * channels, |_| rng.random::<f32>() * 0.1))
                .collect();
            let mut p: Array1<f32> = gamma.iter().chain(beta.iter()).copied().collect();
            let g: Array1<f32> = sdyx.iter().chain(sdy.iter()).copied().collect();
            let mut cpu_state = state.clone();
            let mut views: Vec<_> = cpu_state.iter_mut().map(|s| s.view_mut()).collect();
            optim::update(&opt, 0.05, 3, p.view_mut(), g.view(), &mut views);
            let views: Vec<_> = state.iter().map(|s| s.view()).collect();
            let spec = soma::gpu::ops::UpdateSpec {
                optimizer: &opt,
                lr: 0.05,
                t: 3,
                tile: None,
            };
            let (gp, gs) = ops
                .run(ops.gpu().batch_norm_update(
                    s,
                    (gamma.view(), beta.view()),
                    (sdy.view(), sdyx.view()),
                    &views,
                    spec,
                ))
                .await
                .unwrap();
            let diff = gp
                .iter()
                .zip(&p)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(diff <= OPTIM_ABS, "{what}: {opt:?}: γ, β differ by {diff}");
            for (a, b) in gs.iter().zip(&cpu_state) {
                let d = a
                    .iter()
                    .zip(b)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max);
                assert!(d <= OPTIM_ABS, "{what}: {opt:?}: state differs by {d}");
            }
        }
    }
}

/// A backward op `gpu` times each activation's f′ at `f(z)` against the plain gradient `dx`
/// times the same f′ (an activation's few ulps).
async fn times_every_derivative<'a, O: Ops>(
    ops: &'a O,
    what: &str,
    z: &Array2<f32>,
    dx: &Array2<f32>,
    gpu: impl Fn(Derivative<'_>) -> soma::Result<Readout<'a, Array2<f32>>>,
) {
    for act in Activation::ALL {
        let a = z.mapv(|z| act.apply(z));
        let got = ops.run(gpu(Some((a.view(), act)))).await.unwrap();
        let want = dx * &a.mapv(|a| act.derivative_from_output(a));
        assert_all_close(&format!("{what}, ⊙{act}′"), &got, &want, ULPS_ABS);
    }
}

/// Bitwise equality where NaN equals NaN (any payload): the NaN rule's check.
fn assert_same_or_both_nan(what: &str, got: &Array2<f32>, want: &Array2<f32>) {
    assert_eq!(got.dim(), want.dim(), "{what}: shape");
    for ((idx, &g), &w) in got.indexed_iter().zip(want.iter()) {
        let same = (g.is_nan() && w.is_nan()) || (g - w).abs() as f64 <= ULPS_ABS;
        assert!(same, "{what}: at {idx:?} gpu {g} vs cpu {w}");
    }
}

/// The NaN rule, one for the CPU and the GPU (`ops::activation`, `ops::pool`): a NaN goes
/// through every activation, ReLU's included, and wins its pool window, so that it reaches the
/// loss and the divergence check instead of being hidden. A 1×1 convolution with unit weight
/// carries a NaN input to its output through each activation, then a pool; the GPU must give
/// NaN exactly where the CPU does.
pub async fn nan_goes_through_pool_and_every_activation_as_on_the_cpu(ops: &impl Ops) {
    let s = ConvShape::new(Chw::new(1, 4, 4), 1, 1, Padding::Valid).unwrap();
    let mut x = Array2::from_shape_fn((2, 16), |(r, i)| (i as f32 - 7.5) * (r as f32 + 1.0));
    x[[0, 5]] = f32::NAN;
    x[[1, 0]] = f32::NAN;
    x[[1, 15]] = -f32::NAN;
    let w = Array2::ones((1, 1));
    let b = Array1::zeros(1);
    let p = PoolShape::new(Chw::new(1, 4, 4)).unwrap();
    for act in every_activation() {
        let got = ops
            .run(ops.gpu().conv2d(&s, x.view(), w.view(), b.view(), act))
            .await
            .unwrap();
        let want = activate(act, &x);
        assert!(want[[0, 5]].is_nan(), "{act:?}: the CPU keeps the NaN");
        assert_same_or_both_nan(&format!("conv through {act:?}"), &got, &want);
        let (pooled, at) = ops.run(ops.gpu().max_pool(&p, want.view())).await.unwrap();
        let (mut y, mut cpu_at) = (Array2::zeros((2, 4)), Array2::zeros((2, 4)));
        pool::max_pool(&p, want.view(), y.view_mut(), cpu_at.view_mut()).unwrap();
        assert!(y[[0, 0]].is_nan() && y[[1, 0]].is_nan() && y[[1, 3]].is_nan());
        assert_same_or_both_nan(&format!("pool after {act:?}"), &pooled, &y);
        assert_eq!(at, cpu_at, "pool after {act:?}: arg-maxes");
    }
}

/// Grids past the 65,535 workgroups a dimension may hold are folded into two dimensions, whose
/// spare workgroups must do nothing: a pool of 257 samples of 1×256×256 (65,792 workgroups of a
/// window per thread) and a 1×1 convolution of 4,100 samples of 64×64 (65,600 workgroups of
/// four pixels per thread), forward and backward, against the CPU.
pub async fn grids_fold_past_65535_workgroups(ops: &impl Ops) {
    let mut rng = Pcg64Mcg::seed_from_u64(25);
    let p = PoolShape::new(Chw::new(1, 256, 256)).unwrap();
    let x = random(&mut rng, 257, p.input().len(), 1.0);
    let (o, len) = (p.output().len(), p.input().len());
    let (mut y, mut at) = (Array2::zeros((257, o)), Array2::zeros((257, o)));
    pool::max_pool(&p, x.view(), y.view_mut(), at.view_mut()).unwrap();
    let (gy, gat) = ops.run(ops.gpu().max_pool(&p, x.view())).await.unwrap();
    assert!(
        gy == y && gat == at,
        "pool of 257 × 256×256: maxima and arg-maxes"
    );
    let dy = random(&mut rng, 257, o, 1.0);
    let mut dx = Array2::zeros((257, len));
    pool::max_pool_backward(&p, dy.view(), at.view(), dx.view_mut()).unwrap();
    let got = ops
        .run(ops.gpu().max_pool_backward(&p, dy.view(), at.view(), None))
        .await
        .unwrap();
    assert!(got == dx, "pool of 257 × 256×256: gradients");

    let s = ConvShape::new(Chw::new(1, 64, 64), 1, 1, Padding::Same).unwrap();
    let x = random(&mut rng, 4100, s.input().len(), 1.0);
    let w = Array2::from_elem((1, 1), 0.5);
    let b = Array1::from_elem(1, 0.25);
    let got = ops
        .run(ops.gpu().conv2d(&s, x.view(), w.view(), b.view(), None))
        .await
        .unwrap();
    // One product and one sum per value: exact in f32 (a power of two, then a sum of two).
    assert!(got == x.mapv(|v| v * 0.5 + 0.25), "conv of 4,100 × 64×64");
    let got = ops
        .run(ops.gpu().conv2d_input_grad(&s, x.view(), w.view(), None))
        .await
        .unwrap();
    assert!(
        got == x.mapv(|v| v * 0.5),
        "conv input gradient of 4,100 × 64×64"
    );
}

//! The optimizer update, one parameter tensor at a time: the CPU twin of
//! `shaders/optim.wgsl`'s `optimizer_update`, which the weight-gradient matmul applies in its
//! epilogue (and the standalone kernel `shaders/optim_step.wgsl` over a whole buffer).

use bytemuck::{Pod, Zeroable};
use ndarray::{ArrayView, ArrayViewMut, Dimension, Ix1, Ix2, Zip};

use super::Shared;
use crate::optim::{OptimState, Optimizer};
use crate::params::{Params, Weights};
use crate::shape::TensorRole;

/// `optimizer_update` and the records it reads; included by every kernel that updates.
pub(crate) const WGSL: &str = include_str!("../../shaders/optim.wgsl");
/// The standalone update kernel over a whole buffer (single-op runner and its tests).
pub(crate) const STEP_WGSL: &str = include_str!("../../shaders/optim_step.wgsl");

impl Optimizer {
    /// Its kind: what a kernel is specialised for (the hyper-parameters are data).
    pub const fn kind(&self) -> OptimKind {
        match self {
            Optimizer::Sgd => OptimKind::Sgd,
            Optimizer::Momentum { .. } => OptimKind::Momentum,
            Optimizer::Adam { .. } => OptimKind::Adam,
        }
    }

    /// The code the kernels switch on.
    pub const fn code(&self) -> u32 {
        self.kind().code()
    }
}

/// An optimizer's kind, without its hyper-parameters: what a pipeline is specialised for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OptimKind {
    Sgd = 0,
    Momentum = 1,
    Adam = 2,
}

impl OptimKind {
    /// Every kind, in code order.
    pub const ALL: [OptimKind; 3] = [OptimKind::Sgd, OptimKind::Momentum, OptimKind::Adam];

    /// Its name, as [`Optimizer::name`] gives it.
    pub const fn name(self) -> &'static str {
        match self {
            OptimKind::Sgd => "sgd",
            OptimKind::Momentum => "momentum",
            OptimKind::Adam => "adam",
        }
    }

    /// The code the kernels switch on (`OPTIM_*` in the prelude).
    pub const fn code(self) -> u32 {
        self as u32
    }
}

pub(crate) const SHARED: &[Shared] = &[
    Shared::U32("OPTIM_SGD", OptimKind::Sgd.code()),
    Shared::U32("OPTIM_MOMENTUM", OptimKind::Momentum.code()),
    Shared::U32("OPTIM_ADAM", OptimKind::Adam.code()),
];

/// `shaders/optim.wgsl`'s `OptimParams`: an optimizer's kind and hyper-parameters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct OptimParams {
    pub kind: u32,
    pub slot_stride: u32,
    pub momentum: f32,
    pub weight_decay: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub _pad: u32,
}

impl OptimParams {
    /// The record of `optimizer`, whose second state slot starts `slot_stride` values after
    /// the first.
    pub fn new(optimizer: &Optimizer, slot_stride: u32) -> OptimParams {
        let h = |name| optimizer.hyper_parameter(name).unwrap_or(0.0);
        OptimParams {
            kind: optimizer.code(),
            slot_stride,
            momentum: h("momentum"),
            weight_decay: h("weight_decay"),
            beta1: h("beta1"),
            beta2: h("beta2"),
            eps: h("eps"),
            _pad: 0,
        }
    }
}

/// `shaders/optim_step.wgsl`'s `Dims`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct OptimDims {
    pub n: u32,
    pub use_step: u32,
    pub fixed_lr: f32,
    pub fixed_c1: f32,
    pub fixed_c2: f32,
    pub _pad: [u32; 3],
    pub opt: OptimParams,
}

/// One update of one parameter tensor in place: the reference the GPU kernel matches.
/// `state` holds `optimizer.slots()` tensors shaped like `p`; `t` is the 1-based step number.
pub fn update<D: Dimension>(
    optimizer: &Optimizer,
    lr: f32,
    t: u64,
    mut p: ArrayViewMut<f32, D>,
    g: ArrayView<f32, D>,
    state: &mut [ArrayViewMut<f32, D>],
) {
    match *optimizer {
        Optimizer::Sgd => Zip::from(&mut p).and(&g).for_each(|p, &g| *p -= lr * g),
        Optimizer::Momentum {
            momentum,
            weight_decay,
        } => {
            let [v] = state else {
                panic!("momentum has one state slot")
            };
            Zip::from(&mut p).and(&g).and(v).for_each(|p, &g, v| {
                let g = g + weight_decay * *p;
                *v = momentum * *v + g;
                *p -= lr * *v;
            });
        }
        Optimizer::Adam {
            beta1,
            beta2,
            eps,
            weight_decay,
        } => {
            let (c1, c2) = optimizer.bias_corrections(t);
            let [m, v] = state else {
                panic!("adam has two state slots")
            };
            Zip::from(&mut p)
                .and(&g)
                .and(m)
                .and(v)
                .for_each(|p, &g, m, v| {
                    let g = g + weight_decay * *p;
                    *m = beta1 * *m + (1.0 - beta1) * g;
                    *v = beta2 * *v + (1.0 - beta2) * g * g;
                    let m_hat = *m / c1;
                    let v_hat = *v / c2;
                    *p -= lr * m_hat / (v_hat.sqrt() + eps);
                });
        }
    }
}

/// One step of a tensor of `role`: [`update`] for a trained one; for statistics, a running
/// average of the value the step measured, which the forward pass left in the gradient's place
/// (`p ← (1 − m)·p + m·g`, `m` = [`super::batchnorm::MOMENTUM`]; no slots, no decay).
pub fn step<D: Dimension>(
    optimizer: &Optimizer,
    role: TensorRole,
    (lr, t): (f32, u64),
    p: ArrayViewMut<f32, D>,
    g: ArrayView<f32, D>,
    state: &mut [ArrayViewMut<f32, D>],
) {
    match role {
        TensorRole::RunningAverage => {
            let m = super::batchnorm::MOMENTUM;
            Zip::from(p)
                .and(&g)
                .for_each(|p, &g| *p = (1.0 - m) * *p + m * g);
        }
        TensorRole::Trained | TensorRole::TrainedFromOnes => update(optimizer, lr, t, p, g, state),
    }
}

/// Applies one step to every tensor of `params` (each by its role in `roles`, see [`step`]),
/// advancing `state.step`.
pub fn apply(
    optimizer: &Optimizer,
    lr: f32,
    roles: &[TensorRole],
    params: &mut Params,
    grads: &Params,
    state: &mut OptimState,
) {
    state.step += 1;
    let t = state.step;
    for (l, (layer, grad)) in params.layers.iter_mut().zip(&grads.layers).enumerate() {
        let role = roles[l];
        // At most two state tensors: their views go in a fixed array, not a Vec, so that a
        // step allocates nothing; `update` reads only the first `slots()` of them.
        let mut slots = state.slots.iter_mut().map(|s| &mut s.layers[l]);
        let (mut s0, mut s1) = (slots.next(), slots.next());
        let n = optimizer.slots();
        let mut ws = [w_view(&mut s0), w_view(&mut s1)];
        let (w, gw) = (layer.w.view_mut(), grad.w.view());
        step(optimizer, role, (lr, t), w, gw, &mut ws[..n]);
        let mut bs = [b_view(&mut s0), b_view(&mut s1)];
        let (b, gb) = (layer.b.view_mut(), grad.b.view());
        step(optimizer, role, (lr, t), b, gb, &mut bs[..n]);
    }
}

/// The weights of a state slot, or an empty view where the optimizer has no such slot.
fn w_view<'a>(slot: &'a mut Option<&mut Weights>) -> ArrayViewMut<'a, f32, Ix2> {
    match slot {
        Some(s) => s.w.view_mut(),
        None => ArrayViewMut::from_shape((0, 0), &mut []).expect("an empty shape fits"),
    }
}

/// The biases of a state slot, or an empty view.
fn b_view<'a>(slot: &'a mut Option<&mut Weights>) -> ArrayViewMut<'a, f32, Ix1> {
    match slot {
        Some(s) => s.b.view_mut(),
        None => ArrayViewMut::from_shape(0, &mut []).expect("an empty shape fits"),
    }
}

//! `C = op(A) · op(B)` with an epilogue: the CPU twin of `shaders/matmul*.wgsl`.
//!
//! The CPU reference is [`crate::cpu::linalg::gemm`] followed by the epilogue functions here
//! ([`bias_activation`] for the forward pass, [`mul_derivative`] for input gradients); the
//! optimizer epilogue is [`super::optim::update`] and the ones-row (bias gradient) is
//! [`super::reduce::column_sums`].

use bytemuck::{Pod, Zeroable};
use multiversion::multiversion;
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2};

use super::Shared;
use super::activation::ACT_IDENTITY;
use super::activation::Activation;
use super::optim::{OptimKind, OptimParams};

mod tile;

pub use tile::*;

pub(crate) const WGSL: &str = include_str!("../../../shaders/matmul.wgsl");
pub(crate) const STAGED_WGSL: &str = include_str!("../../../shaders/matmul_staged.wgsl");

/// Where the matmul takes its row count from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum RowsDim {
    Fixed = 0,
    /// `m` is the step record's rows (forward, input gradients).
    M = 1,
    /// `k` is the step record's rows (weight gradients, which reduce over the batch).
    K = 2,
}

/// The matmul epilogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Epilogue {
    None = 0,
    /// `c = act(acc + bias[j])`, bias at `bias_offset` in B ([`bias_activation`]).
    BiasAct = 1,
    /// `c = acc · f'(aux[i, j])` ([`mul_derivative`]).
    MulDerivative = 2,
    /// `acc` is the gradient of parameter `c[i, j]`: apply the optimizer to it in place
    /// ([`super::optim::update`]).
    Optim = 3,
}

pub(crate) const SHARED: &[Shared] = &[
    Shared::U32("EPI_NONE", Epilogue::None as u32),
    Shared::U32("EPI_BIAS_ACT", Epilogue::BiasAct as u32),
    Shared::U32("EPI_MUL_DERIV", Epilogue::MulDerivative as u32),
    Shared::U32("EPI_OPTIM", Epilogue::Optim as u32),
    Shared::U32("ROWS_M", RowsDim::M as u32),
    Shared::U32("ROWS_K", RowsDim::K as u32),
];

/// What a matmul pipeline is specialised for beyond its form and tile: the epilogue, the
/// activation it applies or differentiates, and the optimizer kind it updates with, given to
/// the kernel as override constants. Software adapters run every arm of a branch on a record
/// field under a lane mask: with the three read from the record, SwiftShader ran the code of all
/// epilogues, activations and optimizers for every element of C, which made the first layer's
/// weight-gradient kernel 2.8× slower at batch 64 (BENCHMARKS.md). The record keeps its copies
/// of the fields, and they choose the pipeline ([`Special::of`]), so the two cannot disagree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Special {
    pub epilogue: u32,
    /// The activation code (`ACT_*`) of `BiasAct` and `MulDerivative`; 0 otherwise.
    pub act: u32,
    /// The optimizer code (`OPTIM_*`) of `Optim`; 0 otherwise.
    pub optim: u32,
}

impl Special {
    /// The specialisation a dims record asks for (fields its epilogue ignores are zeroed, so
    /// that records differing only there share a pipeline).
    pub fn of(dims: &MatmulDims) -> Special {
        let with_act = [Epilogue::BiasAct as u32, Epilogue::MulDerivative as u32];
        Special {
            epilogue: dims.epilogue,
            act: if with_act.contains(&dims.epilogue) {
                dims.act
            } else {
                0
            },
            optim: if dims.epilogue == Epilogue::Optim as u32 {
                dims.opt.kind
            } else {
                0
            },
        }
    }

    /// Every specialisation the kernels can be built with.
    pub fn all() -> Vec<Special> {
        let acts = Activation::ALL
            .iter()
            .map(|a| a.code())
            .chain([ACT_IDENTITY]);
        let plain = Special {
            epilogue: Epilogue::None as u32,
            act: 0,
            optim: 0,
        };
        let mut all = vec![plain];
        for epilogue in [Epilogue::BiasAct, Epilogue::MulDerivative] {
            all.extend(acts.clone().map(|act| Special {
                epilogue: epilogue as u32,
                act,
                optim: 0,
            }));
        }
        all.extend(OptimKind::ALL.iter().map(|o| Special {
            epilogue: Epilogue::Optim as u32,
            act: 0,
            optim: o.code(),
        }));
        all
    }

    /// The override constants that carry it.
    pub fn constants(self) -> [(&'static str, f64); 3] {
        [
            ("EPILOGUE", self.epilogue as f64),
            ("ACT", self.act as f64),
            ("OPTIM", self.optim as f64),
        ]
    }
}

impl std::fmt::Display for Special {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let act = Activation::ALL
            .iter()
            .find(|a| a.code() == self.act)
            .map_or("identity".to_string(), |a| a.to_string());
        let optim = OptimKind::ALL
            .iter()
            .find(|o| o.code() == self.optim)
            .map_or("?", |o| o.name());
        match self.epilogue {
            e if e == Epilogue::BiasAct as u32 => write!(f, "bias+{act}"),
            e if e == Epilogue::MulDerivative as u32 => write!(f, "deriv {act}"),
            e if e == Epilogue::Optim as u32 => write!(f, "{optim}"),
            _ => f.write_str("plain"),
        }
    }
}

/// `shaders/matmul.wgsl`'s `Dims`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct MatmulDims {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub rows_dim: u32,
    pub lda: u32,
    pub ldb: u32,
    pub ldc: u32,
    pub epilogue: u32,
    pub act: u32,
    pub ones_row: u32,
    pub bias_offset: u32,
    /// `Epilogue::Optim`: where the layer's optimizer state starts in the slots buffer.
    pub slot_base: u32,
    /// `Epilogue::Optim`: the optimizer.
    pub opt: OptimParams,
}

impl MatmulDims {
    /// A layer's weight-gradient step, `inputs` → `outputs`: `[xᵀ·δ; 1ᵀ·δ]` over the batch
    /// (the ones-row gives the bias gradient), handed to the optimizer `opt` in the epilogue,
    /// with the layer's state at `slot_base` in the state buffer. The batch is `batch` rows, or
    /// the step record's when `None` (a training step's).
    pub fn weight_update(
        inputs: u32,
        outputs: u32,
        batch: Option<u32>,
        slot_base: u32,
        opt: OptimParams,
    ) -> MatmulDims {
        MatmulDims {
            m: inputs,
            n: outputs,
            k: batch.unwrap_or(0),
            rows_dim: batch.map_or(RowsDim::K, |_| RowsDim::Fixed) as u32,
            lda: inputs,
            ldb: outputs,
            ldc: outputs,
            ones_row: 1,
            epilogue: Epilogue::Optim as u32,
            slot_base,
            opt,
            ..Default::default()
        }
    }

    /// Workgroups of `tile` covering C for `m` rows of op(A) (plus the ones-row).
    pub fn grid_for(&self, m: u32, tile: Tile) -> (u32, u32) {
        let rows = m + self.ones_row;
        (self.n.div_ceil(tile.n), rows.div_ceil(tile.m))
    }
}

/// `z += b` row-wise, then `a = f(z)` in the same pass when `act` is given. Rows are walked as
/// slices so that the loops vectorise (the activation is branch-free); the function is compiled
/// for AVX-512 and AVX2 too and picks the widest the CPU has at run time.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512dq+avx512vl", "x86_64+avx2+fma"))]
pub fn bias_activation(mut z: ArrayViewMut2<f32>, b: ArrayView1<f32>, act: Option<Activation>) {
    let b = b.as_slice().expect("bias vectors are contiguous");
    for mut row in z.rows_mut() {
        let row = row.as_slice_mut().expect("activation rows are contiguous");
        match act {
            Some(Activation::Sigmoid) => row
                .iter_mut()
                .zip(b)
                .for_each(|(z, &b)| *z = super::activation::sigmoid(*z + b)),
            Some(act) => row
                .iter_mut()
                .zip(b)
                .for_each(|(z, &b)| *z = act.apply(*z + b)),
            None => row.iter_mut().zip(b).for_each(|(z, &b)| *z += b),
        }
    }
}

/// `d *= f'(a)` element-wise, `f'` from the activation's output (multi-versioned like
/// [`bias_activation`]).
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512dq+avx512vl", "x86_64+avx2+fma"))]
pub fn mul_derivative(mut d: ArrayViewMut2<f32>, a: ArrayView2<f32>, act: Activation) {
    for (mut d, a) in d.rows_mut().into_iter().zip(a.rows()) {
        let d = d.as_slice_mut().expect("delta rows are contiguous");
        let a = a.as_slice().expect("activation rows are contiguous");
        match act {
            Activation::Sigmoid => d.iter_mut().zip(a).for_each(|(d, &a)| *d *= a * (1.0 - a)),
            _ => d
                .iter_mut()
                .zip(a)
                .for_each(|(d, &a)| *d *= act.derivative_from_output(a)),
        }
    }
}

//! `C = op(A) · op(B)` with an epilogue: the CPU twin of `shaders/matmul*.wgsl`.
//!
//! The CPU reference is [`crate::cpu::linalg::gemm`] followed by the epilogue functions here
//! ([`bias_activation`] for the forward pass, [`mul_derivative`] for input gradients); the
//! optimizer epilogue is [`super::optim::update`] and the ones-row (bias gradient) is
//! [`super::reduce::column_sums`].

use bytemuck::{Pod, Zeroable};
use multiversion::multiversion;
use ndarray::{Array1, ArrayView2, ArrayViewMut2};

use super::Shared;
use super::optim::OptimParams;
use crate::net::Activation;

pub(crate) const WGSL: &str = include_str!("../../shaders/matmul.wgsl");
pub(crate) const STAGED_WGSL: &str = include_str!("../../shaders/matmul_staged.wgsl");
pub(crate) const DIRECT_WGSL: &str = include_str!("../../shaders/matmul_direct.wgsl");

/// How a matmul kernel feeds its threads' 4×4 blocks of C.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feed {
    /// K in slices staged in workgroup memory, two barriers per slice
    /// (`shaders/matmul_staged.wgsl`): GPUs, where it saves global loads.
    Staged,
    /// Straight from A and B, no workgroup memory or barriers (`shaders/matmul_direct.wgsl`):
    /// software adapters, where workgroup memory is ordinary memory and barriers are coroutine
    /// switches.
    Direct,
}

/// A matmul tile: rows × columns of C per workgroup, the K slice staged per pass (staged
/// kernels), and how the blocks are fed; each of the (m/4)·(n/4) threads owns a 4×4 block of C.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tile {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub feed: Feed,
}

/// The default tile on GPUs: 256 threads, the most reuse per staged value.
pub const LARGE_TILE: Tile = Tile {
    m: 64,
    n: 64,
    k: 16,
    feed: Feed::Staged,
};
/// For products too small to give the large tile enough workgroups (at batch 64, `x·W₁` is a
/// single 64×64 tile): four times the workgroups, and half the barriers along K. On lavapipe
/// it made a batch-64 step 15% faster and a batch-1024 one 12% slower, hence the choice per
/// product ([`choose_tile`]).
pub const SMALL_TILE: Tile = Tile {
    m: 32,
    n: 32,
    k: 32,
    feed: Feed::Staged,
};
/// The tile on software adapters: 64 threads, 8 side by side along a row of C (a multiple of the
/// SIMD width of SwiftShader, 4, and of lavapipe, 8), 8 rows of them; at batch 64 the first
/// layer's product still has four workgroups for the adapter's threads. On SwiftShader 32×32
/// measured as fast as 16×64 for the 64-wide layers and 1.7× faster for the 10-wide output
/// layer (fewer idle threads); 16×32 the same as 32×32.
pub const DIRECT_TILE: Tile = Tile {
    m: 32,
    n: 32,
    k: 0,
    feed: Feed::Direct,
};
/// Every tile a kernel is built for.
pub const TILES: [Tile; 3] = [LARGE_TILE, SMALL_TILE, DIRECT_TILE];
/// The tiles [`choose_tile`] can pick on a software adapter or a GPU: the ones to build.
pub fn tiles_for(software: bool) -> &'static [Tile] {
    if software {
        &[DIRECT_TILE]
    } else {
        &[LARGE_TILE, SMALL_TILE]
    }
}

/// Below this many large-tile workgroups, a product uses the small tile.
pub const SMALL_TILE_BELOW: u32 = 8;

/// The tile for a product whose C has `rows` × `cols` elements, on a software adapter or a GPU.
pub fn choose_tile(rows: u32, cols: u32, software: bool) -> Tile {
    if software {
        return DIRECT_TILE;
    }
    let large = rows.div_ceil(LARGE_TILE.m) * cols.div_ceil(LARGE_TILE.n);
    if large < SMALL_TILE_BELOW {
        SMALL_TILE
    } else {
        LARGE_TILE
    }
}

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
pub fn bias_activation(mut z: ArrayViewMut2<f32>, b: &Array1<f32>, act: Option<Activation>) {
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

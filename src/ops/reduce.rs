//! Column sums `out[j] = Σ_i m[i, j]`, the bias gradient: the CPU twin of
//! `shaders/reduce.wgsl`. The training step gets them for free from the weight-gradient
//! matmul's ones-row; the standalone kernel checks that reduction order on its own.

use bytemuck::{Pod, Zeroable};
use ndarray::{ArrayView2, ArrayViewMut1, Zip};

pub(crate) const WGSL: &str = include_str!("../../shaders/reduce.wgsl");

/// Threads per workgroup of the column-sum kernel (one thread per column).
pub const COLSUM_WG: u32 = 64;

/// `shaders/reduce.wgsl`'s `Dims`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct ColsumDims {
    pub rows: u32,
    pub cols: u32,
    pub rows_from_step: u32,
    pub _pad: u32,
}

/// `out[j] = Σ_i m[i, j]`, rows in order (as the kernel adds them).
pub fn column_sums(m: ArrayView2<f32>, mut out: ArrayViewMut1<f32>) {
    out.fill(0.0);
    for row in m.rows() {
        Zip::from(&mut out).and(&row).for_each(|o, &v| *o += v);
    }
}

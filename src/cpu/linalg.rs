//! The matrix product the CPU backend spends its time in, behind one function so that the
//! kernel can change without touching the math around it.

use ndarray::{ArrayView2, ArrayViewMut2, linalg::general_mat_mul};

/// `c = alpha · a · b + beta · c` for any strides (transposed views included).
pub fn gemm(
    alpha: f32,
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    beta: f32,
    mut c: ArrayViewMut2<f32>,
    _threads: usize,
) {
    general_mat_mul(alpha, &a, &b, beta, &mut c);
}

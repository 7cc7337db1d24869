//! The matrix product the CPU backend spends its time in, behind one function so that the
//! kernel can change without touching the math around it.
//!
//! It calls the `gemm` crate, which picks AVX-512 / AVX2 / NEON micro-kernels at run time and
//! takes arbitrary strides, so the transposed operands of backprop (`xᵀ·δ`, `δ·wᵀ`) are read in
//! place instead of being copied. ndarray's own `general_mat_mul` (matrixmultiply, AVX2) is
//! the oracle it is tested against below.

use gemm::Parallelism;
use ndarray::{ArrayView2, ArrayViewMut2};

/// Below this many multiply-adds a product runs on one thread: splitting it costs more than
/// the second core gives. (The backend itself parallelises over row blocks and calls this with
/// one thread; the threaded path serves direct callers of large products.)
const PARALLEL_MIN_MACS: usize = 1 << 22;

/// `c = alpha · a · b + beta · c` for any strides (transposed views included).
///
/// # Panics
/// If the shapes do not chain (`a` is m×k, `b` k×n, `c` m×n): a programming error.
pub fn gemm(
    alpha: f32,
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    beta: f32,
    mut c: ArrayViewMut2<f32>,
    threads: usize,
) {
    let (m, k) = a.dim();
    let n = b.ncols();
    assert!(
        b.nrows() == k && c.dim() == (m, n),
        "gemm shapes: a {m}x{k}, b {}x{n}, c {}x{}",
        b.nrows(),
        c.nrows(),
        c.ncols()
    );
    if m == 0 || n == 0 {
        return;
    }
    #[cfg(not(target_arch = "wasm32"))]
    let parallelism = if threads > 1 && m * n * k >= PARALLEL_MIN_MACS {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // No threads on wasm32 (gemm is built without rayon there).
    #[cfg(target_arch = "wasm32")]
    let parallelism = {
        let _ = (threads, PARALLEL_MIN_MACS);
        Parallelism::None
    };
    let (cs, rs) = (c.strides()[1], c.strides()[0]);
    let dst = c.as_mut_ptr();
    // SAFETY: the three views are valid for their shapes and strides (checked above); `c` is
    // borrowed mutably, so it aliases neither `a` nor `b`. The crate computes
    // `dst = alpha·dst + beta·lhs·rhs`, reading `dst` only when `read_dst` is set.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            cs,
            rs,
            beta != 0.0,
            a.as_ptr(),
            a.strides()[1],
            a.strides()[0],
            b.as_ptr(),
            b.strides()[1],
            b.strides()[0],
            beta,
            alpha,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, linalg::general_mat_mul};
    use rand::{Rng, SeedableRng};
    use rand_pcg::Pcg64Mcg;

    fn random(rng: &mut Pcg64Mcg, r: usize, c: usize) -> Array2<f32> {
        Array2::from_shape_fn((r, c), |_| rng.random_range(-1.0..1.0))
    }

    #[test]
    fn matches_ndarray_for_all_layouts() {
        let mut rng = Pcg64Mcg::seed_from_u64(5);
        for &(m, k, n) in &[
            (1, 1, 1),
            (7, 13, 5),
            (64, 784, 64),
            (257, 300, 129),
            (100, 64, 10),
        ] {
            let a = random(&mut rng, m, k);
            let at = random(&mut rng, k, m);
            let b = random(&mut rng, k, n);
            let bt = random(&mut rng, n, k);
            let c0 = random(&mut rng, m, n);
            for (a, b) in [
                (a.view(), b.view()),
                (at.t(), b.view()),
                (a.view(), bt.t()),
                (at.t(), bt.t()),
            ] {
                for (alpha, beta) in [(1.0, 0.0), (0.5, 1.0)] {
                    for threads in [1, 2] {
                        let mut want = c0.clone();
                        general_mat_mul(alpha, &a, &b, beta, &mut want);
                        let mut got = c0.clone();
                        gemm(alpha, a, b, beta, got.view_mut(), threads);
                        // Sums of k products of values in [-1, 1]: f32 reordering error grows
                        // like √k·ε·(typical |term| sum ≈ k/3); 1e-6·k bounds it with margin.
                        let tol = 1e-6 * k as f32;
                        let err = (&want - &got).mapv(f32::abs).fold(0.0f32, |m, v| m.max(*v));
                        assert!(err <= tol, "{m}x{k}x{n} err {err} > {tol}");
                    }
                }
            }
        }
    }
}

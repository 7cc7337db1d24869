//! The CPU backend's max-pool: the reference's rule ([`crate::ops::pool`]: 2×2 windows,
//! stride 2, ties to the first of the window in row-major order, NaN wins) over row slices
//! instead of indexed elements, which made the reference's loops an eighth of a `lenet` step.
//! The tests below hold the two together, ties and NaNs included.

use multiversion::multiversion;
use ndarray::{ArrayView2, ArrayViewMut2};

use crate::ops::pool::PoolShape;

/// Whether `v` takes over from the window's best so far, `b` (the reference's rule).
#[inline]
fn beats(v: f32, b: f32) -> bool {
    (v > b) | (v.is_nan() & !b.is_nan())
}

/// The maxima of `x` (B × C·H·W) into `out` (B × C·H/2·W/2) and where each came from (its
/// column in `x`) into `argmax`.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512dq+avx512vl", "x86_64+avx2+fma"))]
pub fn forward(
    s: &PoolShape,
    x: ArrayView2<f32>,
    mut out: ArrayViewMut2<f32>,
    mut argmax: ArrayViewMut2<u32>,
) {
    let (i, o) = (s.input(), s.output());
    for ((x, mut y), mut a) in x
        .rows()
        .into_iter()
        .zip(out.rows_mut())
        .zip(argmax.rows_mut())
    {
        let x = x.as_slice().expect("contiguous rows");
        let y = y.as_slice_mut().expect("contiguous rows");
        let a = a.as_slice_mut().expect("contiguous rows");
        for c in 0..o.c {
            for oy in 0..o.h {
                let top = (c * i.h + 2 * oy) * i.w;
                let at = (c * o.h + oy) * o.w;
                pool_row(
                    &x[top..top + i.w],
                    &x[top + i.w..top + 2 * i.w],
                    &mut y[at..at + o.w],
                    &mut a[at..at + o.w],
                    top,
                    i.w,
                );
            }
        }
    }
}

/// One row of windows: `upper` and `lower` are the two input rows, `top` the column of
/// `upper[0]` in the sample and `w` the input width. Each window's best is found column first
/// (upper against lower), then between the two columns, all with selects so that the loop
/// vectorizes: which value wins is a coin toss that a branch predictor loses, and the scalar
/// loop was a sixth of a `tfjs` step. The reference's rule (the first of the window in
/// row-major order among equals) decides a tie between the columns: the right column's value
/// comes first only when it is from the upper row and the left column's is from the lower.
#[inline(always)]
fn pool_row(upper: &[f32], lower: &[f32], y: &mut [f32], a: &mut [u32], top: usize, w: usize) {
    let n = y.len().min(a.len());
    let (upper, lower) = (&upper[..2 * n], &lower[..2 * n]);
    for ox in 0..n {
        let (u0, u1, l0, l1) = (
            upper[2 * ox],
            upper[2 * ox + 1],
            lower[2 * ox],
            lower[2 * ox + 1],
        );
        let low0 = beats(l0, u0);
        let c0 = if low0 { l0 } else { u0 };
        let low1 = beats(l1, u1);
        let c1 = if low1 { l1 } else { u1 };
        let same = (c1 == c0) | (c1.is_nan() & c0.is_nan());
        let right = beats(c1, c0) | (same & low0 & !low1);
        y[ox] = if right { c1 } else { c0 };
        let low = if right { low1 } else { low0 };
        // Fits: `PoolShape::new` bounds the input by u32::MAX values.
        a[ox] = (top + 2 * ox + right as usize + low as usize * w) as u32;
    }
}

/// `dx` (B × C·H·W, overwritten) gets each output's gradient `dy` at its arg-max from
/// [`forward`], zeros elsewhere.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512dq+avx512vl", "x86_64+avx2+fma"))]
pub fn backward(dy: ArrayView2<f32>, argmax: ArrayView2<u32>, mut dx: ArrayViewMut2<f32>) {
    for ((dy, a), mut dx) in dy.rows().into_iter().zip(argmax.rows()).zip(dx.rows_mut()) {
        let dx = dx.as_slice_mut().expect("contiguous rows");
        dx.fill(0.0);
        for (g, &a) in dy.iter().zip(a.iter()) {
            dx[a as usize] = *g;
        }
    }
}

#[cfg(test)]
mod tests {
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};
    use rand_pcg::Pcg64Mcg;

    use super::*;
    use crate::ops::pool::{max_pool, max_pool_backward};
    use crate::shape::Chw;

    #[test]
    fn matches_the_reference_with_ties_and_nans() {
        let mut rng = Pcg64Mcg::seed_from_u64(3);
        for (c, h, w, batch) in [(1, 2, 2, 1), (3, 6, 4, 2), (5, 10, 14, 3), (2, 24, 24, 2)] {
            let s = PoolShape::new(Chw::new(c, h, w)).unwrap();
            // Few distinct values, so that ties are common, and some NaNs.
            let x = Array2::from_shape_fn((batch, s.input().len()), |_| {
                match rng.random_range(0..20) {
                    0 => f32::NAN,
                    k => (k % 4) as f32,
                }
            });
            let dy = Array2::from_shape_fn((batch, s.output().len()), |_| {
                rng.random_range(-1.0..1.0f32)
            });
            let (mut y, mut a) = (Array2::zeros(dy.dim()), Array2::zeros(dy.dim()));
            forward(&s, x.view(), y.view_mut(), a.view_mut());
            let (mut ry, mut ra) = (Array2::zeros(dy.dim()), Array2::zeros(dy.dim()));
            max_pool(&s, x.view(), ry.view_mut(), ra.view_mut()).unwrap();
            assert_eq!(a, ra, "{s}: arg-maxes");
            assert!(
                y.iter()
                    .zip(ry.iter())
                    .all(|(p, q)| p == q || (p.is_nan() && q.is_nan())),
                "{s}"
            );
            let mut dx = Array2::from_elem(x.dim(), f32::NAN);
            backward(dy.view(), a.view(), dx.view_mut());
            let mut rdx = Array2::zeros(x.dim());
            max_pool_backward(&s, dy.view(), ra.view(), rdx.view_mut()).unwrap();
            assert_eq!(dx, rdx, "{s}: input gradient");
        }
    }
}

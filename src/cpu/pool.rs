//! The CPU backend's max-pool: the reference's rule ([`crate::ops::pool`]: 2×2 windows,
//! stride 2, ties to the first of the window in row-major order, NaN wins) over row slices
//! instead of indexed elements, which made the reference's loops an eighth of a `lenet` step.
//! The tests below hold the two together, ties and NaNs included.

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::ops::pool::PoolShape;

/// Whether `v` takes over from the window's best so far, `b` (the reference's rule).
#[inline]
fn beats(v: f32, b: f32) -> bool {
    v > b || (v.is_nan() && !b.is_nan())
}

/// The maxima of `x` (B × C·H·W) into `out` (B × C·H/2·W/2) and where each came from (its
/// column in `x`) into `argmax`.
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
                let bottom = top + i.w;
                let at = (c * o.h + oy) * o.w;
                for ox in 0..o.w {
                    let window = [
                        top + 2 * ox,
                        top + 2 * ox + 1,
                        bottom + 2 * ox,
                        bottom + 2 * ox + 1,
                    ];
                    let mut best = window[0];
                    for j in &window[1..] {
                        if beats(x[*j], x[best]) {
                            best = *j;
                        }
                    }
                    y[at + ox] = x[best];
                    // Fits: `PoolShape::new` bounds the input by u32::MAX values.
                    a[at + ox] = best as u32;
                }
            }
        }
    }
}

/// `dx` (B × C·H·W, overwritten) gets each output's gradient `dy` at its arg-max from
/// [`forward`], zeros elsewhere.
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
    use crate::ops::conv::Chw;
    use crate::ops::pool::{max_pool, max_pool_backward};

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

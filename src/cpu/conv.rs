//! The CPU backend's fast convolution: each sample's im2col matrix, written into a reused
//! workspace, times the weights through [`super::linalg::gemm`]. The sums are those of the
//! reference in [`crate::ops::conv`] (its docs derive the three products); only the order of
//! the additions differs, and the tests below hold the two together.
//!
//! Per sample `n`, with `X̂` its im2col matrix (C_in·k·k rows, one column per output pixel):
//! - forward: `Y[n] = W · X̂` (C_out × OH·OW, already channel-major), then bias and activation;
//! - weight and bias gradients: `dW += dY[n] · X̂ᵀ`, `db += dY[n]`'s row sums;
//! - input gradient: `dX̂ = Wᵀ · dY[n]`, whose columns col2im adds back onto the pixels they
//!   were read from.
//!
//! `X̂` is rebuilt in the backward pass rather than kept from the forward one: keeping it
//! would cost k² times each layer's input for the whole batch (160 MB for `lenet` at batch
//! 256), rebuilding it costs a copy per sample beside a product of hundreds of multiply-adds
//! per element.

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2};

use super::linalg::gemm;
use crate::net::Activation;
use crate::ops::conv::ConvShape;

/// Output pixels per sample: the columns of the im2col matrix.
fn pixels(s: &ConvShape) -> usize {
    s.output().h * s.output().w
}

/// Floats of im2col scratch `s` needs: one matrix of C_in·k·k × OH·OW.
pub fn scratch_len(s: &ConvShape) -> usize {
    s.patch_len() * pixels(s)
}

/// Writes sample `x` (C_in·H·W, channel-major) as its im2col matrix into `cols`
/// (`patch_len` × OH·OW, row-major): `cols[(ci, ky, kx), (oy, ox)] = x[ci, oy+ky-p, ox+kx-p]`,
/// 0 where that falls in the padding.
pub fn im2col(s: &ConvShape, x: &[f32], cols: &mut [f32]) {
    let (i, o, k, p) = (s.input(), s.output(), s.kernel(), s.pad());
    let mut rows = cols[..scratch_len(s)].chunks_exact_mut(o.h * o.w);
    for ci in 0..i.c {
        let plane = &x[ci * i.h * i.w..(ci + 1) * i.h * i.w];
        for ky in 0..k {
            for kx in 0..k {
                let row = rows.next().expect("patch_len rows");
                // Output columns ox whose input column ox + kx - p lies inside the image.
                let lo = p.saturating_sub(kx).min(o.w);
                let hi = (i.w + p).saturating_sub(kx).clamp(lo, o.w);
                for (oy, out) in row.chunks_exact_mut(o.w).enumerate() {
                    let iy = (oy + ky).wrapping_sub(p);
                    if iy >= i.h {
                        out.fill(0.0);
                        continue;
                    }
                    out[..lo].fill(0.0);
                    let src = iy * i.w + lo + kx - p;
                    out[lo..hi].copy_from_slice(&plane[src..src + (hi - lo)]);
                    out[hi..].fill(0.0);
                }
            }
        }
    }
}

/// Adds the im2col-shaped gradient `cols` back onto the pixels each entry was read from
/// (`dx`, C_in·H·W, accumulated into: zero it first).
pub fn col2im_add(s: &ConvShape, cols: &[f32], dx: &mut [f32]) {
    let (i, o, k, p) = (s.input(), s.output(), s.kernel(), s.pad());
    let mut rows = cols[..scratch_len(s)].chunks_exact(o.h * o.w);
    for ci in 0..i.c {
        let plane = &mut dx[ci * i.h * i.w..(ci + 1) * i.h * i.w];
        for ky in 0..k {
            for kx in 0..k {
                let row = rows.next().expect("patch_len rows");
                let lo = p.saturating_sub(kx).min(o.w);
                let hi = (i.w + p).saturating_sub(kx).clamp(lo, o.w);
                for (oy, g) in row.chunks_exact(o.w).enumerate() {
                    let iy = (oy + ky).wrapping_sub(p);
                    if iy >= i.h {
                        continue;
                    }
                    let dst = iy * i.w + lo + kx - p;
                    plane[dst..dst + (hi - lo)]
                        .iter_mut()
                        .zip(&g[lo..hi])
                        .for_each(|(d, g)| *d += g);
                }
            }
        }
    }
}

/// The shape of one sample's row as a C × (H·W) matrix.
fn as_matrix(row: &[f32], channels: usize) -> ArrayView2<'_, f32> {
    ArrayView2::from_shape((channels, row.len() / channels), row).expect("C·H·W values")
}

fn as_matrix_mut(row: &mut [f32], channels: usize) -> ArrayViewMut2<'_, f32> {
    let cols = row.len() / channels;
    ArrayViewMut2::from_shape((channels, cols), row).expect("C·H·W values")
}

/// Forward pass of `x` (B × C_in·H·W) into `out` (B × C_out·OH·OW): convolution, bias, then
/// `act`. `cols` is scratch of at least [`scratch_len`] floats.
pub fn forward(
    s: &ConvShape,
    act: Activation,
    x: ArrayView2<f32>,
    w: ArrayView2<f32>,
    b: ArrayView1<f32>,
    mut out: ArrayViewMut2<f32>,
    cols: &mut [f32],
) {
    let (r, p) = (s.patch_len(), pixels(s));
    let cols = &mut cols[..r * p];
    for (x, mut y) in x.rows().into_iter().zip(out.rows_mut()) {
        im2col(s, x.as_slice().expect("contiguous rows"), cols);
        let y = y.as_slice_mut().expect("contiguous rows");
        let mut ym = as_matrix_mut(y, s.output().c);
        gemm(1.0, w, as_matrix(cols, r), 0.0, ym.view_mut(), 1);
        for (plane, &bias) in y.chunks_exact_mut(p).zip(b.iter()) {
            match act {
                Activation::Relu => plane.iter_mut().for_each(|v| *v = (*v + bias).max(0.0)),
                _ => plane.iter_mut().for_each(|v| *v = act.apply(*v + bias)),
            }
        }
    }
}

/// Backward pass from `dy` (B × C_out·OH·OW, the gradient at the convolution's output before
/// its activation): the weight and bias gradients, overwritten, and, when `dx` is given, the
/// gradient at the input `x` (overwritten). `cols` and `dcols` are scratch of at least
/// [`scratch_len`] floats each.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    s: &ConvShape,
    x: ArrayView2<f32>,
    dy: ArrayView2<f32>,
    w: ArrayView2<f32>,
    mut dw: ArrayViewMut2<f32>,
    mut db: ArrayViewMut1<f32>,
    mut dx: Option<ArrayViewMut2<f32>>,
    cols: &mut [f32],
    dcols: &mut [f32],
) {
    let (r, p, c_out) = (s.patch_len(), pixels(s), s.output().c);
    let (cols, dcols) = (&mut cols[..r * p], &mut dcols[..r * p]);
    db.fill(0.0);
    for (n, (x, dy)) in x.rows().into_iter().zip(dy.rows()).enumerate() {
        let dy = dy.as_slice().expect("contiguous rows");
        let dym = as_matrix(dy, c_out);
        im2col(s, x.as_slice().expect("contiguous rows"), cols);
        let beta = if n == 0 { 0.0 } else { 1.0 };
        gemm(1.0, dym, as_matrix(cols, r).t(), beta, dw.view_mut(), 1);
        for (g, plane) in db.iter_mut().zip(dy.chunks_exact(p)) {
            *g += plane.iter().sum::<f32>();
        }
        if let Some(dx) = dx.as_mut() {
            gemm(1.0, w.t(), dym, 0.0, as_matrix_mut(dcols, r), 1);
            let mut row = dx.row_mut(n);
            let row = row.as_slice_mut().expect("contiguous rows");
            row.fill(0.0);
            col2im_add(s, dcols, row);
        }
    }
    if x.nrows() == 0 {
        dw.fill(0.0);
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{Array1, Array2};
    use rand::{Rng, SeedableRng};
    use rand_pcg::Pcg64Mcg;

    use super::*;
    use crate::ops::activation::sigmoid;
    use crate::ops::conv::{Chw, Padding, conv2d, conv2d_input_grad, conv2d_param_grads};

    /// Both sides are f32 sums of the same terms in different orders: each output is a sum of
    /// at most C·k·k = 125 (forward, input gradient) or B·OH·OW ≤ 3·11·9 (weights) products of
    /// values in [-1, 1), so the difference stays within a few ulps of the sum's magnitude
    /// (≤ 1e-6 relative to √terms). 1e-5 absolute + 1e-5 relative is above that and far below
    /// any indexing mistake (O(1)).
    fn close(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}");
        for (k, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-5 + 1e-5 * x.abs().max(y.abs()),
                "{what}[{k}]: fast {x}, reference {y}"
            );
        }
    }

    #[test]
    fn fast_path_matches_the_reference_on_awkward_shapes() {
        let mut rng = Pcg64Mcg::seed_from_u64(7);
        use Padding::{Same, Valid};
        let cases = [
            (1, 7, 5, 2, 3, Valid, 3),
            (3, 7, 5, 4, 3, Same, 2),
            (5, 9, 11, 3, 5, Same, 3),
            (5, 7, 5, 3, 5, Valid, 1),
            (3, 5, 7, 2, 5, Same, 2),
            (2, 3, 3, 3, 3, Valid, 2),
            (3, 4, 6, 2, 1, Valid, 2),
            (1, 28, 28, 8, 5, Valid, 2),
            (2, 6, 6, 3, 5, Same, 0),
        ];
        for (c_in, h, w, c_out, k, padding, batch) in cases {
            let s = ConvShape::new(Chw::new(c_in, h, w), c_out, k, padding).unwrap();
            let what = format!("{s}, B={batch}");
            let mut rand = |r: usize, c: usize| {
                Array2::from_shape_fn((r, c), |_| rng.random_range(-1.0..1.0f32))
            };
            let x = rand(batch, s.input().len());
            let wt = rand(s.weight_dims().0, s.weight_dims().1);
            let b = rand(1, c_out).into_shape_with_order(c_out).unwrap();
            let dy = rand(batch, s.output().len());
            let mut cols = vec![f32::NAN; scratch_len(&s)];
            let mut dcols = vec![f32::NAN; scratch_len(&s)];

            let mut fast = Array2::from_elem((batch, s.output().len()), f32::NAN);
            let act = Activation::Sigmoid;
            forward(
                &s,
                act,
                x.view(),
                wt.view(),
                b.view(),
                fast.view_mut(),
                &mut cols,
            );
            let mut want = Array2::zeros(fast.dim());
            conv2d(&s, x.view(), wt.view(), b.view(), want.view_mut()).unwrap();
            want.mapv_inplace(sigmoid);
            close(
                fast.as_slice().unwrap(),
                want.as_slice().unwrap(),
                &format!("{what} y"),
            );

            let (mut dw, mut db) = (
                Array2::from_elem(wt.dim(), f32::NAN),
                Array1::from_elem(c_out, f32::NAN),
            );
            let mut dx = Array2::from_elem(x.dim(), f32::NAN);
            backward(
                &s,
                x.view(),
                dy.view(),
                wt.view(),
                dw.view_mut(),
                db.view_mut(),
                Some(dx.view_mut()),
                &mut cols,
                &mut dcols,
            );
            let (mut rdw, mut rdb) = (Array2::zeros(wt.dim()), Array1::zeros(c_out));
            conv2d_param_grads(&s, x.view(), dy.view(), rdw.view_mut(), rdb.view_mut()).unwrap();
            let mut rdx = Array2::zeros(x.dim());
            conv2d_input_grad(&s, dy.view(), wt.view(), rdx.view_mut()).unwrap();
            close(
                dw.as_slice().unwrap(),
                rdw.as_slice().unwrap(),
                &format!("{what} dw"),
            );
            close(
                db.as_slice().unwrap(),
                rdb.as_slice().unwrap(),
                &format!("{what} db"),
            );
            close(
                dx.as_slice().unwrap(),
                rdx.as_slice().unwrap(),
                &format!("{what} dx"),
            );
        }
    }
}

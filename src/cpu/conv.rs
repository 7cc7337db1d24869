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
//! The samples go through in groups (up to [`GROUP_FLOATS`] of im2col matrix), their matrices
//! side by side, so that each product is one wide GEMM rather than one small one per sample.
//! `X̂` is rebuilt in the backward pass rather than kept from the forward one: keeping it
//! would cost k² times each layer's input for the whole batch (160 MB for `lenet` at batch
//! 256), rebuilding it costs a copy per sample beside a product of hundreds of multiply-adds
//! per element.

use multiversion::multiversion;
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis};

use super::linalg::gemm;
use crate::ops::activation::Activation;
use crate::ops::activation::relu;
use crate::ops::conv::ConvShape;

/// Output pixels per sample: the columns of one sample's im2col matrix.
fn pixels(s: &ConvShape) -> usize {
    s.output().h * s.output().w
}

/// The most floats one group's im2col matrix may take (512 KiB): samples are convolved in
/// groups so that each product is wider than one sample's (one sample of `tfjs`'s first layer
/// is only an 8×25 by 25×576 product), without the k²-fold im2col of a whole batch in memory.
/// The group must stay in the core's cache with the product it feeds: measured on `tfjs` at
/// batch 64 on a 2-core EPYC (2 MiB L2 a core), 4 MiB groups ran at 12k samples/s, 256 KiB
/// at 28k, 512 KiB at 32k, and 64 KiB (one sample at a time) at 31k.
const GROUP_FLOATS: usize = 1 << 17;

/// Samples per group for `s`: as many as fit [`GROUP_FLOATS`], at least one.
pub fn group(s: &ConvShape) -> usize {
    (GROUP_FLOATS / (s.patch_len() * pixels(s)).max(1)).max(1)
}

/// Floats of each scratch buffer `s` needs for a group of up to `rows` samples.
pub fn scratch_len(s: &ConvShape, rows: usize) -> usize {
    let g = group(s).min(rows.max(1));
    s.patch_len().max(s.output().c) * pixels(s) * g
}

/// Writes sample `x` (C_in·H·W, channel-major) as its im2col columns into `cols`, a row-major
/// matrix of `patch_len` rows of stride `ld`, starting at column 0 of `cols`:
/// `cols[(ci, ky, kx), (oy, ox)] = x[ci, oy+ky-p, ox+kx-p]`, 0 where that falls in the padding.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512dq+avx512vl", "x86_64+avx2+fma"))]
pub fn im2col(s: &ConvShape, x: &[f32], cols: &mut [f32], ld: usize) {
    let (i, o, k, p) = (s.input(), s.output(), s.kernel(), s.pad());
    let mut r = 0;
    for ci in 0..i.c {
        let plane = &x[ci * i.h * i.w..(ci + 1) * i.h * i.w];
        for ky in 0..k {
            for kx in 0..k {
                let row = &mut cols[r * ld..r * ld + o.h * o.w];
                r += 1;
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
                    copy_short(&mut out[lo..hi], &plane[src..src + (hi - lo)]);
                    out[hi..].fill(0.0);
                }
            }
        }
    }
}

/// `dst.copy_from_slice(src)` without a call: im2col's runs are an output row long (4 to 28
/// floats for MNIST's networks), where a call to memmove costs more than the copy. Blocks of
/// 8, then 4, then single values, straight-line (with AVX enabled, a block is one move).
#[inline(always)]
fn copy_short(dst: &mut [f32], src: &[f32]) {
    let (mut d, mut s) = (dst.chunks_exact_mut(8), src.chunks_exact(8));
    for (d, s) in (&mut d).zip(&mut s) {
        let s: &[f32; 8] = s.try_into().expect("8 values");
        d.copy_from_slice(s);
    }
    let (d, s) = (d.into_remainder(), s.remainder());
    let n = d.len().min(s.len());
    let four = n & 4;
    if four != 0 {
        let s4: &[f32; 4] = s[..4].try_into().expect("4 values");
        d[..4].copy_from_slice(s4);
    }
    if n & 2 != 0 {
        d[four] = s[four];
        d[four + 1] = s[four + 1];
    }
    if n & 1 != 0 {
        d[n - 1] = s[n - 1];
    }
}

/// Adds im2col-shaped gradient columns (laid out as [`im2col`] writes them) back onto the
/// pixels each entry was read from (`dx`, C_in·H·W, accumulated into: zero it first).
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512dq+avx512vl", "x86_64+avx2+fma"))]
pub fn col2im_add(s: &ConvShape, cols: &[f32], ld: usize, dx: &mut [f32]) {
    let (i, o, k, p) = (s.input(), s.output(), s.kernel(), s.pad());
    let mut r = 0;
    for ci in 0..i.c {
        let plane = &mut dx[ci * i.h * i.w..(ci + 1) * i.h * i.w];
        for ky in 0..k {
            for kx in 0..k {
                let row = &cols[r * ld..r * ld + o.h * o.w];
                r += 1;
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

/// `rows × cols` of `buf` as a matrix (row-major).
fn matrix(buf: &[f32], rows: usize, cols: usize) -> ArrayView2<'_, f32> {
    ArrayView2::from_shape((rows, cols), &buf[..rows * cols]).expect("scratch sized for it")
}

fn matrix_mut(buf: &mut [f32], rows: usize, cols: usize) -> ArrayViewMut2<'_, f32> {
    ArrayViewMut2::from_shape((rows, cols), &mut buf[..rows * cols]).expect("scratch sized for it")
}

/// Scratch for one convolution's passes over a group of samples: the group's im2col matrix,
/// and the group's outputs (or output gradients) as C_out × (samples·OH·OW).
pub struct Scratch<'a> {
    pub cols: &'a mut [f32],
    pub wide: &'a mut [f32],
}

/// Forward pass of `x` (B × C_in·H·W) into `out` (B × C_out·OH·OW): convolution, bias, then
/// `act` (if any), a group of samples per product. The scratch holds [`scratch_len`] floats each.
pub fn forward(
    s: &ConvShape,
    act: Option<Activation>,
    x: ArrayView2<f32>,
    w: ArrayView2<f32>,
    b: ArrayView1<f32>,
    mut out: ArrayViewMut2<f32>,
    scratch: Scratch,
) {
    let (r, p, c_out) = (s.patch_len(), pixels(s), s.output().c);
    let g = group(s);
    for (xs, mut ys) in x
        .axis_chunks_iter(Axis(0), g)
        .zip(out.axis_chunks_iter_mut(Axis(0), g))
    {
        let ld = xs.nrows() * p;
        for (i, x) in xs.rows().into_iter().enumerate() {
            im2col(
                s,
                x.as_slice().expect("contiguous rows"),
                &mut scratch.cols[i * p..],
                ld,
            );
        }
        let wide = matrix_mut(scratch.wide, c_out, ld);
        gemm(1.0, w, matrix(scratch.cols, r, ld), 0.0, wide, 1);
        for (i, mut y) in ys.rows_mut().into_iter().enumerate() {
            let y = y.as_slice_mut().expect("contiguous rows");
            for (co, (plane, &bias)) in y.chunks_exact_mut(p).zip(b.iter()).enumerate() {
                let from = &scratch.wide[co * ld + i * p..co * ld + (i + 1) * p];
                match act {
                    Some(Activation::Relu) => plane
                        .iter_mut()
                        .zip(from)
                        .for_each(|(v, z)| *v = relu(z + bias)),
                    Some(act) => plane
                        .iter_mut()
                        .zip(from)
                        .for_each(|(v, z)| *v = act.apply(z + bias)),
                    None => plane.iter_mut().zip(from).for_each(|(v, z)| *v = z + bias),
                }
            }
        }
    }
}

/// Backward pass from `dy` (B × C_out·OH·OW, the gradient at the convolution's output before
/// its activation): the weight and bias gradients, overwritten, and, when `dx` is given, the
/// gradient at the input `x` (overwritten), a group of samples per product.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    s: &ConvShape,
    x: ArrayView2<f32>,
    dy: ArrayView2<f32>,
    w: ArrayView2<f32>,
    mut dw: ArrayViewMut2<f32>,
    mut db: ArrayViewMut1<f32>,
    mut dx: Option<ArrayViewMut2<f32>>,
    scratch: Scratch,
) {
    let (r, p, c_out) = (s.patch_len(), pixels(s), s.output().c);
    let g = group(s);
    db.fill(0.0);
    dw.fill(0.0);
    for (k, (xs, dys)) in x
        .axis_chunks_iter(Axis(0), g)
        .zip(dy.axis_chunks_iter(Axis(0), g))
        .enumerate()
    {
        let ld = xs.nrows() * p;
        // The group's output gradients side by side: C_out × (samples·OH·OW).
        for (i, dy) in dys.rows().into_iter().enumerate() {
            let dy = dy.as_slice().expect("contiguous rows");
            for (co, plane) in dy.chunks_exact(p).enumerate() {
                scratch.wide[co * ld + i * p..co * ld + (i + 1) * p].copy_from_slice(plane);
                db[co] += plane.iter().sum::<f32>();
            }
        }
        for (i, x) in xs.rows().into_iter().enumerate() {
            im2col(
                s,
                x.as_slice().expect("contiguous rows"),
                &mut scratch.cols[i * p..],
                ld,
            );
        }
        let wide = matrix(scratch.wide, c_out, ld);
        gemm(
            1.0,
            wide,
            matrix(scratch.cols, r, ld).t(),
            1.0,
            dw.view_mut(),
            1,
        );
        if let Some(dx) = dx.as_mut() {
            // The im2col matrix is done with: its space takes the gradient's columns.
            gemm(1.0, w.t(), wide, 0.0, matrix_mut(scratch.cols, r, ld), 1);
            let first = k * g;
            for i in 0..xs.nrows() {
                let mut row = dx.row_mut(first + i);
                let row = row.as_slice_mut().expect("contiguous rows");
                row.fill(0.0);
                col2im_add(s, &scratch.cols[i * p..], ld, row);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{Array1, Array2};
    use rand::{Rng, SeedableRng};
    use rand_pcg::Pcg64Mcg;

    use super::*;
    use crate::ops::activation::sigmoid;
    use crate::ops::conv::{Padding, conv2d, conv2d_input_grad, conv2d_param_grads};
    use crate::shape::Chw;

    /// Both sides are f32 sums of the same `terms` products of values in [-1, 1), in different
    /// orders. Each side rounds once per addition, at a partial sum of typical size √terms/3,
    /// so each drifts by about ε·terms/3 (a random walk of `terms` roundings of ε·√terms/3);
    /// ε·terms covers both with margin. Added to 1e-5 absolute + 1e-5 relative, that is 3e-5
    /// for a 125-term forward sum and 8e-4 for the 6,336-term weight gradient of the grouped
    /// case, far below any indexing mistake (O(1)).
    fn close(a: &[f32], b: &[f32], terms: usize, what: &str) {
        let drift = f32::EPSILON * terms as f32;
        assert_eq!(a.len(), b.len(), "{what}");
        for (k, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-5 + drift + 1e-5 * x.abs().max(y.abs()),
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
            // Groups of 9 samples (GROUP_FLOATS over 25×576): one full group and a partial one.
            (1, 28, 28, 8, 5, Valid, 11),
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
            let mut cols = vec![f32::NAN; scratch_len(&s, batch)];
            let mut wide = vec![f32::NAN; scratch_len(&s, batch)];

            let mut fast = Array2::from_elem((batch, s.output().len()), f32::NAN);
            let act = Activation::Sigmoid;
            forward(
                &s,
                Some(act),
                x.view(),
                wt.view(),
                b.view(),
                fast.view_mut(),
                Scratch {
                    cols: &mut cols,
                    wide: &mut wide,
                },
            );
            let mut want = Array2::zeros(fast.dim());
            conv2d(&s, x.view(), wt.view(), b.view(), want.view_mut()).unwrap();
            want.mapv_inplace(sigmoid);
            close(
                fast.as_slice().unwrap(),
                want.as_slice().unwrap(),
                s.patch_len(),
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
                Scratch {
                    cols: &mut cols,
                    wide: &mut wide,
                },
            );
            let (mut rdw, mut rdb) = (Array2::zeros(wt.dim()), Array1::zeros(c_out));
            conv2d_param_grads(&s, x.view(), dy.view(), rdw.view_mut(), rdb.view_mut()).unwrap();
            let mut rdx = Array2::zeros(x.dim());
            conv2d_input_grad(&s, dy.view(), wt.view(), rdx.view_mut()).unwrap();
            close(
                dw.as_slice().unwrap(),
                rdw.as_slice().unwrap(),
                batch * pixels(&s),
                &format!("{what} dw"),
            );
            close(
                db.as_slice().unwrap(),
                rdb.as_slice().unwrap(),
                batch * pixels(&s),
                &format!("{what} db"),
            );
            close(
                dx.as_slice().unwrap(),
                rdx.as_slice().unwrap(),
                c_out * k * k,
                &format!("{what} dx"),
            );
        }
    }
}

//! Max-pooling over 2×2 windows with stride 2: the CPU reference. The GPU twin is
//! `shaders/pool.wgsl`, planned in `gpu::spatial`.
//!
//! Batches are laid out as in [`super::conv`]: B rows of C·H·W, channel-major. Each channel is
//! pooled on its own:
//!
//! ```text
//! forward    y[n, c, oy, ox] = max over dy, dx ∈ {0, 1} of x[n, c, 2·oy + dy, 2·ox + dx]
//!            a[n, c, oy, ox] = where that maximum is (its index in the sample's row)
//! backward  dx[n, i]         = dy[n, c, oy, ox] if i = a[n, c, oy, ox], else 0
//! ```
//!
//! The windows do not overlap, so each input receives the gradient of at most one output.
//!
//! **Ties** go to the first of the window in row-major order (top-left, top-right, bottom-left,
//! bottom-right): a later value takes over only when strictly greater. That is the choice of
//! PyTorch's CPU kernel and the simplest for a GPU thread to reproduce. **NaN** wins over any
//! number (the first NaN of the window), so a NaN propagates to the loss, where the training
//! loop's divergence check sees it, instead of being hidden by a comparison that is false.
//!
//! An odd height or width is an error, not a crop: the last row or column would otherwise be
//! dropped without a word.

use ndarray::{ArrayView2, ArrayViewMut2};

use super::conv::MAX_VALUES;
use crate::error::{Error, Result};
use crate::shape::Chw;

/// A validated 2×2, stride-2 max-pool over one sample's `input`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolShape {
    input: Chw,
}

impl PoolShape {
    /// The pool over `input`, or an error that names it and the sizes: a zero size, an odd
    /// height or width, or more than [`MAX_VALUES`] values per sample.
    pub fn new(input: Chw) -> Result<Self> {
        let what = format!("max-pool 2×2 on {input}");
        if input.is_empty() {
            return Err(Error::shape(
                what,
                "an input of at least 1×2×2 (C×H×W)",
                input,
            ));
        }
        if !input.h.is_multiple_of(2) || !input.w.is_multiple_of(2) {
            return Err(Error::shape(
                what,
                "an even height and width (a pool does not crop)",
                format!("{}×{}", input.h, input.w),
            ));
        }
        // Compared as u64: on wasm32 a usize cannot exceed the bound at all.
        if input.len() as u64 > MAX_VALUES {
            return Err(Error::TooLarge {
                what: format!("{what}: its input values per sample"),
                needed: input.len().to_string(),
                limit: MAX_VALUES.to_string(),
            });
        }
        Ok(PoolShape { input })
    }

    pub fn input(&self) -> Chw {
        self.input
    }

    /// C × H/2 × W/2.
    pub fn output(&self) -> Chw {
        Chw::new(self.input.c, self.input.h / 2, self.input.w / 2)
    }

    /// The four row indices of output `(c, oy, ox)`'s window, in the tie-breaking order.
    fn window(&self, c: usize, oy: usize, ox: usize) -> [usize; 4] {
        let (y, x) = (2 * oy, 2 * ox);
        let i = &self.input;
        [
            i.index(c, y, x),
            i.index(c, y, x + 1),
            i.index(c, y + 1, x),
            i.index(c, y + 1, x + 1),
        ]
    }

    fn check(&self, array: &str, a: (usize, usize), rows: usize, cols: usize) -> Result<()> {
        if a != (rows, cols) {
            return Err(Error::shape(
                format!("{self}: {array}"),
                format!("{rows}×{cols}"),
                format!("{}×{}", a.0, a.1),
            ));
        }
        Ok(())
    }
}

impl std::fmt::Display for PoolShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "max-pool 2×2 {} → {}", self.input, self.output())
    }
}

/// Forward pass: the maxima of `x` (B × C·H·W) into `out` (B × C·H/2·W/2), and where each came
/// from (its column in `x`) into `argmax`, the record the backward pass needs.
pub fn max_pool(
    s: &PoolShape,
    x: ArrayView2<f32>,
    mut out: ArrayViewMut2<f32>,
    mut argmax: ArrayViewMut2<u32>,
) -> Result<()> {
    let (i, o) = (s.input, s.output());
    let batch = x.nrows();
    s.check("input", x.dim(), batch, i.len())?;
    s.check("output", out.dim(), batch, o.len())?;
    s.check("arg-max", argmax.dim(), batch, o.len())?;
    for n in 0..batch {
        for c in 0..o.c {
            for oy in 0..o.h {
                for ox in 0..o.w {
                    let window = s.window(c, oy, ox);
                    let mut best = window[0];
                    for &j in &window[1..] {
                        let (v, b) = (x[[n, j]], x[[n, best]]);
                        if v > b || (v.is_nan() && !b.is_nan()) {
                            best = j;
                        }
                    }
                    out[[n, o.index(c, oy, ox)]] = x[[n, best]];
                    // Fits: `PoolShape::new` bounds the input by MAX_VALUES = u32::MAX.
                    argmax[[n, o.index(c, oy, ox)]] = best as u32;
                }
            }
        }
    }
    Ok(())
}

/// Backward pass: `dx` (B × C·H·W, overwritten) gets each output's gradient `dy` at the arg-max
/// [`max_pool`] recorded, zeros elsewhere. An arg-max outside its output's window is an error
/// (nothing is written), so a stale or foreign record cannot send a gradient astray.
pub fn max_pool_backward(
    s: &PoolShape,
    dy: ArrayView2<f32>,
    argmax: ArrayView2<u32>,
    mut dx: ArrayViewMut2<f32>,
) -> Result<()> {
    let (i, o) = (s.input, s.output());
    let batch = dy.nrows();
    s.check("output gradient", dy.dim(), batch, o.len())?;
    s.check("arg-max", argmax.dim(), batch, o.len())?;
    s.check("input gradient", dx.dim(), batch, i.len())?;
    for n in 0..batch {
        for c in 0..o.c {
            for oy in 0..o.h {
                for ox in 0..o.w {
                    let a = argmax[[n, o.index(c, oy, ox)]] as usize;
                    if !s.window(c, oy, ox).contains(&a) {
                        return Err(Error::shape(
                            format!("{s}: arg-max of sample {n}, output ({c}, {oy}, {ox})"),
                            format!("one of {:?}", s.window(c, oy, ox)),
                            a,
                        ));
                    }
                }
            }
        }
    }
    dx.fill(0.0);
    for n in 0..batch {
        for j in 0..o.len() {
            dx[[n, argmax[[n, j]] as usize]] = dy[[n, j]];
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, array};

    fn pool(s: &PoolShape, x: &Array2<f32>) -> (Array2<f32>, Array2<u32>) {
        let mut out = Array2::zeros((x.nrows(), s.output().len()));
        let mut arg = Array2::zeros(out.dim());
        max_pool(s, x.view(), out.view_mut(), arg.view_mut()).unwrap();
        (out, arg)
    }

    /// Two channels of 2×4: two windows each.
    #[test]
    fn forward_and_backward_by_hand() {
        let s = PoolShape::new(Chw::new(2, 2, 4)).unwrap();
        assert_eq!(s.output(), Chw::new(2, 1, 2));
        #[rustfmt::skip]
        let x = array![[
            1., 5., -1., -2.,
            3., 2., -4., -3.,
            // channel 1
            0., 0., 7., 9.,
            0., 1., 8., 6.,
        ]];
        let (y, arg) = pool(&s, &x);
        assert_eq!(y, array![[5., -1., 1., 9.]]);
        assert_eq!(arg, array![[1, 2, 13, 11]]);
        let mut dx = Array2::from_elem((1, 16), 99.0f32);
        max_pool_backward(
            &s,
            array![[10., 20., 30., 40.]].view(),
            arg.view(),
            dx.view_mut(),
        )
        .unwrap();
        #[rustfmt::skip]
        let want = array![[
            0., 10., 20., 0.,
            0., 0., 0., 0.,
            0., 0., 0., 40.,
            0., 30., 0., 0.,
        ]];
        assert_eq!(dx, want);
    }

    #[test]
    fn ties_go_to_the_first_in_row_major_order_and_nan_wins() {
        let s = PoolShape::new(Chw::new(1, 2, 2)).unwrap();
        let first =
            |row: [f32; 4]| pool(&s, &Array2::from_shape_vec((1, 4), row.to_vec()).unwrap());
        assert_eq!(first([2., 2., 2., 2.]).1[[0, 0]], 0);
        assert_eq!(first([1., 3., 2., 3.]).1[[0, 0]], 1);
        assert_eq!(first([-1., -1., 0., 0.]).1[[0, 0]], 2);
        assert_eq!(first([0., 0., -0., 0.]).1[[0, 0]], 0);
        let (y, a) = first([1., f32::NAN, 5., f32::NAN]);
        assert!(y[[0, 0]].is_nan());
        assert_eq!(a[[0, 0]], 1);
        assert_eq!(first([f32::NAN, 9., 1., 2.]).1[[0, 0]], 0);
        assert_eq!(first([f32::NEG_INFINITY; 4]).1[[0, 0]], 0);
    }

    #[test]
    fn bad_shapes_are_errors_not_panics() {
        let e = PoolShape::new(Chw::new(8, 5, 4)).unwrap_err().to_string();
        assert!(
            e.contains("8×5×4") && e.contains("even") && e.contains("5×4"),
            "{e}"
        );
        assert!(PoolShape::new(Chw::new(8, 4, 3)).is_err());
        assert!(PoolShape::new(Chw::new(0, 4, 4)).is_err());
        assert!(PoolShape::new(Chw::new(1, 0, 4)).is_err());
        assert!(PoolShape::new(Chw::new(1 << 20, 1 << 10, 1 << 10)).is_err());

        let s = PoolShape::new(Chw::new(2, 2, 2)).unwrap();
        let x = Array2::<f32>::zeros((3, 8));
        let (mut out, mut arg) = (Array2::zeros((3, 2)), Array2::<u32>::zeros((3, 2)));
        assert!(max_pool(&s, x.view(), out.view_mut(), arg.view_mut()).is_ok());
        let x9 = Array2::<f32>::zeros((3, 9));
        let e = max_pool(&s, x9.view(), out.view_mut(), arg.view_mut()).unwrap_err();
        assert!(e.to_string().contains("3×9"), "{e}");
        let mut arg2 = Array2::<u32>::zeros((2, 2));
        assert!(max_pool(&s, x.view(), out.view_mut(), arg2.view_mut()).is_err());

        let mut dx = Array2::<f32>::zeros((3, 8));
        assert!(max_pool_backward(&s, out.view(), arg.view(), dx.view_mut()).is_ok());
        assert!(max_pool_backward(&s, out.view(), arg2.view(), dx.view_mut()).is_err());
        // An arg-max from the wrong window (channel 1's for channel 0), or past the row.
        for bad in [4, 1000] {
            arg[[1, 0]] = bad;
            dx.fill(7.0);
            let e = max_pool_backward(&s, out.view(), arg.view(), dx.view_mut()).unwrap_err();
            assert!(e.to_string().contains("sample 1, output (0, 0, 0)"), "{e}");
            assert!(dx.iter().all(|&v| v == 7.0), "nothing written on an error");
        }
    }
}

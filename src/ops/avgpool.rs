//! Average pooling over non-overlapping windows: the CPU reference. A `wh × ww` window with
//! stride equal to the window: `avgpool` is 2×2, global average pooling (`gap`) takes the whole
//! plane as its window. The GPU twin is `shaders/avgpool.wgsl`, planned in `gpu::spatial`.
//!
//! Batches are laid out as in [`super::conv`]: B rows of C·H·W, channel-major. With
//! `n = wh·ww`:
//!
//! ```text
//! forward    y[b, c, oy, ox] = (1/n) · Σ over the window of x[b, c, wh·oy + i, ww·ox + j]
//! backward  dx[b, c, y, x]   = dy[b, c, y / wh, x / ww] / n
//! ```
//!
//! The windows tile the input exactly: a height or width that the window does not divide is an
//! error, not a crop.

use ndarray::{ArrayView2, ArrayViewMut2};

use super::conv::MAX_VALUES;
use crate::error::{Error, Result};
use crate::shape::Chw;

/// A validated average pool over one sample's `input`, in windows of `window` (rows, columns)
/// with a stride of the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AvgPoolShape {
    input: Chw,
    window: (usize, usize),
}

impl AvgPoolShape {
    /// The pool over `input` in `wh × ww` windows, or an error naming it and the sizes: a zero
    /// size, a window that does not divide the input, or more than [`MAX_VALUES`] values per
    /// sample.
    pub fn new(input: Chw, wh: usize, ww: usize) -> Result<Self> {
        let s = AvgPoolShape {
            input,
            window: (wh, ww),
        };
        let what = s.to_string();
        if input.is_empty() || wh == 0 || ww == 0 {
            return Err(Error::shape(
                what,
                "an input of at least 1×1×1 and a window of at least 1×1",
                format!("{input}, {wh}×{ww}"),
            ));
        }
        if !input.h.is_multiple_of(wh) || !input.w.is_multiple_of(ww) {
            return Err(Error::shape(
                what,
                format!("a height and width that {wh}×{ww} windows tile (a pool does not crop)"),
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
        Ok(s)
    }

    /// Global average pooling: one window over each channel's whole plane.
    pub fn global(input: Chw) -> Result<Self> {
        AvgPoolShape::new(input, input.h.max(1), input.w.max(1))
    }

    pub fn input(&self) -> Chw {
        self.input
    }

    /// The window (rows, columns), which is also the stride.
    pub fn window(&self) -> (usize, usize) {
        self.window
    }

    /// C × H/wh × W/ww.
    pub fn output(&self) -> Chw {
        let (wh, ww) = self.window;
        Chw::new(self.input.c, self.input.h / wh, self.input.w / ww)
    }

    /// Whether the window is the whole plane (global average pooling).
    pub fn is_global(&self) -> bool {
        self.window == (self.input.h, self.input.w)
    }

    fn check(&self, what: &str, dim: (usize, usize), rows: usize, cols: usize) -> Result<()> {
        if dim != (rows, cols) {
            return Err(Error::shape(
                format!("{self}: {what}"),
                format!("{rows}×{cols}"),
                format!("{}×{}", dim.0, dim.1),
            ));
        }
        Ok(())
    }
}

impl std::fmt::Display for AvgPoolShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (wh, ww) = self.window;
        write!(f, "avg-pool {wh}×{ww} on {}", self.input)
    }
}

/// Forward pass: each window's mean of `x` (B × C·H·W) into `out` (B × C·(H/wh)·(W/ww)).
pub fn avg_pool(s: &AvgPoolShape, x: ArrayView2<f32>, mut out: ArrayViewMut2<f32>) -> Result<()> {
    let (i, o, (wh, ww)) = (s.input, s.output(), s.window);
    let batch = x.nrows();
    s.check("input", x.dim(), batch, i.len())?;
    s.check("output", out.dim(), batch, o.len())?;
    let scale = 1.0 / (wh * ww) as f32;
    for b in 0..batch {
        for c in 0..o.c {
            for oy in 0..o.h {
                for ox in 0..o.w {
                    let mut sum = 0.0f32;
                    for y in wh * oy..wh * (oy + 1) {
                        for xx in ww * ox..ww * (ox + 1) {
                            sum += x[[b, i.index(c, y, xx)]];
                        }
                    }
                    out[[b, o.index(c, oy, ox)]] = sum * scale;
                }
            }
        }
    }
    Ok(())
}

/// Backward pass: `dx` (B × C·H·W, overwritten) gets each output's gradient `dy` divided by the
/// window's size, at every value of its window.
pub fn avg_pool_backward(
    s: &AvgPoolShape,
    dy: ArrayView2<f32>,
    mut dx: ArrayViewMut2<f32>,
) -> Result<()> {
    let (i, o, (wh, ww)) = (s.input, s.output(), s.window);
    let batch = dy.nrows();
    s.check("output gradient", dy.dim(), batch, o.len())?;
    s.check("input gradient", dx.dim(), batch, i.len())?;
    let scale = 1.0 / (wh * ww) as f32;
    for b in 0..batch {
        for c in 0..i.c {
            for y in 0..i.h {
                for x in 0..i.w {
                    dx[[b, i.index(c, y, x)]] = dy[[b, o.index(c, y / wh, x / ww)]] * scale;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, array};

    #[test]
    fn by_hand() {
        let s = AvgPoolShape::new(Chw::new(1, 2, 4), 2, 2).unwrap();
        let x = array![[1.0f32, 2.0, 3.0, 5.0, 3.0, 4.0, 7.0, 9.0]];
        let mut y = Array2::zeros((1, 2));
        avg_pool(&s, x.view(), y.view_mut()).unwrap();
        assert_eq!(y, array![[2.5f32, 6.0]]);
        let mut dx = Array2::zeros((1, 8));
        avg_pool_backward(&s, array![[4.0f32, -8.0]].view(), dx.view_mut()).unwrap();
        assert_eq!(dx, array![[1.0f32, 1.0, -2.0, -2.0, 1.0, 1.0, -2.0, -2.0]]);
        let g = AvgPoolShape::global(Chw::new(2, 3, 5)).unwrap();
        assert_eq!((g.output(), g.is_global()), (Chw::new(2, 1, 1), true));
    }

    #[test]
    fn bad_shapes_are_errors() {
        let e = AvgPoolShape::new(Chw::new(3, 5, 4), 2, 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not crop") && e.contains("5×4"), "{e}");
        assert!(AvgPoolShape::new(Chw::new(0, 4, 4), 2, 2).is_err());
        assert!(AvgPoolShape::new(Chw::new(1, 4, 4), 0, 2).is_err());
        let s = AvgPoolShape::new(Chw::new(1, 2, 2), 2, 2).unwrap();
        let wrong = Array2::zeros((1, 3));
        assert!(avg_pool(&s, wrong.view(), Array2::zeros((1, 1)).view_mut()).is_err());
    }
}

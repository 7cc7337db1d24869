//! 2-D convolution, stride 1, k×k kernel, "valid" or "same" padding, with a bias per output
//! channel: the CPU reference, written as the textbook sums so that a reader can check each
//! line against them. The GPU twin is `shaders/conv.wgsl`, planned in `gpu::spatial`.
//!
//! **Layout.** A batch is a B × (C·H·W) array, one sample per row, channel-major within the row
//! (`x[n, (c·H + y)·W + x]`, NCHW flattened), as soma's batches are B × features: a dense layer
//! after a convolution reads its output rows as they are (flatten is free). The weights are
//! C_out × (C_in·k·k), `w[co, (ci·k + ky)·k + kx]` (PyTorch's `[C_out, C_in, k, k]` flattened),
//! the bias has C_out values.
//!
//! **The sums** ("convolution" as every framework means it, a cross-correlation: the kernel is
//! not flipped), with `p` the padding (0 for valid, (k-1)/2 for same) and `x` zero outside the
//! image:
//!
//! ```text
//! forward       y[n, co, oy, ox] = b[co] + Σ_ci Σ_ky Σ_kx w[co, ci, ky, kx] · x[n, ci, oy+ky-p, ox+kx-p]
//! input grad   dx[n, ci, iy, ix] = Σ_co Σ_ky Σ_kx w[co, ci, ky, kx] · dy[n, co, iy-ky+p, ix-kx+p]
//!                                  (over the (oy, ox) = (iy-ky+p, ix-kx+p) inside the output)
//! weight grad  dw[co, ci, ky, kx] = Σ_n Σ_oy Σ_ox dy[n, co, oy, ox] · x[n, ci, oy+ky-p, ox+kx-p]
//! bias grad    db[co]             = Σ_n Σ_oy Σ_ox dy[n, co, oy, ox]
//! ```
//!
//! The input gradient is written as a gather (each `dx` a sum of what reads it), not as the
//! forward pass's scatter run backwards: that is the form a GPU thread per `dx` computes without
//! atomics. Sums are in f32, in the loop order shown.
//!
//! **Speed, for the fast CPU path and the GPU kernels** (these loops are the oracle, not the
//! fast path). All three are GEMMs over the im2col matrix `X̂[n][(ci,ky,kx), (oy,ox)] =
//! x[n, ci, oy+ky-p, ox+kx-p]` (R = C_in·k·k rows, P = OH·OW columns per sample):
//! - forward: `Y[n] = W · X̂[n]` (C_out × R times R × P), bias and activation in the epilogue;
//!   the result is already channel-major, so no transpose follows;
//! - weight grad: `dW = Σ_n dY[n] · X̂[n]ᵀ` (K = B·P, the batch reduction of the dense
//!   weight-gradient step; the ones-row of the matmul gives `db` as it does for dense layers),
//!   with the optimizer in its epilogue;
//! - input grad: `dX̂[n] = Wᵀ · dY[n]`, then col2im adds overlapping patches; or, without the
//!   scatter, the gather above is itself a GEMM (K = C_out·k·k) over the im2col view of `dy`
//!   padded by k-1-p with the kernel flipped.
//!
//! On the CPU, im2col per sample into a reused workspace then `cpu::linalg::gemm` is the simple
//! fast path (`cpu::conv`); the GPU kernels are these GEMMs register-blocked (`gpu::spatial`).

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2};

use crate::error::{Error, Result};
use crate::named_enum;
use crate::shape::Chw;

/// The largest count of values per sample (and of weights per layer) a spatial op takes: the GPU
/// kernels will index in u32, and the pool's arg-max is a u32.
pub const MAX_VALUES: u64 = u32::MAX as u64;

/// How a convolution treats the border.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// No padding: every tap lies inside the input, the output is (H-k+1)×(W-k+1).
    Valid,
    /// (k-1)/2 zeros on each side: the output has the input's size. Odd k only: an even k
    /// would need one more zero on one side than the other, and frameworks differ on which,
    /// so [`ConvShape::new`] rejects it rather than pick one silently.
    Same,
}

named_enum!(Padding, "padding", ["valid" => Padding::Valid, "same" => Padding::Same]);

/// A validated convolution: its input, output channels, kernel size and padding. Built only by
/// [`ConvShape::new`], so every op taking one can trust that its sizes are sane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    input: Chw,
    out_channels: usize,
    kernel: usize,
    padding: Padding,
}

impl ConvShape {
    /// A `kernel`×`kernel` convolution from `input` to `out_channels` channels, or an error that
    /// names the convolution and the offending sizes: a zero size, a kernel larger than the
    /// input (either padding), an even kernel with same padding, or more than [`MAX_VALUES`]
    /// values per sample or weights.
    pub fn new(input: Chw, out_channels: usize, kernel: usize, padding: Padding) -> Result<Self> {
        let s = ConvShape {
            input,
            out_channels,
            kernel,
            padding,
        };
        let what = format!("conv2d {}", s.describe());
        if input.is_empty() {
            return Err(Error::shape(
                what,
                "an input of at least 1×1×1 (C×H×W)",
                input,
            ));
        }
        if out_channels == 0 {
            return Err(Error::shape(what, "at least 1 output channel", 0));
        }
        if kernel == 0 {
            return Err(Error::shape(what, "a kernel of at least 1×1", "0×0"));
        }
        if kernel > input.h || kernel > input.w {
            // With same padding such a kernel would be defined (most taps on padding zeros), but
            // it is almost surely a mistake in the layer list, and the issue asks for an error.
            return Err(Error::shape(
                what,
                format!("a kernel no larger than the {}×{} input", input.h, input.w),
                format!("{kernel}×{kernel}"),
            ));
        }
        if padding == Padding::Same && kernel.is_multiple_of(2) {
            return Err(Error::shape(
                what,
                "an odd kernel size with same padding (or valid padding)",
                format!("{kernel}×{kernel}"),
            ));
        }
        let weights = out_channels
            .checked_mul(input.c)
            .and_then(|v| v.checked_mul(kernel * kernel));
        let sizes = [
            ("input values per sample", Some(input.len())),
            ("output values per sample", Some(s.output().len())),
            ("weights", weights),
        ];
        for (name, n) in sizes {
            // Compared as u64: on wasm32 a usize cannot exceed the bound at all.
            if n.is_none_or(|n| n as u64 > MAX_VALUES) {
                return Err(Error::TooLarge {
                    what: format!("{what}: its {name}"),
                    needed: n.map_or("more than usize::MAX".into(), |n| n.to_string()),
                    limit: MAX_VALUES.to_string(),
                });
            }
        }
        Ok(s)
    }

    /// One sample's input.
    pub fn input(&self) -> Chw {
        self.input
    }

    /// One sample's output: C_out × OH × OW.
    pub fn output(&self) -> Chw {
        let shrink = match self.padding {
            Padding::Valid => self.kernel - 1,
            Padding::Same => 0,
        };
        Chw::new(
            self.out_channels,
            self.input.h - shrink,
            self.input.w - shrink,
        )
    }

    pub fn kernel(&self) -> usize {
        self.kernel
    }

    pub fn padding(&self) -> Padding {
        self.padding
    }

    /// Zeros added before (and after) each row and column: 0, or (k-1)/2 for same.
    pub fn pad(&self) -> usize {
        match self.padding {
            Padding::Valid => 0,
            Padding::Same => (self.kernel - 1) / 2,
        }
    }

    /// The weight matrix's shape: C_out × (C_in·k·k).
    pub fn weight_dims(&self) -> (usize, usize) {
        (self.out_channels, self.patch_len())
    }

    /// Values one output reads from one sample: C_in·k·k (a row of the weights).
    pub fn patch_len(&self) -> usize {
        self.input.c * self.kernel * self.kernel
    }

    /// Trainable parameters: weights and biases.
    pub fn parameter_count(&self) -> usize {
        self.out_channels * self.patch_len() + self.out_channels
    }

    /// Multiply-adds of one sample's forward pass, as if padding zeros were multiplied too (the
    /// count frameworks and FLOP tables use).
    pub fn macs_per_sample(&self) -> u64 {
        self.output().len() as u64 * self.patch_len() as u64
    }

    /// Where weight `(co, ci, ky, kx)` sits: its row is `co`, this is its column.
    #[inline]
    fn tap(&self, ci: usize, ky: usize, kx: usize) -> usize {
        (ci * self.kernel + ky) * self.kernel + kx
    }

    /// The row index of input pixel `(c, py - p, px - p)`, given in padded coordinates (the
    /// input with its border of zeros), or `None` when that is a padding zero.
    #[inline]
    fn input_at(&self, c: usize, py: usize, px: usize) -> Option<usize> {
        let (y, x) = (py.checked_sub(self.pad())?, px.checked_sub(self.pad())?);
        (y < self.input.h && x < self.input.w).then(|| self.input.index(c, y, x))
    }

    /// `"3×7×5 → 8×7×5, 5×5 same"`.
    fn describe(&self) -> String {
        let fits = match self.padding {
            Padding::Valid => (1..=self.input.h.min(self.input.w)).contains(&self.kernel),
            Padding::Same => true,
        };
        let out = if fits && !self.input.is_empty() {
            self.output().to_string()
        } else {
            "?".to_string()
        };
        format!(
            "{} → {out}, {k}×{k} {}",
            self.input,
            self.padding,
            k = self.kernel
        )
    }

    fn what(&self, array: &str) -> String {
        format!("conv2d {}: {array}", self.describe())
    }

    /// `a` must be `rows` × `cols`.
    fn check(&self, array: &str, a: (usize, usize), rows: usize, cols: usize) -> Result<()> {
        if a != (rows, cols) {
            return Err(Error::shape(
                self.what(array),
                format!("{rows}×{cols}"),
                format!("{}×{}", a.0, a.1),
            ));
        }
        Ok(())
    }

    /// A batch of inputs: B rows of C·H·W. Returns B.
    fn check_input(&self, array: &str, x: (usize, usize)) -> Result<usize> {
        if x.1 != self.input.len() {
            return Err(Error::shape(
                self.what(array),
                format!(
                    "rows of C·H·W = {}·{}·{} = {} values",
                    self.input.c,
                    self.input.h,
                    self.input.w,
                    self.input.len()
                ),
                format!("{}×{}", x.0, x.1),
            ));
        }
        Ok(x.0)
    }

    fn check_weights(&self, w: (usize, usize)) -> Result<()> {
        let (r, c) = self.weight_dims();
        self.check("weights (C_out × C_in·k·k)", w, r, c)
    }

    fn check_bias(&self, array: &str, len: usize) -> Result<()> {
        if len != self.out_channels {
            return Err(Error::shape(
                self.what(array),
                format!("{} values (one per output channel)", self.out_channels),
                len,
            ));
        }
        Ok(())
    }
}

impl std::fmt::Display for ConvShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "conv2d {}", self.describe())
    }
}

/// Forward pass: `out = conv(x, w) + b` for a batch `x` (B × C_in·H·W) into `out`
/// (B × C_out·OH·OW). An error (nothing written) when a shape does not fit `s`.
pub fn conv2d(
    s: &ConvShape,
    x: ArrayView2<f32>,
    w: ArrayView2<f32>,
    b: ArrayView1<f32>,
    mut out: ArrayViewMut2<f32>,
) -> Result<()> {
    let batch = s.check_input("input", x.dim())?;
    s.check_weights(w.dim())?;
    s.check_bias("bias", b.len())?;
    let o = s.output();
    s.check("output", out.dim(), batch, o.len())?;
    let (k, c_in) = (s.kernel, s.input.c);
    for n in 0..batch {
        for co in 0..o.c {
            for oy in 0..o.h {
                for ox in 0..o.w {
                    let mut acc = b[co];
                    for ci in 0..c_in {
                        for ky in 0..k {
                            for kx in 0..k {
                                if let Some(i) = s.input_at(ci, oy + ky, ox + kx) {
                                    acc += w[[co, s.tap(ci, ky, kx)]] * x[[n, i]];
                                }
                            }
                        }
                    }
                    out[[n, o.index(co, oy, ox)]] = acc;
                }
            }
        }
    }
    Ok(())
}

/// Input gradient: `dx` (B × C_in·H·W) from the output gradient `dy` (B × C_out·OH·OW) and
/// the weights, overwriting `dx`.
pub fn conv2d_input_grad(
    s: &ConvShape,
    dy: ArrayView2<f32>,
    w: ArrayView2<f32>,
    mut dx: ArrayViewMut2<f32>,
) -> Result<()> {
    let o = s.output();
    let batch = dy.nrows();
    s.check("output gradient", dy.dim(), batch, o.len())?;
    s.check_weights(w.dim())?;
    let i = s.input;
    s.check("input gradient", dx.dim(), batch, i.len())?;
    let (k, p) = (s.kernel, s.pad());
    for n in 0..batch {
        for ci in 0..i.c {
            for iy in 0..i.h {
                for ix in 0..i.w {
                    let mut acc = 0.0f32;
                    for co in 0..o.c {
                        for ky in 0..k {
                            for kx in 0..k {
                                // The output that read this pixel through tap (ky, kx):
                                // oy + ky - p = iy, if it lies inside the output.
                                let (Some(oy), Some(ox)) =
                                    ((iy + p).checked_sub(ky), (ix + p).checked_sub(kx))
                                else {
                                    continue;
                                };
                                if oy < o.h && ox < o.w {
                                    acc +=
                                        w[[co, s.tap(ci, ky, kx)]] * dy[[n, o.index(co, oy, ox)]];
                                }
                            }
                        }
                    }
                    dx[[n, i.index(ci, iy, ix)]] = acc;
                }
            }
        }
    }
    Ok(())
}

/// Weight and bias gradients, summed over the batch: `dw` (C_out × C_in·k·k) and `db` (C_out)
/// from the inputs `x` and the output gradient `dy`, overwriting both.
pub fn conv2d_param_grads(
    s: &ConvShape,
    x: ArrayView2<f32>,
    dy: ArrayView2<f32>,
    mut dw: ArrayViewMut2<f32>,
    mut db: ArrayViewMut1<f32>,
) -> Result<()> {
    let batch = s.check_input("input", x.dim())?;
    let o = s.output();
    s.check("output gradient", dy.dim(), batch, o.len())?;
    s.check_weights(dw.dim())?;
    s.check_bias("bias gradient", db.len())?;
    let k = s.kernel;
    for co in 0..o.c {
        for ci in 0..s.input.c {
            for ky in 0..k {
                for kx in 0..k {
                    let mut acc = 0.0f32;
                    for n in 0..batch {
                        for oy in 0..o.h {
                            for ox in 0..o.w {
                                if let Some(i) = s.input_at(ci, oy + ky, ox + kx) {
                                    acc += dy[[n, o.index(co, oy, ox)]] * x[[n, i]];
                                }
                            }
                        }
                    }
                    dw[[co, s.tap(ci, ky, kx)]] = acc;
                }
            }
        }
        let mut acc = 0.0f32;
        for n in 0..batch {
            for j in 0..o.h * o.w {
                acc += dy[[n, co * o.h * o.w + j]];
            }
        }
        db[co] = acc;
    }
    Ok(())
}

#[cfg(test)]
mod tests;

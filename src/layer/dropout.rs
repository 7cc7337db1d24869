//! Dropout, `dropout0.25`: in training each value is kept with probability 1 − p and scaled
//! by 1 / (1 − p); evaluation and prediction pass the values through. The mask is drawn from the
//! layer's place, the step and the value's row and column ([`crate::ops::dropout`]), so the CPU
//! and the GPU drop the same values and nothing is stored between the passes.

use super::op::{Backward, Forward, Op, Pass};
#[cfg(feature = "gpu")]
use crate::gpu::dropout::{DROPOUT_WG, DropoutDims, DropoutKernel};
#[cfg(feature = "gpu")]
use crate::gpu::plan::{At, Bind, Grid, KernelId, Lowering};
use crate::ops::dropout::{self, Draw, Rate};
use crate::shape::Chw;

/// A dropout of rate `p` over values shaped `shape` (which it keeps).
#[derive(Clone, Copy, Debug)]
pub struct Dropout {
    pub shape: Chw,
    pub p: f32,
}

/// Rates compare by their bits: a layer list is equal only to itself.
impl PartialEq for Dropout {
    fn eq(&self, other: &Dropout) -> bool {
        self.shape == other.shape && self.p.to_bits() == other.p.to_bits()
    }
}

impl Eq for Dropout {}

/// The token's syntax, for the layer string's error message.
pub const SYNTAX: &str = "dropoutP (e.g. dropout0.25)";

/// `dropoutP` read on `input`, or `None` when `token` is not one.
pub fn from_token(token: &str, input: Chw) -> Option<Result<Dropout, String>> {
    let p = token.strip_prefix("dropout")?;
    // A decimal fraction: digits with at most one point (`0.25`, `.5`), no sign or exponent.
    let decimal = !p.is_empty()
        && p.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && p.bytes().filter(|&b| b == b'.').count() <= 1;
    let rate = decimal.then(|| p.parse::<f32>().ok()).flatten()?;
    Some(if (0.0..1.0).contains(&rate) {
        Ok(Dropout {
            shape: input,
            p: rate,
        })
    } else {
        Err(format!("a dropout rate in [0, 1), got {p}"))
    })
}

impl Dropout {
    fn rate(&self) -> Rate {
        Rate::new(self.p)
    }

    /// Its kernels' record in a program: rows from the step record, seeded by its place.
    #[cfg(feature = "gpu")]
    fn dims(&self, at: &At) -> DropoutDims {
        DropoutDims {
            rows_from_step: 1,
            ..DropoutDims::new(self.shape.len(), self.rate(), at.j as u32, 0)
        }
    }

    /// A thread per value.
    #[cfg(feature = "gpu")]
    fn grid(&self) -> Grid {
        Grid::PerValue {
            per_row: self.shape.len() as u32,
            wg: DROPOUT_WG,
        }
    }
}

impl Op for Dropout {
    fn input(&self) -> Chw {
        self.shape
    }

    fn output(&self) -> Chw {
        self.shape
    }

    /// It keeps the shape it reads: an image stays one, values stay flat.
    fn needs_image(&self) -> bool {
        false
    }

    fn token(&self) -> String {
        format!("dropout{}", self.p)
    }

    fn describe(&self) -> String {
        format!("dropout {}", self.p)
    }

    fn macs_per_sample(&self) -> u64 {
        0
    }

    fn cpu_forward(&self, f: Forward<'_>) {
        let mut out = f.out;
        match f.pass {
            Pass::Train { step, row0 } => {
                let draw = Draw {
                    seed: f.j as u32,
                    step,
                    row0,
                };
                dropout::forward(self.rate(), draw, f.x, out.view_mut());
            }
            Pass::Infer => dropout::infer(f.x, out.view_mut()),
        }
        if let Some(act) = f.act {
            out.mapv_inplace(|v| act.apply(v));
        }
    }

    fn cpu_backward(&self, b: Backward<'_>) {
        let (Some(dx), Pass::Train { step, row0 }) = (b.input_grad, b.pass) else {
            return;
        };
        let draw = Draw {
            seed: b.j as u32,
            step,
            row0,
        };
        dropout::backward(self.rate(), draw, b.delta, dx);
    }

    #[cfg(feature = "gpu")]
    fn lower_forward(&self, at: &At, to: &mut Lowering) {
        let kernel = if to.training {
            DropoutKernel::Train(at.act)
        } else {
            DropoutKernel::Infer(at.act)
        };
        to.push(
            at.label("dropout", "forward"),
            KernelId::Dropout(kernel),
            vec![Bind::Acts(at.j), Bind::Acts(at.j + 1), Bind::Dummy],
            &self.dims(at),
            self.grid(),
        );
    }

    /// The gradient through the same mask, ⊙ f′ of the layer before.
    #[cfg(feature = "gpu")]
    fn lower_backward(&self, at: &At, to: &mut Lowering) {
        let Some(before) = at.before else { return };
        to.push(
            at.label("dropout", "grad"),
            KernelId::Dropout(DropoutKernel::Backward(before)),
            vec![Bind::Deltas(at.j), Bind::Deltas(at.j - 1), Bind::Acts(at.j)],
            &self.dims(at),
            self.grid(),
        );
    }
}

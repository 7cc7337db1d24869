//! The batch-norm ops of [`GpuOps`], one kernel each as a training step runs them: the batch's
//! statistics (with the running ones updated), the normalisation (with the batch's or the
//! running statistics, the activation fused), the gradient sums, the input gradient times the
//! layer before's f′, and the update of γ and β.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

use super::matmul::UpdateSpec;
use super::{GpuOps, Updated, check_dim, contiguous};
use crate::error::{Error, Result};
use crate::gpu::batchnorm::{BN_WG, BnDims, BnKernel};
use crate::gpu::kernels::{KernelId, grid_1d};
use crate::gpu::live::DeviceBuffer;
use crate::gpu::prepared::Readout;
use crate::gpu::resources::{upload, usage_out};
use crate::ops::StepRecord;
use crate::ops::activation::Activation;
use crate::ops::batchnorm::BnShape;
use crate::ops::optim::OptimParams;

/// Per channel: the batch's mean and `1 / √(σ² + ε)`, and the running mean and variance after
/// the step.
pub type BnStats = (Array1<f32>, Array1<f32>, Array1<f32>, Array1<f32>);

/// Where the kernels find a layer's tensors: γ, β, then the running mean and variance.
fn tensors(
    c: usize,
    gamma: ArrayView1<f32>,
    beta: ArrayView1<f32>,
    running: (ArrayView1<f32>, ArrayView1<f32>),
) -> Vec<f32> {
    let parts = [gamma, beta, running.0, running.1];
    let mut all = Vec::with_capacity(4 * c);
    for p in parts {
        all.extend(p.iter().copied());
    }
    all
}

impl GpuOps {
    /// The batch's statistics over `x` (B × C·plane), and the running `(mean, variance)`
    /// after the step. Prepared: `run()` it, or `run_async().await` in a browser.
    pub fn batch_norm_stats(
        &self,
        s: BnShape,
        x: ArrayView2<f32>,
        running: (ArrayView1<f32>, ArrayView1<f32>),
    ) -> Result<Readout<'_, BnStats>> {
        let c = s.channels;
        check_dim("batch norm input row", s.len(), x.ncols())?;
        let ones = Array1::ones(c);
        let p = tensors(c, ones.view(), ones.view(), running);
        let buffers = vec![
            self.input("batch norm x", &contiguous(x))?,
            self.input("batch norm out", &[0.0])?,
            upload(&self.ctx, "batch norm tensors", &p, usage_out())?,
            self.ctx
                .buffer("batch norm keep", (4 * c * 4) as u64, usage_out())?,
        ];
        let op = self.bn_op(BnKernel::Stats, s, x.nrows(), buffers, None)?;
        Ok(Readout::new(op, vec![(2, 4 * c), (3, 2 * c)], move |v| {
            let [p, keep] = <[Vec<f32>; 2]>::try_from(v).expect("two reads");
            let part = |v: &[f32], i: usize| Array1::from(v[i * c..(i + 1) * c].to_vec());
            Ok((part(&keep, 0), part(&keep, 1), part(&p, 2), part(&p, 3)))
        }))
    }

    /// `act(γ·(x − mean)·inv_std + β)`: with the batch's `(mean, inv_std)` when `batch` is
    /// given, else with the running statistics. Prepared: `run()` it, or `run_async().await`.
    #[allow(clippy::too_many_arguments)]
    pub fn batch_norm_normalize(
        &self,
        s: BnShape,
        x: ArrayView2<f32>,
        batch: Option<(ArrayView1<f32>, ArrayView1<f32>)>,
        (gamma, beta): (ArrayView1<f32>, ArrayView1<f32>),
        running: (ArrayView1<f32>, ArrayView1<f32>),
        act: Option<Activation>,
    ) -> Result<Readout<'_, Array2<f32>>> {
        let (c, rows) = (s.channels, x.nrows());
        check_dim("batch norm input row", s.len(), x.ncols())?;
        let mut keep = vec![0.0; 4 * c];
        if let Some((mean, inv)) = batch {
            keep[..c].copy_from_slice(&mean.to_vec());
            keep[c..2 * c].copy_from_slice(&inv.to_vec());
        }
        let buffers = vec![
            self.input("batch norm x", &contiguous(x))?,
            self.ctx.buffer(
                "batch norm y",
                (rows * s.len()).max(1) as u64 * 4,
                usage_out(),
            )?,
            upload(
                &self.ctx,
                "batch norm tensors",
                &tensors(c, gamma, beta, running),
                usage_out(),
            )?,
            upload(&self.ctx, "batch norm keep", &keep, usage_out())?,
        ];
        let kernel = match batch {
            Some(_) => BnKernel::Normalize(act),
            None => BnKernel::NormalizeRunning(act),
        };
        let op = self.bn_op(kernel, s, rows, buffers, None)?;
        Ok(Readout::matrix(op, 1, rows, s.len()))
    }

    /// `(Σdy, Σdy·x̂)` per channel, `x̂` from the batch's `(mean, inv_std)`.
    /// Prepared: `run()` it, or `run_async().await` in a browser.
    pub fn batch_norm_grad_sums(
        &self,
        s: BnShape,
        x: ArrayView2<f32>,
        dy: ArrayView2<f32>,
        (mean, inv): (ArrayView1<f32>, ArrayView1<f32>),
    ) -> Result<Readout<'_, (Array1<f32>, Array1<f32>)>> {
        let c = s.channels;
        let buffers = self.bn_grad_buffers(s, x, dy, (mean, inv), None, None)?;
        let op = self.bn_op(BnKernel::GradSums, s, x.nrows(), buffers, None)?;
        Ok(Readout::new(op, vec![(4, 4 * c)], move |mut v| {
            let keep = v.remove(0);
            let part = |i: usize| Array1::from(keep[i * c..(i + 1) * c].to_vec());
            Ok((part(2), part(3)))
        }))
    }

    /// The input gradient from the batch's statistics and gradient sums, times `f′(x)` when
    /// `before` is given (the activation of the layer before, whose output `x` is).
    /// Prepared: `run()` it, or `run_async().await` in a browser.
    pub fn batch_norm_input_grad(
        &self,
        s: BnShape,
        (x, dy): (ArrayView2<f32>, ArrayView2<f32>),
        stats: (ArrayView1<f32>, ArrayView1<f32>),
        sums: (ArrayView1<f32>, ArrayView1<f32>),
        gamma: ArrayView1<f32>,
        before: Option<Activation>,
    ) -> Result<Readout<'_, Array2<f32>>> {
        let rows = x.nrows();
        let buffers = self.bn_grad_buffers(s, x, dy, stats, Some(sums), Some(gamma))?;
        let op = self.bn_op(BnKernel::InputGrad(before), s, rows, buffers, None)?;
        Ok(Readout::matrix(op, 1, rows, s.len()))
    }

    /// γ and β after one step of `spec`'s optimizer with `dγ = Σdy·x̂` and `dβ = Σdy`, and the
    /// optimizer's slots after it (γ's then β's values, per slot).
    /// Prepared: `run()` it, or `run_async().await` in a browser.
    pub fn batch_norm_update(
        &self,
        s: BnShape,
        (gamma, beta): (ArrayView1<f32>, ArrayView1<f32>),
        (sum_dy, sum_dyx): (ArrayView1<f32>, ArrayView1<f32>),
        slots: &[ArrayView1<f32>],
        spec: UpdateSpec<'_>,
    ) -> Result<Readout<'_, Updated>> {
        let c = s.channels;
        let optimizer = spec.optimizer;
        if slots.len() != optimizer.slots() || slots.iter().any(|v| v.len() != 2 * c) {
            return Err(Error::arg(
                "batch norm update state",
                format!("{} slots of {} values", optimizer.slots(), 2 * c),
                format!("{} slots", slots.len()),
            ));
        }
        let params: Vec<f32> = gamma.iter().chain(beta.iter()).copied().collect();
        let mut keep = vec![0.0; 4 * c];
        keep[2 * c..3 * c].copy_from_slice(&sum_dy.to_vec());
        keep[3 * c..].copy_from_slice(&sum_dyx.to_vec());
        let stride = 2 * c;
        let mut slot_data = vec![0.0; stride * slots.len().max(1)];
        for (i, slot) in slots.iter().enumerate() {
            slot_data[i * stride..][..stride].copy_from_slice(&slot.to_vec());
        }
        let buffers = vec![
            upload(&self.ctx, "batch norm params", &params, usage_out())?,
            self.input("batch norm keep", &keep)?,
            upload(&self.ctx, "batch norm slots", &slot_data, usage_out())?,
        ];
        let step = spec.step_record();
        let opt = OptimParams::new(optimizer, stride as u32);
        let op = self.bn_op(
            BnKernel::Update(optimizer.kind()),
            s,
            0,
            buffers,
            Some((step, opt)),
        )?;
        let count = slots.len();
        Ok(Readout::new(
            op,
            vec![(0, 2 * c), (2, stride * count.max(1))],
            move |v| {
                let [p, all] = <[Vec<f32>; 2]>::try_from(v).expect("two reads");
                let slots = (0..count)
                    .map(|i| Array1::from(all[i * stride..][..stride].to_vec()))
                    .collect();
                Ok((Array1::from(p), slots))
            },
        ))
    }

    /// The gradient kernels' bindings: dy, dx, x, γ and β, the kept statistics and sums.
    fn bn_grad_buffers(
        &self,
        s: BnShape,
        x: ArrayView2<f32>,
        dy: ArrayView2<f32>,
        (mean, inv): (ArrayView1<f32>, ArrayView1<f32>),
        sums: Option<(ArrayView1<f32>, ArrayView1<f32>)>,
        gamma: Option<ArrayView1<f32>>,
    ) -> Result<Vec<DeviceBuffer>> {
        let (c, rows) = (s.channels, x.nrows());
        check_dim("batch norm input row", s.len(), x.ncols())?;
        check_dim("batch norm output gradient", rows * s.len(), dy.len())?;
        let mut keep = vec![0.0; 4 * c];
        keep[..c].copy_from_slice(&mean.to_vec());
        keep[c..2 * c].copy_from_slice(&inv.to_vec());
        if let Some((sum_dy, sum_dyx)) = sums {
            keep[2 * c..3 * c].copy_from_slice(&sum_dy.to_vec());
            keep[3 * c..].copy_from_slice(&sum_dyx.to_vec());
        }
        let mut params = vec![1.0; 2 * c];
        if let Some(g) = gamma {
            params[..c].copy_from_slice(&g.to_vec());
        }
        Ok(vec![
            self.input("batch norm dy", &contiguous(dy))?,
            self.ctx.buffer(
                "batch norm dx",
                (rows * s.len()).max(1) as u64 * 4,
                usage_out(),
            )?,
            self.input("batch norm x", &contiguous(x))?,
            self.input("batch norm params", &params)?,
            upload(&self.ctx, "batch norm keep", &keep, usage_out())?,
        ])
    }

    /// Binds a batch-norm kernel over `rows` rows (the update: with its own step record and
    /// optimizer).
    fn bn_op(
        &self,
        kernel: BnKernel,
        s: BnShape,
        rows: usize,
        buffers: Vec<DeviceBuffer>,
        update: Option<(StepRecord, OptimParams)>,
    ) -> Result<crate::gpu::prepared::PreparedOp<'_>> {
        let c = s.channels;
        let dims = BnDims {
            opt: update.map_or(OptimParams::default(), |u| u.1),
            ..BnDims::new(s, (2 * c) as u32, rows as u32)
        };
        let max = self.ctx.limits.max_compute_workgroups_per_dimension;
        let grid = match kernel {
            BnKernel::Update(_) => grid_1d(c as u64, BN_WG, max),
            k if k.per_channel() => grid_1d(c as u64, 1, max),
            _ => grid_1d((rows * s.len()) as u64, BN_WG, max),
        };
        let kernel = self
            .ctx
            .kernels
            .get(&self.ctx, KernelId::BatchNorm(kernel))?;
        self.prepare_with_step(kernel, buffers, &dims, update.map(|u| u.0), grid)
    }
}

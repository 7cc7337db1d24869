//! A CNN's spatial layers in a program: their dispatches (forward first to last, backward last
//! to first) and the count of a general step's dispatches.

use super::{Bind, Grid, ParamLayout, PlannedDispatch};
use crate::gpu::kernels::{KernelId, grid_1d};
use crate::gpu::resources::Records;
use crate::gpu::spatial::PoolDims;
use crate::gpu::spatial::{ConvDims, ConvKernel, PoolKernel};
use crate::net::{Feature, Network};
use crate::ops::conv::ConvShape;
use crate::ops::optim::OptimParams;
use crate::optim::Optimizer;

/// Dispatches of one general training step of `net` (what [`Planner::plan`] plans): the
/// gather, the loss, three per dense layer (forward, input gradient, update) less the first
/// layer's input gradient unless spatial layers precede it; per spatial layer its forward pass
/// and, but for the first, its input gradient; per convolution its update.
pub(crate) fn general_dispatches(net: &Network) -> usize {
    let features = net.features().len();
    let dense = 3 * net.layers() - usize::from(features == 0);
    2 + dense + features + features.saturating_sub(1) + net.conv_layers()
}

/// Plans a CNN's spatial layers: forward first to last, backward last to first.
pub(super) struct Spatial<'a> {
    pub net: &'a Network,
    pub layout: &'a ParamLayout,
    pub optimizer: &'a Optimizer,
    pub max_groups: u32,
}

impl Spatial<'_> {
    /// Each spatial layer's forward pass: stage `f` → stage `f + 1`.
    pub fn forward(&self, rec: &mut Records) -> Vec<PlannedDispatch> {
        let mut conv = 0;
        let mut plan = Vec::new();
        for (f, feature) in self.net.features().iter().enumerate() {
            let per_row = feature.output().len() as u32;
            plan.push(match feature {
                Feature::Conv(s, act) => {
                    conv += 1;
                    PlannedDispatch {
                        label: format!("conv {conv}"),
                        kernel: KernelId::Conv(ConvKernel::Forward(Some(*act))),
                        binds: vec![
                            Bind::Stage(f),
                            Bind::Tensor(conv - 1),
                            Bind::Stage(f + 1),
                            Bind::Dummy,
                            Bind::Scratch,
                        ],
                        dims: rec.push(&conv_dims(s)),
                        grid: Grid::Conv(s.forward_work()),
                    }
                }
                Feature::Pool(s) => PlannedDispatch {
                    label: format!("max-pool {}", f + 1),
                    kernel: KernelId::Pool(PoolKernel::Forward),
                    binds: vec![
                        Bind::Stage(f),
                        Bind::Stage(f + 1),
                        Bind::Argmax(f),
                        Bind::Dummy,
                    ],
                    dims: rec.push(&PoolDims {
                        rows_from_step: 1,
                        ..PoolDims::new(s, 0)
                    }),
                    grid: Grid::Values { per_row },
                },
            });
        }
        plan
    }

    /// Last spatial layer first: each one's input gradient (but the first's: nothing reads
    /// the images' gradient), ⊙ f′ of the layer before, then a convolution's update (after its
    /// input gradient, which needs the weights of before the update).
    pub fn backward(&self, rec: &mut Records) -> Vec<PlannedDispatch> {
        let features = self.net.features();
        let mut conv = self.net.conv_layers();
        let mut plan = Vec::new();
        for (f, feature) in features.iter().enumerate().rev() {
            let before = f.checked_sub(1).map(|p| (p, features[p].activation()));
            // A max-pool's backward pass: a thread per output value (its window).
            let per_row = feature.output().len() as u32;
            match feature {
                Feature::Conv(s, _) => {
                    conv -= 1;
                    if let Some((p, act)) = before {
                        plan.push(PlannedDispatch {
                            label: format!("conv input grad {}", conv + 1),
                            kernel: KernelId::Conv(ConvKernel::InputGrad(act)),
                            binds: vec![
                                Bind::StageDelta(f),
                                Bind::Tensor(conv),
                                Bind::StageDelta(p),
                                Bind::Stage(f),
                                Bind::Scratch,
                            ],
                            dims: rec.push(&conv_dims(s)),
                            grid: Grid::Conv(s.input_grad_work()),
                        });
                    }
                    let dims = ConvDims {
                        slot_base: self.layout.starts[conv] as u32,
                        opt: OptimParams::new(self.optimizer, self.layout.total as u32),
                        ..conv_dims(s)
                    };
                    let (x, y) = grid_1d(s.update_groups() as u64, 1, self.max_groups);
                    plan.push(PlannedDispatch {
                        label: format!("conv update {}", conv + 1),
                        kernel: KernelId::Conv(ConvKernel::Update(self.optimizer.kind())),
                        binds: vec![
                            Bind::Stage(f),
                            Bind::StageDelta(f),
                            Bind::Tensor(conv),
                            Bind::Dummy,
                            Bind::Slots,
                        ],
                        dims: rec.push(&dims),
                        grid: Grid::Fixed(x, y),
                    });
                }
                Feature::Pool(s) => {
                    if let Some((p, act)) = before {
                        plan.push(PlannedDispatch {
                            label: format!("max-pool grad {}", f + 1),
                            kernel: KernelId::Pool(PoolKernel::Backward(act)),
                            binds: vec![
                                Bind::StageDelta(f),
                                Bind::StageDelta(p),
                                Bind::Argmax(f),
                                Bind::Stage(f),
                            ],
                            dims: rec.push(&PoolDims {
                                rows_from_step: 1,
                                ..PoolDims::new(s, 0)
                            }),
                            grid: Grid::Values { per_row },
                        });
                    }
                }
            }
        }
        plan
    }
}

/// A convolution's record with its rows from the step record.
fn conv_dims(s: &ConvShape) -> ConvDims {
    ConvDims {
        rows_from_step: 1,
        ..ConvDims::new(s, 0)
    }
}

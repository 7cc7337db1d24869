// One optimizer step over a whole buffer of parameters, with gradients and optimizer slots in
// buffers of the same layout (the arithmetic is `optimizer_update` in optim.wgsl). CPU twin:
// `soma::ops::optim::apply`; record: `soma::ops::optim::OptimDims`. Training fuses the update
// into the weight-gradient kernel instead; this kernel serves the single-op runner and its
// parity tests.

override WG: u32 = 256u;

struct Dims {
    n: u32,
    use_step: u32,     // 0: lr/c1/c2 come from `fixed_*` (standalone op)
    fixed_lr: f32,
    fixed_c1: f32,
    fixed_c2: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    opt: OptimParams,
}

@group(0) @binding(0) var<storage, read_write> params: array<f32>;
@group(0) @binding(1) var<storage, read> grads: array<f32>;
@group(0) @binding(2) var<storage, read_write> slots: array<f32>;
@group(0) @binding(3) var<storage, read> dims: Dims;
@group(0) @binding(4) var<storage, read> step: Step;

@compute @workgroup_size(WG)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let i = gid.y * groups.x * WG + gid.x;
    if i >= dims.n {
        return;
    }
    let use_step = dims.use_step != 0u;
    let lr = select(dims.fixed_lr, step.lr, use_step);
    let c1 = select(dims.fixed_c1, step.c1, use_step);
    let c2 = select(dims.fixed_c2, step.c2, use_step);
    let o = dims.opt;
    // Only the slots this optimizer has are touched (SGD binds a one-word placeholder).
    var s0 = 0.0;
    var s1 = 0.0;
    if o.kind != OPTIM_SGD {
        s0 = slots[i];
    }
    if o.kind == OPTIM_ADAM {
        s1 = slots[o.slot_stride + i];
    }
    let u = optimizer_update(o.kind, o, lr, c1, c2, params[i], grads[i], s0, s1);
    if o.kind != OPTIM_SGD {
        slots[i] = u.s0;
    }
    if o.kind == OPTIM_ADAM {
        slots[o.slot_stride + i] = u.s1;
    }
    params[i] = u.p;
}

// One optimizer step over ALL parameters at once: parameters, gradients and optimizer slots each
// live in one buffer with the same layout, so a step's update is one dispatch whatever the
// number of layers. The arithmetic follows `Optimizer::update` term by term. Padding between
// tensors has zero gradient and zero state, so it stays zero under every update.

override WG: u32 = 256u;

const SGD: u32 = 0u;
const MOMENTUM: u32 = 1u;
const ADAM: u32 = 2u;

struct Dims {
    n: u32,
    kind: u32,
    slot_stride: u32,  // Adam's second moments start here in `slots`
    _pad: u32,
    momentum: f32,
    weight_decay: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    use_step: u32,     // 0: lr/c1/c2 come from `fixed_*` (standalone op)
    fixed_lr: f32,
    fixed_c1: f32,
    fixed_c2: f32,
    _pad1: u32,
    _pad2: u32,
    _pad3: u32,
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
    var p = params[i];
    var g = grads[i];
    switch dims.kind {
        case SGD: {
            p -= lr * g;
        }
        case MOMENTUM: {
            g = g + dims.weight_decay * p;
            let v = dims.momentum * slots[i] + g;
            slots[i] = v;
            p -= lr * v;
        }
        default: {
            let c1 = select(dims.fixed_c1, step.c1, use_step);
            let c2 = select(dims.fixed_c2, step.c2, use_step);
            g = g + dims.weight_decay * p;
            let m = dims.beta1 * slots[i] + (1.0 - dims.beta1) * g;
            let v = dims.beta2 * slots[dims.slot_stride + i] + (1.0 - dims.beta2) * g * g;
            slots[i] = m;
            slots[dims.slot_stride + i] = v;
            let m_hat = m / c1;
            let v_hat = v / c2;
            p -= lr * m_hat / (sqrt(v_hat) + dims.eps);
        }
    }
    params[i] = p;
}

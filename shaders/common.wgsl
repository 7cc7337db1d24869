// The per-step record every step kernel can read (bound with a dynamic offset, one record per
// step, written once per `train_batches` call). Mirrors `kernels::StepRecord`.
struct Step {
    rows: u32,          // rows of this batch (a smaller final batch just has fewer)
    index_offset: u32,  // where this batch's sample indices start in the index buffer
    lr: f32,
    c1: f32,            // Adam bias corrections 1 - beta^t, computed on the host
    c2: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// Rows of the current dispatch: from the step record when `from_step` is set (training), else
// the fixed count (standalone ops, evaluation chunks of a known size).
fn rows_of(fixed: u32, from_step: u32, s: Step) -> u32 {
    return select(fixed, s.rows, from_step != 0u);
}

// An order entry is a sample index (bits 0-23) and a shift of its image (bits 24-27 dx, 28-31
// dy, 4-bit two's complement); see `data::Sample`. Plain indices have no shift.
fn sample_index(entry: u32) -> u32 {
    return entry & 0xffffffu;
}

fn sample_shift(entry: u32) -> vec2<i32> {
    // Arithmetic right shifts sign-extend the nibbles.
    let e = bitcast<i32>(entry);
    return vec2<i32>((e << 4u) >> 28u, e >> 28u);
}

// The optimizer's hyper-parameters (mirrors `kernels::OptimParams`).
struct OptimParams {
    kind: u32,          // 0 SGD, 1 momentum (+ weight decay), 2 Adam (+ weight decay)
    slot_stride: u32,   // Adam's second moments start this many values after the first
    momentum: f32,
    weight_decay: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    _pad: u32,
}

struct Updated {
    p: f32,
    s0: f32,  // momentum velocity, or Adam's first moment
    s1: f32,  // Adam's second moment
}

// One parameter's update, term by term as `Optimizer::update`; the caller loads and stores the
// slots (only those its optimizer has). Used by the standalone optimizer kernel and by the
// weight-gradient matmul's epilogue, which updates each parameter as its gradient is formed.
fn optimizer_update(o: OptimParams, lr: f32, c1: f32, c2: f32, p: f32, grad: f32, s0: f32, s1: f32) -> Updated {
    if o.kind == 0u {
        return Updated(p - lr * grad, s0, s1);
    }
    let g = grad + o.weight_decay * p;
    if o.kind == 1u {
        let v = o.momentum * s0 + g;
        return Updated(p - lr * v, v, s1);
    }
    let m = o.beta1 * s0 + (1.0 - o.beta1) * g;
    let v = o.beta2 * s1 + (1.0 - o.beta2) * g * g;
    let m_hat = m / c1;
    let v_hat = v / c2;
    return Updated(p - lr * m_hat / (sqrt(v_hat) + o.eps), m, v);
}

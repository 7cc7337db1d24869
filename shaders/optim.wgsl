// The optimizer update of one parameter. CPU twin: `soma::ops::optim::update`; the record
// mirrors `soma::ops::optim::OptimParams`. Included by the weight-gradient matmul (whose
// epilogue applies it) and by the standalone kernel `optim_step.wgsl`.

// The optimizer's hyper-parameters.
struct OptimParams {
    kind: u32,          // OPTIM_SGD, OPTIM_MOMENTUM (+ weight decay), OPTIM_ADAM (+ weight decay)
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

// One parameter's update, term by term as `ops::optim::update`, by optimizer `kind` (`o.kind`,
// or a pipeline constant that folds the branches away); the caller loads and stores the slots
// (only those its optimizer has).
fn optimizer_update(kind: u32, o: OptimParams, lr: f32, c1: f32, c2: f32, p: f32, grad: f32, s0: f32, s1: f32) -> Updated {
    if kind == OPTIM_SGD {
        return Updated(p - lr * grad, s0, s1);
    }
    let g = grad + o.weight_decay * p;
    if kind == OPTIM_MOMENTUM {
        let v = o.momentum * s0 + g;
        return Updated(p - lr * v, v, s1);
    }
    let m = o.beta1 * s0 + (1.0 - o.beta1) * g;
    let v = o.beta2 * s1 + (1.0 - o.beta2) * g * g;
    let m_hat = m / c1;
    let v_hat = v / c2;
    return Updated(p - lr * m_hat / (sqrt(v_hat) + o.eps), m, v);
}

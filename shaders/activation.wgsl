// Activation functions shared by the kernels that need them (prepended to matmul.wgsl and
// loss.wgsl at pipeline build time: WGSL has no includes). CPU twin: `soma::ops::activation`
// (`Activation::apply`, `Activation::derivative_from_output`); the ACT_* codes and LEAKY_SLOPE
// come from the generated prelude. Derivatives are written in terms of the OUTPUT `a = f(z)`,
// so backprop needs only the stored activations.

// Same branch structure as the CPU's `sigmoid`: never forms exp(+large).
fn sigmoid(z: f32) -> f32 {
    if z >= 0.0 {
        return 1.0 / (1.0 + exp(-z));
    }
    let e = exp(z);
    return e / (1.0 + e);
}

// Some drivers evaluate tanh as (e^2z - 1)/(e^2z + 1), which is NaN once e^2z overflows; the
// builtin is kept near zero, where the rewrite below would lose relative precision.
fn tanh_stable(z: f32) -> f32 {
    if abs(z) < 0.5 {
        return tanh(z);
    }
    let t = exp(-2.0 * abs(z));
    return sign(z) * (1.0 - t) / (1.0 + t);
}

// NaN, told by its bits: some compilers fold comparisons with NaN, or assume there is none.
fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

fn act_apply(code: u32, z: f32) -> f32 {
    switch code {
        case ACT_SIGMOID: { return sigmoid(z); }
        case ACT_TANH: { return tanh_stable(z); }
        // NaN goes through: soma's NaN rule (`ops::activation`).
        case ACT_RELU: { return select(max(z, 0.0), z, is_nan(z)); }
        case ACT_LEAKY_RELU: { return select(LEAKY_SLOPE * z, z, z > 0.0); }
        default: { return z; }
    }
}

fn act_derivative_from_output(code: u32, a: f32) -> f32 {
    switch code {
        case ACT_SIGMOID: { return a * (1.0 - a); }
        case ACT_TANH: { return 1.0 - a * a; }
        case ACT_RELU: { return select(0.0, 1.0, a > 0.0); }
        case ACT_LEAKY_RELU: { return select(LEAKY_SLOPE, 1.0, a > 0.0); }
        default: { return 1.0; }
    }
}

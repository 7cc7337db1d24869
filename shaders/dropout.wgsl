// CPU twin: `soma::ops::dropout` (`forward`, `backward`, `infer`, `pcg_hash`, `Rate::keeps`;
// the epilogues are `Activation::apply` and `derivative_from_output`). Record:
// `soma::gpu::spatial::DropoutDims`.
//
// Dropout on batches of N-value rows, one thread per value, by MODE:
//   DROPOUT_TRAIN     y = ACT(x · m · scale), m drawn from (seed, the step record's step, the
//                     row in the batch, the column): the same draw as the CPU's.
//   DROPOUT_INFER     y = ACT(x) (evaluation and prediction drop nothing).
//   DROPOUT_BACKWARD  dx = dy · m · scale · f'(aux), the same m drawn again, f' of the activation
//                     of the layer before (taken from its output, the dropout's input).

override WG: u32 = 64u;
override MODE: u32 = 0u;
override ACT: u32 = 0u;

struct Dims {
    n: u32,          // values per row
    threshold: u32,  // a value is kept when its hash is at least p · 2^32
    scale: f32,      // 1 / (1 - p)
    seed: u32,
    rows: u32,
    rows_from_step: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;         // forward: x; backward: dy
@group(0) @binding(1) var<storage, read_write> c: array<f32>;   // forward: y; backward: dx
@group(0) @binding(2) var<storage, read> aux: array<f32>;       // backward: the dropout's input
@group(0) @binding(3) var<storage, read> dims: Dims;
@group(0) @binding(4) var<storage, read> step: Step;

fn pcg_hash(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

// `v` kept and scaled, or 0 (a dropped NaN too, as on the CPU: dropped values are not read).
fn masked(d: Dims, row: u32, col: u32, v: f32) -> f32 {
    let h = pcg_hash(pcg_hash(pcg_hash(pcg_hash(d.seed) ^ step.step) ^ row) ^ col);
    return select(0.0, v * d.scale, h >= d.threshold);
}

@compute @workgroup_size(WG)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let d = dims;
    let rows = rows_of(d.rows, d.rows_from_step, step);
    let t = gid.y * groups.x * WG + gid.x;
    if t >= rows * d.n {
        return;
    }
    let row = t / d.n;
    let col = t % d.n;
    if MODE == DROPOUT_INFER {
        c[t] = act_apply(ACT, a[t]);
    } else if MODE == DROPOUT_TRAIN {
        c[t] = act_apply(ACT, masked(d, row, col, a[t]));
    } else {
        c[t] = masked(d, row, col, a[t]) * act_derivative_from_output(ACT, aux[t]);
    }
}

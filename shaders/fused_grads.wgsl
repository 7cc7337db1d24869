// CPU twin: per layer `cpu::linalg::gemm` (aᵀ·δ) and `ops::reduce::column_sums` (the bias),
// then `ops::optim::update`; the stats are the sums `ops::loss::output_delta` returns.
// Records: `ops::fused::{GradsDims, GradsLayer}`, `ops::optim::OptimParams`.
//
// Stages 2 and 3 of the fused step, over every layer's [W; b] block at once (the concatenated
// gradient space: layer l's block starts at `begin`, value i·outputs + j is the gradient of
// W[i, j], row i = inputs the bias):
//
// GRADS_PARTIAL (grid: tiles / WG × splits): thread t of split s owns TILE t, the 4×4
//   gradients (i..i+3, j..j+3) of a block (rows past `inputs` are empty), and sums
//   a_l[r, i..i+3] ⊗ δ_l[r, j..j+3] over the rows of its split, r ascending, into the four
//   vec4 partials[(s·tiles + t)·4 + c]: two 16-byte loads feed sixteen FMAs.
// GRADS_APPLY (grid: 4·tiles / WG + 1, built with a smaller WG): thread q owns row q % 4 of
//   tile q / 4, adds its vec4 of partials in split order s = 0, 1, …, and hands each of the
//   (up to) four gradients to `optimizer_update`; the first thread
//   of the extra last workgroup adds the rows' losses (in row order, compensated) and correct
//   flags into the running stats. One thread, not a tree: a tree needs workgroup barriers, and
//   a shader with barriers costs every workgroup of both modes on some implementations
//   (lavapipe runs them as coroutines: +60% on this kernel), for a sum of at most a batch of
//   values.
//
// Every sum has a fixed order and no float atomics: the same inputs give the same bits.

override WG: u32 = 256u;

struct Layer {
    inputs: u32,
    outputs: u32,
    begin: u32,       // first index of its [W; b] block in the gradient space
    params: u32,      // where W starts in `params` and `slots` (b follows W)
    act_work: u32,    // its input rows in `work` (rows × inputs)
    delta_work: u32,  // its delta rows in `work` (rows × outputs; 16-byte aligned)
    tbegin: u32,      // its first tile (⌈(inputs + 1) / 4⌉ · ⌈outputs / 4⌉ of them)
    _pad: u32,
}

struct Dims {
    mode: u32,          // GRADS_PARTIAL or GRADS_APPLY
    layers: u32,
    total: u32,         // gradient values of all layers
    splits: u32,
    loss_work: u32,     // the rows' losses in `work`
    correct_work: u32,  // the rows' correct flags (0.0 / 1.0) in `work`
    tiles: u32,         // tiles of all layers
    _pad: u32,
    opt: OptimParams,
    layer: array<Layer, MAX_FUSED_LAYERS>,
}

struct Stats {
    loss: f32,
    loss_compensation: f32,
    correct: u32,
    samples: u32,
}

@group(0) @binding(0) var<storage, read> work: array<vec4<f32>>;  // padded to 16 bytes
@group(0) @binding(1) var<storage, read_write> partials: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> params: array<f32>;
@group(0) @binding(3) var<storage, read_write> slots: array<f32>;  // a placeholder for SGD
@group(0) @binding(4) var<storage, read_write> stats: Stats;
@group(0) @binding(5) var<storage, read> dims: Dims;
@group(0) @binding(6) var<storage, read> step: Step;

// The layer whose block holds tile t (blocks are in layer order).
fn layer_of_tile(t: u32) -> u32 {
    var l = 0u;
    for (var k = 1u; k < dims.layers; k++) {
        if t >= dims.layer[k].tbegin {
            l = k;
        }
    }
    return l;
}

// Component c of v, by selects: a dynamic index into a vector costs a trip through memory on
// some compilers (lavapipe's among them).
fn pick(v: vec4<f32>, c: u32) -> f32 {
    return select(select(v.x, v.y, c == 1u), select(v.z, v.w, c == 3u), c >= 2u);
}

// v with component c replaced by x (selects, as `pick`).
fn with_component(v: vec4<f32>, c: u32, x: f32) -> vec4<f32> {
    return select(v, vec4<f32>(x), vec4<u32>(0u, 1u, 2u, 3u) == vec4<u32>(c));
}

fn work1(at: u32) -> f32 {
    return pick(work[at >> 2u], at & 3u);
}

// The `n` (≤ 4) values of `work` from `at`, zero-padded: one 16-byte load when aligned.
fn work4(at: u32, n: u32) -> vec4<f32> {
    if n == 4u && (at & 3u) == 0u {
        return work[at >> 2u];
    }
    var v = vec4<f32>(0.0);
    for (var c = 0u; c < n; c++) {
        v = with_component(v, c, work1(at + c));
    }
    return v;
}

// δ_l[r, j..j+n) of layer `ly` (`aligned`: its delta rows are on 16-byte words).
fn deltas4(ly: Layer, r: u32, j: u32, n: u32, aligned: bool) -> vec4<f32> {
    if aligned {
        return work[(ly.delta_work + r * ly.outputs + j) >> 2u];
    }
    return work4(ly.delta_work + r * ly.outputs + j, n);
}

// a_l[r, i0..i0+3] with the ones-row: 1.0 at i = inputs (the bias), 0.0 past it.
fn acts4(ly: Layer, r: u32, i0: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    for (var c = 0u; c < 4u; c++) {
        let i = i0 + c;
        var a = select(0.0, 1.0, i == ly.inputs);
        if i < ly.inputs {
            a = work1(ly.act_work + r * ly.inputs + i);
        }
        v = with_component(v, c, a);
    }
    return v;
}

// Tile t's sixteen gradients summed over rows [r0, r1) into split s's partials.
fn gradient(t: u32, s: u32, r0: u32, r1: u32) {
    let ly = dims.layer[layer_of_tile(t)];
    let o = ly.outputs;
    let row_quads = (o + 3u) / 4u;
    let in_block = t - ly.tbegin;
    let ib = in_block / row_quads;
    let i0 = 4u * ib;
    let j = 4u * (in_block - ib * row_quads);
    let n = min(4u, o - j);
    let d_aligned = (o & 3u) == 0u;
    var g0 = vec4<f32>(0.0);
    var g1 = vec4<f32>(0.0);
    var g2 = vec4<f32>(0.0);
    var g3 = vec4<f32>(0.0);
    if (ly.inputs & 3u) == 0u && i0 + 4u <= ly.inputs {
        // Four whole input rows on 16-byte words (the regions are aligned): one load.
        let a4 = (ly.act_work + i0) >> 2u;
        let stride = ly.inputs >> 2u;
        for (var r = r0; r < r1; r++) {
            let a = work[a4 + r * stride];
            let d = deltas4(ly, r, j, n, d_aligned);
            g0 += a.x * d;
            g1 += a.y * d;
            g2 += a.z * d;
            g3 += a.w * d;
        }
    } else {
        for (var r = r0; r < r1; r++) {
            let a = acts4(ly, r, i0);
            let d = deltas4(ly, r, j, n, d_aligned);
            g0 += a.x * d;
            g1 += a.y * d;
            g2 += a.z * d;
            g3 += a.w * d;
        }
    }
    let at = (s * dims.tiles + t) * 4u;
    partials[at] = g0;
    partials[at + 1u] = g1;
    partials[at + 2u] = g2;
    partials[at + 3u] = g3;
}

// The optimizer step of the parameter at `at` (matmul.wgsl's `update_param`).
fn update_param(at: u32, grad: f32) {
    let o = dims.opt;
    var s0 = 0.0;
    var s1 = 0.0;
    if o.kind != OPTIM_SGD {
        s0 = slots[at];
    }
    if o.kind == OPTIM_ADAM {
        s1 = slots[o.slot_stride + at];
    }
    let u = optimizer_update(o.kind, o, step.lr, step.c1, step.c2, params[at], grad, s0, s1);
    params[at] = u.p;
    if o.kind != OPTIM_SGD {
        slots[at] = u.s0;
    }
    if o.kind == OPTIM_ADAM {
        slots[o.slot_stride + at] = u.s1;
    }
}

// The batch's loss and correct count into the running stats (one thread, rows in order).
fn add_stats() {
    let rows = step.rows;
    var loss = 0.0;
    var lost = 0.0;  // Kahan: what the running sum lost, negated
    var correct = 0.0;
    for (var r = 0u; r < rows; r++) {
        let y = work1(dims.loss_work + r) - lost;
        let t = loss + y;
        lost = (t - loss) - y;
        loss = t;
        correct += work1(dims.correct_work + r);
    }
    // Kahan summation into the running total (as loss.wgsl).
    let y = (loss - lost) - stats.loss_compensation;
    let t = stats.loss + y;
    stats.loss_compensation = (t - stats.loss) - y;
    stats.loss = t;
    // Whole numbers below 2^24 (the rows of one batch): exact in f32.
    stats.correct += u32(correct);
    stats.samples += rows;
}

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    if dims.mode == GRADS_APPLY && wg.x == groups.x - 1u {
        if lid == 0u {
            add_stats();
        }
        return;
    }
    let id = wg.x * WG + lid;
    if dims.mode == GRADS_PARTIAL {
        if id >= dims.tiles {
            return;
        }
        // Split s sums rows [s·chunk, (s + 1)·chunk) of this step's batch; a split past the
        // rows (a short final batch) writes 0.
        let rows = step.rows;
        let chunk = (rows + dims.splits - 1u) / dims.splits;
        let r0 = min(wg.y * chunk, rows);
        let r1 = min(r0 + chunk, rows);
        gradient(id, wg.y, r0, r1);
        return;
    }
    // Row c of tile t: gradients (i, j..j+n) of its layer's block.
    let t = id >> 2u;
    let c = id & 3u;
    if t >= dims.tiles {
        return;
    }
    let ly = dims.layer[layer_of_tile(t)];
    let o = ly.outputs;
    let row_quads = (o + 3u) / 4u;
    let in_block = t - ly.tbegin;
    let ib = in_block / row_quads;
    let i = 4u * ib + c;
    if i > ly.inputs {
        return;
    }
    let j = 4u * (in_block - ib * row_quads);
    var g = vec4<f32>(0.0);
    for (var s = 0u; s < dims.splits; s++) {
        g += partials[(s * dims.tiles + t) * 4u + c];
    }
    let at = ly.params + i * o + j;
    for (var k = 0u; k < min(4u, o - j); k++) {
        update_param(at + k, pick(g, k));
    }
}

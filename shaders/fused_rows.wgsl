// CPU twin: the general step's row-wise ops in sequence (`soma::ops::fused` names them):
// `ops::gather::gather_inputs`, per layer `cpu::linalg::gemm` + `ops::matmul::bias_activation`,
// `ops::loss::output_delta`, then per hidden layer, last first, `gemm` +
// `ops::matmul::mul_derivative`. Records: `ops::fused::{RowsDims, RowsLayer}`.
//
// Stage 1 of the fused step: ONE WORKGROUP PER BATCH ROW, threads over a layer's neurons. The
// row is gathered straight from the packed dataset (with the order entry's shift) into
// workgroup memory, run forward through every layer there, turned into outputs, loss and output
// delta, and run backward through every hidden layer: δ_{l-1} = (δ_l · W_lᵀ) ⊙ f'(a_l). The
// weight gradients (stage 2) need each layer's input activations and deltas over the batch, so
// those are written to `work`, with the row's loss and correct flag. Every value is computed by
// one thread in a fixed order: no atomics, and the same inputs give the same bits.
//
// Same math, term for term, as gather.wgsl, matmul.wgsl's epilogues and loss.wgsl (bias added
// after the dot product; softmax from the max-shifted logits; arg-max on the logits).
//
// A layer's product is split two ways over the workgroup: each thread owns a QUAD of four
// consecutive outputs (one 16-byte weight load feeds four FMAs; a warp reads whole rows of W),
// and when a layer has fewer quads than threads, the inputs are split into `WG / quads` slices
// whose vec4 partials are added in slice order (split-K inside the row: 784 inputs in four
// slices of 196 for a 64-wide layer, so that every thread works and the serial chain is short).

override WG: u32 = 64u;
override ACTS: u32 = 1024u;   // f32 of a row's activations: every layer's input, then the output
override DELTAS: u32 = 128u;  // f32 of two delta vectors of the widest layer output (ping-pong)
override PARTS: u32 = 64u;    // vec4 partials of a layer: max(WG, quads of the widest layer)

struct Layer {
    inputs: u32,
    outputs: u32,
    params: u32,      // where W starts in `params` (b follows W)
    act: u32,         // where the layer's input starts in `acts`; its output follows the input
    act_work: u32,    // where its input rows start in `work` (rows × inputs)
    delta_work: u32,  // where its delta rows start in `work` (rows × outputs)
    code: u32,        // activation of its output (ACT_IDENTITY for the logits)
    _pad: u32,
}

struct Dims {
    layers: u32,
    input_kind: u32,   // INPUT_U8 (bytes packed four to a word) or INPUT_F32
    scale: f32,
    shift: f32,
    height: u32,       // image shape for shifted entries; 0 when samples are not images
    width: u32,
    output_kind: u32,  // SOFTMAX_CE, SIGMOID_MSE or LINEAR_MSE
    target_kind: u32,  // TARGET_LABELS or TARGET_VALUES
    loss_work: u32,    // the rows' losses in `work`
    correct_work: u32, // the rows' correct flags (0.0 / 1.0) in `work`
    _pad0: u32,
    _pad1: u32,
    layer: array<Layer, MAX_FUSED_LAYERS>,
}

@group(0) @binding(0) var<storage, read> data: array<u32>;
@group(0) @binding(1) var<storage, read> targets: array<u32>;
@group(0) @binding(2) var<storage, read> index: array<u32>;
@group(0) @binding(3) var<storage, read> params: array<vec4<f32>>;  // padded to 16 bytes
@group(0) @binding(4) var<storage, read_write> work: array<f32>;
@group(0) @binding(5) var<storage, read> dims: Dims;
@group(0) @binding(6) var<storage, read> step: Step;

var<workgroup> acts: array<f32, ACTS>;
var<workgroup> deltas: array<f32, DELTAS>;
var<workgroup> parts: array<vec4<f32>, PARTS>;
var<workgroup> out_max: f32;  // softmax: the row's largest logit
var<workgroup> out_sum: f32;  // softmax: Σ exp(z - max)

// Component c of v, by selects: a dynamic index into a vector costs a trip through memory on
// some compilers (lavapipe's among them).
fn pick(v: vec4<f32>, c: u32) -> f32 {
    return select(select(v.x, v.y, c == 1u), select(v.z, v.w, c == 3u), c >= 2u);
}

// v with component c replaced by x (selects, as `pick`).
fn with_component(v: vec4<f32>, c: u32, x: f32) -> vec4<f32> {
    return select(v, vec4<f32>(x), vec4<u32>(0u, 1u, 2u, 3u) == vec4<u32>(c));
}

fn param(at: u32) -> f32 {
    return pick(params[at >> 2u], at & 3u);
}

// The `n` (≤ 4) parameters from `at`, zero-padded: one 16-byte load when they are aligned.
fn param4(at: u32, n: u32) -> vec4<f32> {
    if n == 4u && (at & 3u) == 0u {
        return params[at >> 2u];
    }
    var v = vec4<f32>(0.0);
    for (var c = 0u; c < n; c++) {
        v = with_component(v, c, param(at + c));
    }
    return v;
}

fn target_value(sample: u32, n: u32, j: u32) -> f32 {
    if dims.target_kind == TARGET_LABELS {
        return select(0.0, 1.0, targets[sample] == j);
    }
    return bitcast<f32>(targets[sample * n + j]);
}

// Arg-max of the target row (first max wins, as `ops::loss::argmax`).
fn target_argmax(sample: u32, n: u32) -> u32 {
    if dims.target_kind == TARGET_LABELS {
        return targets[sample];
    }
    var best = 0u;
    var best_v = F32_LOWEST;
    for (var j = 0u; j < n; j++) {
        let v = target_value(sample, n, j);
        if v > best_v {
            best = j;
            best_v = v;
        }
    }
    return best;
}

// Arg-max of `acts[at..at + n]` (first max wins).
fn acts_argmax(at: u32, n: u32) -> u32 {
    var best = 0u;
    var best_v = F32_LOWEST;
    for (var j = 0u; j < n; j++) {
        if acts[at + j] > best_v {
            best = j;
            best_v = acts[at + j];
        }
    }
    return best;
}

// Input `c` of the sample an order entry names, normalised (gather.wgsl's math).
fn gathered(sample: u32, shift: vec2<i32>, f: u32, c: u32) -> f32 {
    var p = sample * f + c;
    if dims.width != 0u && (shift.x != 0 || shift.y != 0) {
        let y = i32(c / dims.width) - shift.y;
        let x = i32(c % dims.width) - shift.x;
        if y < 0 || x < 0 || y >= i32(dims.height) || x >= i32(dims.width) {
            return dims.shift;
        }
        p = sample * f + u32(y) * dims.width + u32(x);
    }
    var v: f32;
    if dims.input_kind == INPUT_U8 {
        v = f32((data[p >> 2u] >> ((p & 3u) * 8u)) & 0xffu);
    } else {
        v = bitcast<f32>(data[p]);
    }
    return v * dims.scale + dims.shift;
}

// The row's loss and correct flag (thread 0, serially, as loss.wgsl's per-row loop), with the
// softmax's max and sum left in workgroup memory for the deltas.
fn row_loss(r: u32, sample: u32, at: u32, n: u32) {
    var loss = 0.0;
    var correct = false;
    if dims.output_kind == SOFTMAX_CE {
        var mx = F32_LOWEST;
        for (var j = 0u; j < n; j++) {
            mx = max(mx, acts[at + j]);
        }
        var sum = 0.0;
        for (var j = 0u; j < n; j++) {
            sum += exp(acts[at + j] - mx);
        }
        let lse = log(sum);
        for (var j = 0u; j < n; j++) {
            loss += target_value(sample, n, j) * (lse - (acts[at + j] - mx));
        }
        // Arg-max on the logits, before softmax can round two of them together.
        correct = acts_argmax(at, n) == target_argmax(sample, n);
        out_max = mx;
        out_sum = sum;
    } else if dims.output_kind == LINEAR_MSE {
        // Linear outputs are the logits; regression counts nothing as correct.
        for (var j = 0u; j < n; j++) {
            let y = target_value(sample, n, j);
            loss += (acts[at + j] - y) * (acts[at + j] - y);
        }
        loss /= f32(n);
    } else {
        for (var j = 0u; j < n; j++) {
            let a = sigmoid(acts[at + j]);
            let y = target_value(sample, n, j);
            loss += (a - y) * (a - y);
        }
        loss /= f32(n);
        if n == 1u {
            correct = (sigmoid(acts[at]) >= 0.5) == (target_value(sample, n, 0u) >= 0.5);
        } else {
            // Arg-max of the sigmoids (as loss.wgsl, after the outputs replace the logits).
            var best = 0u;
            var best_v = F32_LOWEST;
            for (var j = 0u; j < n; j++) {
                let a = sigmoid(acts[at + j]);
                if a > best_v {
                    best = j;
                    best_v = a;
                }
            }
            correct = best == target_argmax(sample, n);
        }
    }
    work[dims.loss_work + r] = loss;
    work[dims.correct_work + r] = select(0.0, 1.0, correct);
}

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // The grid is folded into 2-D past the per-dimension limit; the row is workgroup-uniform.
    let r = wg.y * groups.x + wg.x;
    if r >= step.rows {
        return;
    }
    let entry = index[step.index_offset + r];
    let sample = sample_index(entry, dims.width != 0u);
    let shift = sample_shift(entry);
    let last = dims.layers - 1u;

    // Gather: the row's inputs into workgroup memory and (for the first weight gradient) `work`.
    let first = dims.layer[0];
    for (var c = lid; c < first.inputs; c += WG) {
        let x = gathered(sample, shift, first.inputs, c);
        acts[first.act + c] = x;
        work[first.act_work + r * first.inputs + c] = x;
    }
    workgroupBarrier();

    // Forward: a_{l+1} = f(a_l · W_l + b_l). Work item t is quad t % quads over input slice
    // t / quads; its partial goes to `parts[t]`.
    for (var l = 0u; l < dims.layers; l++) {
        let ly = dims.layer[l];
        let o = ly.outputs;
        let out_at = ly.act + ly.inputs;
        let next_work = dims.layer[min(l + 1u, last)].act_work;
        let quads = (o + 3u) / 4u;
        let slices = max(1u, WG / quads);
        let chunk = (ly.inputs + slices - 1u) / slices;
        // Rows of W on 16-byte words: every quad is one aligned load (the test hoisted out of
        // the loop).
        let aligned = (o & 3u) == 0u && (ly.params & 3u) == 0u;
        for (var t = lid; t < quads * slices; t += WG) {
            let j = 4u * (t % quads);
            let n = min(4u, o - j);
            let i0 = (t / quads) * chunk;
            let i1 = min(i0 + chunk, ly.inputs);
            var acc = vec4<f32>(0.0);
            if aligned {
                let w4 = (ly.params + j) >> 2u;
                let stride = o >> 2u;
                for (var i = i0; i < i1; i++) {
                    acc += acts[ly.act + i] * params[w4 + i * stride];
                }
            } else {
                for (var i = i0; i < i1; i++) {
                    acc += acts[ly.act + i] * param4(ly.params + i * o + j, n);
                }
            }
            parts[t] = acc;
        }
        workgroupBarrier();
        for (var q = lid; q < quads; q += WG) {
            var z = parts[q];
            for (var sl = 1u; sl < slices; sl++) {
                z += parts[sl * quads + q];
            }
            let j = 4u * q;
            for (var c = 0u; c < min(4u, o - j); c++) {
                let a = act_apply(ly.code, pick(z, c) + param(ly.params + ly.inputs * o + j + c));
                acts[out_at + j + c] = a;
                if l < last {
                    work[next_work + r * o + j + c] = a;
                }
            }
        }
        workgroupBarrier();
    }

    // Output, loss and output delta (ops::loss::output_delta).
    let lo = dims.layer[last];
    let out_at = lo.act + lo.inputs;
    let n = lo.outputs;
    if lid == 0u {
        row_loss(r, sample, out_at, n);
    }
    workgroupBarrier();
    let bf = f32(step.rows);
    for (var j = lid; j < n; j += WG) {
        let y = target_value(sample, n, j);
        var d: f32;
        if dims.output_kind == SOFTMAX_CE {
            let p = exp(acts[out_at + j] - out_max) / out_sum;
            d = (p - y) / bf;
        } else if dims.output_kind == LINEAR_MSE {
            d = 2.0 * (acts[out_at + j] - y) / (bf * f32(n));
        } else {
            let a = sigmoid(acts[out_at + j]);
            d = 2.0 * (a - y) / (bf * f32(n)) * a * (1.0 - a);
        }
        deltas[j] = d;
        work[lo.delta_work + r * n + j] = d;
    }
    workgroupBarrier();

    // Backward: δ_{l-1} = (δ_l · W_lᵀ) ⊙ f'(a_l), a_l being layer l's input; the two halves of
    // `deltas` take turns. Weights are the step's old ones: stage 3 updates them.
    let half_deltas = DELTAS / 2u;
    var cur = 0u;
    for (var l = last; l > 0u; l--) {
        let ly = dims.layer[l];
        let below = dims.layer[l - 1u];
        let nxt = half_deltas - cur;
        for (var i = lid; i < ly.inputs; i += WG) {
            var s = 0.0;
            let row = ly.params + i * ly.outputs;
            for (var j = 0u; j < ly.outputs; j += 4u) {
                let n = min(4u, ly.outputs - j);
                var d = vec4<f32>(0.0);
                for (var c = 0u; c < n; c++) {
                    d = with_component(d, c, deltas[cur + j + c]);
                }
                s += dot(d, param4(row + j, n));
            }
            let d = s * act_derivative_from_output(below.code, acts[ly.act + i]);
            deltas[nxt + i] = d;
            work[below.delta_work + r * ly.inputs + i] = d;
        }
        workgroupBarrier();
        cur = nxt;
    }
}

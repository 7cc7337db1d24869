// CPU twin: `soma::ops::loss::output_delta`; records `LossDims`, `DeviceStats`.
//
// Output layer + loss + gradient in one pass, and the batch's loss and correct count added into a
// small device stats record, so that training accumulates them over many steps with no
// read-back. ONE workgroup: each thread takes rows lid, lid + WG, ...; the partial sums are then
// reduced in workgroup memory and thread 0 adds them into `stats` (compensated, so that a whole
// epoch of f32 additions keeps the precision of the CPU's f64 sum). One workgroup also means no
// float atomics are needed: dispatches touching `stats` are ordered by the pass.

override WG: u32 = 256u;

// The output kind (SOFTMAX_CE / SIGMOID_MSE / LINEAR_MSE) and the target kind (TARGET_LABELS: targets[i] is
// the class of sample i; TARGET_VALUES: targets[i * n + j] are f32 bits; TARGET_NONE:
// prediction), constants from the prelude (`ops::loss::TargetKind`), are pipeline constants:
// software adapters run every arm of a branch on a record field under a lane mask. The record
// keeps its copies (they chose the pipeline).
override OUTPUT: u32 = 0u;
override TARGET: u32 = 0u;

struct Dims {
    n: u32,          // outputs per row
    kind: u32,
    target_kind: u32,
    rows: u32,
    rows_from_step: u32,
    index_offset: u32,  // used when not from the step record
    image: u32,         // 1: the entries index images (and carry shifts), see sample_index
    _pad1: u32,
}

struct Stats {
    loss: f32,
    loss_compensation: f32,
    correct: u32,
    samples: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;    // logits in, outputs out
@group(0) @binding(1) var<storage, read_write> delta: array<f32>;  // dL/dz of the last layer
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read> index: array<u32>;
@group(0) @binding(4) var<storage, read_write> stats: Stats;
@group(0) @binding(5) var<storage, read> dims: Dims;
@group(0) @binding(6) var<storage, read> step: Step;

var<workgroup> loss_part: array<f32, WG>;
var<workgroup> correct_part: array<u32, WG>;

fn target_value(sample: u32, j: u32) -> f32 {
    if TARGET == TARGET_LABELS {
        return select(0.0, 1.0, targets[sample] == j);
    }
    return bitcast<f32>(targets[sample * dims.n + j]);
}

// Arg-max of the target row (first max wins, as `ops::loss::argmax`).
fn target_argmax(sample: u32) -> u32 {
    if TARGET == TARGET_LABELS {
        return targets[sample];
    }
    var best = 0u;
    var best_v = F32_LOWEST;
    for (var j = 0u; j < dims.n; j++) {
        let v = target_value(sample, j);
        if v > best_v {
            best = j;
            best_v = v;
        }
    }
    return best;
}

// Arg-max of this row of `out` (first max wins).
fn out_argmax(base: u32) -> u32 {
    var best = 0u;
    var best_v = F32_LOWEST;
    for (var j = 0u; j < dims.n; j++) {
        let v = out[base + j];
        if v > best_v {
            best = j;
            best_v = v;
        }
    }
    return best;
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32) {
    let rows = select(dims.rows, step.rows, dims.rows_from_step != 0u);
    let first = select(dims.index_offset, step.index_offset, dims.rows_from_step != 0u);
    let n = dims.n;
    let has_targets = TARGET != TARGET_NONE;
    let bf = f32(rows);
    var loss_sum = 0.0;
    var correct = 0u;

    for (var r = lid; r < rows; r += WG) {
        let base = r * n;
        var sample = 0u;
        if has_targets {
            sample = sample_index(index[first + r], dims.image != 0u);
        }
        if OUTPUT == SOFTMAX_CE {
            var mx = F32_LOWEST;
            for (var j = 0u; j < n; j++) {
                mx = max(mx, out[base + j]);
            }
            var sum = 0.0;
            for (var j = 0u; j < n; j++) {
                sum += exp(out[base + j] - mx);
            }
            let lse = log(sum);
            if has_targets {
                // Arg-max on the logits, before softmax can round two of them together.
                if out_argmax(base) == target_argmax(sample) {
                    correct += 1u;
                }
            }
            var row_loss = 0.0;
            for (var j = 0u; j < n; j++) {
                let z = out[base + j] - mx;
                let p = exp(z) / sum;
                out[base + j] = p;
                if has_targets {
                    let y = target_value(sample, j);
                    row_loss += y * (lse - z);
                    delta[base + j] = (p - y) / bf;
                }
            }
            loss_sum += row_loss;
        } else if OUTPUT == LINEAR_MSE {
            // Linear outputs are the logits; regression counts nothing as correct.
            let k = f32(n);
            var row_loss = 0.0;
            for (var j = 0u; j < n; j++) {
                if has_targets {
                    let a = out[base + j];
                    let y = target_value(sample, j);
                    row_loss += (a - y) * (a - y);
                    delta[base + j] = 2.0 * (a - y) / (bf * k);
                }
            }
            loss_sum += row_loss / k;
        } else {
            let k = f32(n);
            var row_loss = 0.0;
            for (var j = 0u; j < n; j++) {
                let a = sigmoid(out[base + j]);
                out[base + j] = a;
                if has_targets {
                    let y = target_value(sample, j);
                    row_loss += (a - y) * (a - y);
                    delta[base + j] = 2.0 * (a - y) / (bf * k) * a * (1.0 - a);
                }
            }
            loss_sum += row_loss / k;
            if has_targets {
                if n == 1u {
                    if (out[base] >= 0.5) == (target_value(sample, 0u) >= 0.5) {
                        correct += 1u;
                    }
                } else if out_argmax(base) == target_argmax(sample) {
                    correct += 1u;
                }
            }
        }
    }

    loss_part[lid] = loss_sum;
    correct_part[lid] = correct;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if lid < s {
            loss_part[lid] += loss_part[lid + s];
            correct_part[lid] += correct_part[lid + s];
        }
        workgroupBarrier();
    }
    if lid == 0u && has_targets {
        // Kahan summation into the running total.
        let y = loss_part[0] - stats.loss_compensation;
        let t = stats.loss + y;
        stats.loss_compensation = (t - stats.loss) - y;
        stats.loss = t;
        stats.correct += correct_part[0];
        stats.samples += rows;
    }
}

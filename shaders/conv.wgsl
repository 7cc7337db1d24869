// CPU twin: `soma::ops::conv` (`conv2d`, `conv2d_input_grad`, `conv2d_param_grads`; the
// epilogues are `Activation::apply`, `derivative_from_output` and `ops::optim::update`).
// Record: `soma::ops::conv::ConvDims`.
//
// A stride-1 k×k convolution on batches of C·H·W rows (channel-major), in three modes (the
// override constant MODE, so that each pipeline holds one):
//   CONV_FORWARD     c[n, co, oy, ox] = act(bias[co] + Σ_{ci,ky,kx} w[co, ci, ky, kx] · x[n, ci, oy+ky-p, ox+kx-p])
//   CONV_INPUT_GRAD  c[n, ci, iy, ix] = (Σ_{co,ky,kx} w[co, ci, ky, kx] · dy[n, co, iy+p-ky, ix+p-kx]) · f'(aux[n, ci, iy, ix])
//   CONV_UPDATE      the weight and bias gradients, summed over the batch and the output plane
//                    by a workgroup's threads, then handed to the optimizer, which updates them
//                    in place (as the dense layers' weight-gradient matmul does in its epilogue).
// Values outside the input (padding) read as zeros.
//
// The kernels are register-blocked, as the matmul is: what they cost on software adapters
// (lavapipe, SwiftShader) is the loads, each a per-lane gather with bounds checks, not the
// multiply-adds. The forward pass and the input gradient are one correlation (`correlate`):
// a thread computes CONV_CHANNELS output channels × CONV_PIXELS neighbouring pixels of a row,
// sliding a window of CONV_PIXELS source values along the kernel row, so that each tap costs one
// source load and CONV_CHANNELS weight loads for 32 multiply-adds. The update's workgroup owns CONV_UPDATE_CHANNELS output channels ×
// CONV_TAPS taps of a kernel row: each output position costs CONV_UPDATE_CHANNELS loads of dy
// and one of x for 32 multiply-adds.
//
// Work is handed out so that a workgroup's channel block is the same for all its threads.

override WG: u32 = 64u;
override MODE: u32 = 0u;
override ACT: u32 = 0u;
override OPTIM: u32 = 0u;

struct Dims {
    c_in: u32,
    h: u32,
    w: u32,
    c_out: u32,
    oh: u32,
    ow: u32,
    k: u32,
    pad: u32,
    rows: u32,
    rows_from_step: u32,
    slot_base: u32,    // CONV_UPDATE: where this layer's optimizer state starts in `slots`
    _pad: u32,
    opt: OptimParams,  // CONV_UPDATE: the optimizer
}

// forward, update: the input x; input grad: the output gradient dy.
@group(0) @binding(0) var<storage, read> a: array<f32>;
// forward, input grad: the layer's parameters (w: C_out × C_in·k·k, then the C_out biases);
// update: the output gradient dy.
@group(0) @binding(1) var<storage, read> b: array<f32>;
// forward: the output; input grad: dx; update: the layer's parameters, updated in place.
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
// input grad: the activations the input gradient's f' is taken from (the input x itself).
@group(0) @binding(3) var<storage, read> aux: array<f32>;
@group(0) @binding(4) var<storage, read_write> slots: array<f32>;  // update only
@group(0) @binding(5) var<storage, read> dims: Dims;
@group(0) @binding(6) var<storage, read> step: Step;

// The update's per-thread sums (two vec4s of taps per output channel), added in a tree.
var<workgroup> partial: array<array<vec4<f32>, 2u * CONV_UPDATE_CHANNELS>, WG>;

// Value `ix` of the row of `a` that starts at `row` (`width` wide), or zero past its ends
// (padding). The address is clamped, so that every lane loads without a branch.
fn source(row: u32, ix: i32, width: u32) -> f32 {
    let v = a[row + u32(clamp(ix, 0, i32(width) - 1))];
    return select(0.0, v, ix >= 0 && ix < i32(width));
}

// A correlation of source `a` (src_c channels of src_h × src_w) with the weights in `b`, into
// out_c channels of out_h × out_w:
//   out[n, oc, y, x] = Σ_{lc, ky, kx} b[w(oc, lc, ky, kx)] · a[n, lc, y + ky - pad, x + kx - pad]
// with the weight index w = oc·w_out + lc·w_loop + w_first + ky·w_ky + kx·w_kx.
struct Corr {
    src_c: u32,
    src_h: u32,
    src_w: u32,
    out_c: u32,
    out_h: u32,
    out_w: u32,
    k: u32,
    pad: u32,
    w_out: i32,
    w_loop: i32,
    w_first: i32,
    w_ky: i32,
    w_kx: i32,
    bias: u32,  // forward: where the biases start in `b`
}

fn forward_corr(d: Dims) -> Corr {
    let k2 = d.k * d.k;
    return Corr(d.c_in, d.h, d.w, d.c_out, d.oh, d.ow, d.k, d.pad,
        i32(d.c_in * k2), i32(k2), 0, i32(d.k), 1, d.c_out * d.c_in * k2);
}

// The input gradient is the forward correlation of dy with the kernel turned round (tap
// (ky, kx) reads weight (k-1-ky, k-1-kx)), the channels' roles swapped and padding k-1-p.
fn input_grad_corr(d: Dims) -> Corr {
    let k2 = d.k * d.k;
    return Corr(d.c_out, d.oh, d.ow, d.c_in, d.h, d.w, d.k, d.k - 1u - d.pad,
        i32(k2), i32(d.c_in * k2), i32(k2) - 1, -i32(d.k), -1, 0u);
}

// Channel oc's pixels at .. at + 3 (those of x0 … x0 + 3 inside the row), through the epilogue:
// forward act(sum + bias), input grad sum · f'(aux).
fn store_pixels(at: u32, oc: u32, x0: u32, r: Corr, sums: vec4<f32>) {
    if oc >= r.out_c {
        return;
    }
    var bias = 0.0;
    if MODE == CONV_FORWARD {
        bias = b[r.bias + oc];
    }
    for (var j = 0u; j < min(CONV_PIXELS, r.out_w - x0); j++) {
        let i = at + j;
        if MODE == CONV_FORWARD {
            c[i] = act_apply(ACT, sums[j] + bias);
        } else {
            c[i] = sums[j] * act_derivative_from_output(ACT, aux[i]);
        }
    }
}

// Workgroup g: a block of CONV_CHANNELS output channels (g mod blocks) for WG threads, each
// CONV_PIXELS neighbouring pixels (x0 …) of an output row (n, y). Per tap, a window of the
// CONV_PIXELS source values the pixels read slides one along the row: one load, and one
// weight per channel, for CONV_CHANNELS · CONV_PIXELS multiply-adds. Channels past the last
// are the last again and pixels past the row read clamped addresses: computed, never stored,
// so that every thread runs the same loop.
fn correlate(g: u32, lid: u32, rows: u32, r: Corr) {
    let blocks = (r.out_c + CONV_CHANNELS - 1u) / CONV_CHANNELS;
    let quads = (r.out_w + CONV_PIXELS - 1u) / CONV_PIXELS;
    let per_row = r.out_h * quads;
    let q = g / blocks * WG + lid;
    if q >= rows * per_row {
        return;
    }
    let oc0 = g % blocks * CONV_CHANNELS;
    let n = q / per_row;
    let y = q % per_row / quads;
    let x0 = q % quads * CONV_PIXELS;
    let last = vec4<i32>(i32(r.out_c) - 1);
    let up = vec4<i32>(0, 1, 2, 3);
    let lo = min(vec4<i32>(i32(oc0)) + up, last) * r.w_out + r.w_first;
    let hi = min(vec4<i32>(i32(oc0) + 4) + up, last) * r.w_out + r.w_first;
    let ix0 = i32(x0) - i32(r.pad);
    // Named accumulators, not an array (naga would emit an array as function memory): channel
    // oc0 + j, its four pixels.
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);
    for (var lc = 0u; lc < r.src_c; lc++) {
        let src_plane = (n * r.src_c + lc) * r.src_h;
        let at_lc = i32(lc) * r.w_loop;
        for (var ky = 0u; ky < r.k; ky++) {
            let iy = i32(y + ky) - i32(r.pad);
            if iy < 0 || iy >= i32(r.src_h) {
                continue;
            }
            let row = (src_plane + u32(iy)) * r.src_w;
            let tap_lo = lo + (at_lc + i32(ky) * r.w_ky);
            let tap_hi = hi + (at_lc + i32(ky) * r.w_ky);
            // At tap kx the window holds source columns ix0 + kx … ix0 + kx + 3.
            var v = vec4<f32>(0.0, source(row, ix0, r.src_w), source(row, ix0 + 1, r.src_w),
                source(row, ix0 + 2, r.src_w));
            for (var kx = 0u; kx < r.k; kx++) {
                v = vec4<f32>(v.yzw, source(row, ix0 + 3 + i32(kx), r.src_w));
                let wl = tap_lo + i32(kx) * r.w_kx;
                let wh = tap_hi + i32(kx) * r.w_kx;
                acc0 += b[wl.x] * v;
                acc1 += b[wl.y] * v;
                acc2 += b[wl.z] * v;
                acc3 += b[wl.w] * v;
                acc4 += b[wh.x] * v;
                acc5 += b[wh.y] * v;
                acc6 += b[wh.z] * v;
                acc7 += b[wh.w] * v;
            }
        }
    }
    let plane = r.out_h * r.out_w;
    let at = ((n * r.out_c + oc0) * r.out_h + y) * r.out_w + x0;
    store_pixels(at, oc0, x0, r, acc0);
    store_pixels(at + plane, oc0 + 1u, x0, r, acc1);
    store_pixels(at + 2u * plane, oc0 + 2u, x0, r, acc2);
    store_pixels(at + 3u * plane, oc0 + 3u, x0, r, acc3);
    store_pixels(at + 4u * plane, oc0 + 4u, x0, r, acc4);
    store_pixels(at + 5u * plane, oc0 + 5u, x0, r, acc5);
    store_pixels(at + 6u * plane, oc0 + 6u, x0, r, acc6);
    store_pixels(at + 7u * plane, oc0 + 7u, x0, r, acc7);
}

// The optimizer step of parameter `p` with gradient `grad` (one thread per parameter).
fn apply_update(p: u32, grad: f32, d: Dims) {
    let o = d.opt;
    let at = d.slot_base + p;
    var s0 = 0.0;
    var s1 = 0.0;
    if OPTIM != OPTIM_SGD {
        s0 = slots[at];
    }
    if OPTIM == OPTIM_ADAM {
        s1 = slots[o.slot_stride + at];
    }
    let u = optimizer_update(OPTIM, o, step.lr, step.c1, step.c2, c[p], grad, s0, s1);
    if OPTIM != OPTIM_SGD {
        slots[at] = u.s0;
    }
    if OPTIM == OPTIM_ADAM {
        slots[o.slot_stride + at] = u.s1;
    }
    c[p] = u.p;
}

// Workgroup g: CONV_UPDATE_CHANNELS output channels (co0 …) × CONV_TAPS neighbouring taps
// (ci, ky, kx0 …) of a kernel row (all of a row up to 8 wide), or (the last groups) the biases of
// CONV_UPDATE_CHANNELS channels. Its threads take whole output rows (n, oy) each, so that the
// index arithmetic (integer division above all, scalarised on software adapters) is per row;
// along the row a window of the CONV_TAPS input values the taps read (two vec4s) slides one per
// output: one load of x and CONV_UPDATE_CHANNELS of dy for 32 multiply-adds. A bias reads a
// one at tap 0 instead. The shares are added in a tree, then a thread per parameter hands its
// gradient to the optimizer. Every thread reaches every barrier: the bounds only zero a
// thread's share.
fn update(g: u32, lid: u32, d: Dims, rows: u32) {
    let co_blocks = (d.c_out + CONV_UPDATE_CHANNELS - 1u) / CONV_UPDATE_CHANNELS;
    let k_blocks = (d.k + CONV_TAPS - 1u) / CONV_TAPS;
    let weight_groups = co_blocks * d.c_in * d.k * k_blocks;
    let is_bias = g >= weight_groups;
    let kernel_row = g / k_blocks;  // (co block, ci, ky)
    let cob = select(kernel_row / (d.c_in * d.k), g - weight_groups, is_bias);
    let ci = kernel_row / d.k % d.c_in;
    let ky = kernel_row % d.k;
    let kx0 = g % k_blocks * CONV_TAPS;
    let co0 = cob * CONV_UPDATE_CHANNELS;
    let last = d.c_out - 1u;
    let co = min(vec4<u32>(co0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(last));
    // Groups past the last (a grid folded into 2-D) add nothing.
    let out_rows = select(0u, rows * d.oh, cob < co_blocks);
    let plane = d.oh * d.ow;
    let ix0 = i32(kx0) - i32(d.pad);
    // Channel co0 + j: taps kx0 … kx0 + 3 in lo_j, kx0 + 4 … kx0 + 7 in hi_j.
    var lo0 = vec4<f32>(0.0);
    var lo1 = vec4<f32>(0.0);
    var lo2 = vec4<f32>(0.0);
    var lo3 = vec4<f32>(0.0);
    var hi0 = vec4<f32>(0.0);
    var hi1 = vec4<f32>(0.0);
    var hi2 = vec4<f32>(0.0);
    var hi3 = vec4<f32>(0.0);
    for (var r = lid; r < out_rows; r += WG) {
        let n = r / d.oh;
        let oy = r % d.oh;
        let dy_at = vec4<u32>((n * d.c_out * d.oh + oy) * d.ow) + co * plane;
        var lo = vec4<f32>(1.0, 0.0, 0.0, 0.0);
        var hi = vec4<f32>(0.0);
        var x_row = 0u;
        if !is_bias {
            let iy = i32(oy + ky) - i32(d.pad);
            if iy < 0 || iy >= i32(d.h) {
                continue;
            }
            x_row = ((n * d.c_in + ci) * d.h + u32(iy)) * d.w;
            // At output ox the window holds input columns ix0 + ox … ix0 + ox + 7.
            lo = vec4<f32>(0.0, source(x_row, ix0, d.w), source(x_row, ix0 + 1, d.w),
                source(x_row, ix0 + 2, d.w));
            hi = vec4<f32>(source(x_row, ix0 + 3, d.w), source(x_row, ix0 + 4, d.w),
                source(x_row, ix0 + 5, d.w), source(x_row, ix0 + 6, d.w));
        }
        for (var ox = 0u; ox < d.ow; ox++) {
            if !is_bias {
                lo = vec4<f32>(lo.yzw, hi.x);
                hi = vec4<f32>(hi.yzw, source(x_row, ix0 + 7 + i32(ox), d.w));
            }
            let at = dy_at + vec4<u32>(ox);
            let g0 = b[at.x];
            let g1 = b[at.y];
            let g2 = b[at.z];
            let g3 = b[at.w];
            lo0 += g0 * lo;
            hi0 += g0 * hi;
            lo1 += g1 * lo;
            hi1 += g1 * hi;
            lo2 += g2 * lo;
            hi2 += g2 * hi;
            lo3 += g3 * lo;
            hi3 += g3 * hi;
        }
    }
    partial[lid] = array<vec4<f32>, 2u * CONV_UPDATE_CHANNELS>(lo0, hi0, lo1, hi1, lo2, hi2, lo3, hi3);
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if lid < s {
            for (var j = 0u; j < 2u * CONV_UPDATE_CHANNELS; j++) {
                partial[lid][j] += partial[lid + s][j];
            }
        }
        workgroupBarrier();
    }
    // Thread t: channel co0 + t / CONV_TAPS, tap kx0 + t % CONV_TAPS.
    let j = lid / CONV_TAPS;
    let oc = co0 + j;
    let tap = lid % CONV_TAPS;
    if lid >= CONV_UPDATE_CHANNELS * CONV_TAPS || cob >= co_blocks || oc >= d.c_out {
        return;
    }
    let grad = partial[0][2u * j + tap / 4u][tap % 4u];
    if is_bias {
        if tap == 0u {
            apply_update(d.c_out * d.c_in * d.k * d.k + oc, grad, d);
        }
    } else if kx0 + tap < d.k {
        apply_update(((oc * d.c_in + ci) * d.k + ky) * d.k + kx0 + tap, grad, d);
    }
}

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let d = dims;
    let rows = rows_of(d.rows, d.rows_from_step, step);
    let g = wid.y * groups.x + wid.x;
    if MODE == CONV_UPDATE {
        update(g, lid, d, rows);
    } else if MODE == CONV_FORWARD {
        correlate(g, lid, rows, forward_corr(d));
    } else {
        correlate(g, lid, rows, input_grad_corr(d));
    }
}

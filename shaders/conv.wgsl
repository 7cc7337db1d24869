// CPU twin: `soma::ops::conv` (`conv2d`, `conv2d_input_grad`, `conv2d_param_grads`; the
// epilogues are `Activation::apply`, `derivative_from_output` and `ops::optim::update`).
// Record: `soma::ops::conv::ConvDims`.
//
// A stride-1 k×k convolution on batches of C·H·W rows (channel-major), in three modes (the
// override constant MODE, so that each pipeline holds one):
//   CONV_FORWARD     one thread per output value:
//                    c[n, co, oy, ox] = act(bias[co] + Σ_{ci,ky,kx} w[co, ci, ky, kx] · x[n, ci, oy+ky-p, ox+kx-p])
//   CONV_INPUT_GRAD  one thread per input value:
//                    c[n, ci, iy, ix] = (Σ_{co,ky,kx} w[co, ci, ky, kx] · dy[n, co, iy+p-ky, ix+p-kx]) · f'(aux[n, ci, iy, ix])
//   CONV_UPDATE      one workgroup per parameter (the weights row-major, then the biases): its
//                    gradient summed over the batch and the output plane by the workgroup's
//                    threads, then handed to the optimizer, which updates it in place (as the
//                    dense layers' weight-gradient matmul does in its epilogue).
// Taps that fall on padding are skipped: they would multiply a zero. The sums run in the CPU
// reference's order (forward and input gradient); the update's is split over WG threads.

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

var<workgroup> partial: array<f32, WG>;

fn forward(t: u32, d: Dims, rows: u32) {
    let plane = d.oh * d.ow;
    let per_row = d.c_out * plane;
    if t >= rows * per_row {
        return;
    }
    let n = t / per_row;
    let co = (t % per_row) / plane;
    let oy = (t % plane) / d.ow;
    let ox = t % d.ow;
    let taps = d.c_in * d.k * d.k;
    // The taps whose column ix = ox + kx - p lies inside the row, found once, not per tap.
    let kx_first = u32(max(i32(d.pad) - i32(ox), 0));
    let kx_last = u32(clamp(i32(d.w + d.pad) - i32(ox), 0, i32(d.k)));
    var acc = b[d.c_out * taps + co];
    for (var ci = 0u; ci < d.c_in; ci++) {
        for (var ky = 0u; ky < d.k; ky++) {
            let iy = i32(oy + ky) - i32(d.pad);
            if iy < 0 || iy >= i32(d.h) {
                continue;
            }
            let x_row = (n * d.c_in + ci) * d.h * d.w + u32(iy) * d.w;
            let w_row = co * taps + (ci * d.k + ky) * d.k;
            for (var kx = kx_first; kx < kx_last; kx++) {
                acc += b[w_row + kx] * a[x_row + ox + kx - d.pad];
            }
        }
    }
    c[t] = act_apply(ACT, acc);
}

fn input_grad(t: u32, d: Dims, rows: u32) {
    let plane = d.h * d.w;
    let per_row = d.c_in * plane;
    if t >= rows * per_row {
        return;
    }
    let n = t / per_row;
    let ci = (t % per_row) / plane;
    let iy = (t % plane) / d.w;
    let ix = t % d.w;
    let taps = d.c_in * d.k * d.k;
    // The taps whose output column ox = ix + p - kx lies inside the output row.
    let kx_first = u32(max(i32(ix + d.pad) + 1 - i32(d.ow), 0));
    let kx_last = min(ix + d.pad + 1u, d.k);
    var acc = 0.0;
    for (var co = 0u; co < d.c_out; co++) {
        for (var ky = 0u; ky < d.k; ky++) {
            // The output that read this value through tap (ky, kx): oy + ky - p = iy.
            let oy = i32(iy + d.pad) - i32(ky);
            if oy < 0 || oy >= i32(d.oh) {
                continue;
            }
            let dy_row = (n * d.c_out + co) * d.oh * d.ow + u32(oy) * d.ow;
            let w_row = co * taps + (ci * d.k + ky) * d.k;
            for (var kx = kx_first; kx < kx_last; kx++) {
                acc += b[w_row + kx] * a[dy_row + ix + d.pad - kx];
            }
        }
    }
    c[t] = acc * act_derivative_from_output(ACT, aux[t]);
}

// Workgroup `p`'s parameter: its gradient summed by the WG threads (each a strided share of the
// batch × output plane), the shares added in a tree, then the optimizer step by thread 0.
// Every thread reaches every barrier: the bounds checks only zero a thread's share.
fn update(p: u32, lid: u32, d: Dims, rows: u32) {
    let taps = d.c_in * d.k * d.k;
    let weights = d.c_out * taps;
    let is_bias = p >= weights;
    let co = select(p / taps, p - weights, is_bias);
    let tap = p % taps;
    let ci = tap / (d.k * d.k);
    let ky = (tap / d.k) % d.k;
    let kx = tap % d.k;
    // Each thread takes whole output rows (n, oy), so that the index arithmetic, integer
    // divisions above all (scalarised on software adapters), is per row, not per term.
    let out_rows = select(0u, rows * d.oh, p < weights + d.c_out);
    var acc = 0.0;
    for (var r = lid; r < out_rows; r += WG) {
        let n = r / d.oh;
        let oy = r % d.oh;
        let dy_row = ((n * d.c_out + co) * d.oh + oy) * d.ow;
        if is_bias {
            for (var ox = 0u; ox < d.ow; ox++) {
                acc += b[dy_row + ox];
            }
            continue;
        }
        let iy = i32(oy + ky) - i32(d.pad);
        if iy < 0 || iy >= i32(d.h) {
            continue;
        }
        let x_row = ((n * d.c_in + ci) * d.h + u32(iy)) * d.w;
        // The output columns whose tap kx lands inside the row: ix = ox + kx - p in [0, w).
        let first = u32(max(i32(d.pad) - i32(kx), 0));
        let last = u32(clamp(i32(d.w) + i32(d.pad) - i32(kx), 0, i32(d.ow)));
        for (var ox = first; ox < last; ox++) {
            acc += b[dy_row + ox] * a[x_row + ox + kx - d.pad];
        }
    }
    partial[lid] = acc;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if lid < s {
            partial[lid] += partial[lid + s];
        }
        workgroupBarrier();
    }
    if lid != 0u || p >= weights + d.c_out {
        return;
    }
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
    let u = optimizer_update(OPTIM, o, step.lr, step.c1, step.c2, c[p], partial[0], s0, s1);
    if OPTIM != OPTIM_SGD {
        slots[at] = u.s0;
    }
    if OPTIM == OPTIM_ADAM {
        slots[o.slot_stride + at] = u.s1;
    }
    c[p] = u.p;
}

@compute @workgroup_size(WG)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let d = dims;
    let rows = rows_of(d.rows, d.rows_from_step, step);
    if MODE == CONV_UPDATE {
        update(wid.y * groups.x + wid.x, lid, d, rows);
        return;
    }
    let t = gid.y * groups.x * WG + gid.x;
    if MODE == CONV_FORWARD {
        forward(t, d, rows);
    } else {
        input_grad(t, d, rows);
    }
}

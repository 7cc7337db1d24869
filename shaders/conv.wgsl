// CPU twin: `soma::ops::conv` (`conv2d`, `conv2d_input_grad`, `conv2d_param_grads`; the
// epilogues are `Activation::apply`, `derivative_from_output` and `ops::optim::update`).
// Record: `soma::ops::conv::ConvDims`.
//
// A stride-1 k×k convolution on batches of C·H·W rows (channel-major), in three modes (the
// override constant MODE, so that each pipeline holds one):
//   CONV_FORWARD     a thread per output pixel and block of CONV_BLOCK output channels:
//                    c[n, co, oy, ox] = act(bias[co] + Σ_{ci,ky,kx} w[co, ci, ky, kx] · x[n, ci, oy+ky-p, ox+kx-p])
//   CONV_INPUT_GRAD  a thread per input pixel and block of CONV_BLOCK input channels:
//                    c[n, ci, iy, ix] = (Σ_{co,ky,kx} w[co, ci, ky, kx] · dy[n, co, iy+p-ky, ix+p-kx]) · f'(aux[n, ci, iy, ix])
//   CONV_UPDATE      a workgroup per block of CONV_BLOCK taps along a kernel row, and one per
//                    bias: their gradients summed over the batch and the output plane by the
//                    workgroup's threads, then handed to the optimizer, which updates them in
//                    place (as the dense layers' weight-gradient matmul does in its epilogue).
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

var<workgroup> partial: array<vec4<f32>, WG>;

// Channels c0 … c0 + 3 (CONV_BLOCK of them): those past `count` are the last one again, computed
// but never stored, so that every thread runs the same loop.
fn channel_block(c0: u32, count: u32) -> vec4<u32> {
    let last = count - 1u;
    return vec4<u32>(c0, min(c0 + 1u, last), min(c0 + 2u, last), min(c0 + 3u, last));
}

// A thread per output pixel and block of CONV_BLOCK output channels: each input value loaded
// serves the block's four sums.
fn forward(t: u32, d: Dims, rows: u32) {
    let plane = d.oh * d.ow;
    let per_row = (d.c_out + CONV_BLOCK - 1u) / CONV_BLOCK * plane;
    if t >= rows * per_row {
        return;
    }
    let n = t / per_row;
    let co0 = (t % per_row) / plane * CONV_BLOCK;
    let at = t % plane;
    let oy = at / d.ow;
    let ox = at % d.ow;
    let co = channel_block(co0, d.c_out);
    let taps = d.c_in * d.k * d.k;
    let w_rows = co * taps;
    // The taps whose column ix = ox + kx - p lies inside the row, found once, not per tap.
    let kx_first = u32(max(i32(d.pad) - i32(ox), 0));
    let kx_last = u32(clamp(i32(d.w + d.pad) - i32(ox), 0, i32(d.k)));
    let bias = d.c_out * taps;
    var acc = vec4<f32>(b[bias + co.x], b[bias + co.y], b[bias + co.z], b[bias + co.w]);
    for (var ci = 0u; ci < d.c_in; ci++) {
        for (var ky = 0u; ky < d.k; ky++) {
            let iy = i32(oy + ky) - i32(d.pad);
            if iy < 0 || iy >= i32(d.h) {
                continue;
            }
            let x_row = (n * d.c_in + ci) * d.h * d.w + u32(iy) * d.w;
            let tap_row = (ci * d.k + ky) * d.k;
            for (var kx = kx_first; kx < kx_last; kx++) {
                let x = a[x_row + ox + kx - d.pad];
                let o = tap_row + kx;
                acc += vec4<f32>(b[w_rows.x + o], b[w_rows.y + o], b[w_rows.z + o], b[w_rows.w + o]) * x;
            }
        }
    }
    let out = (n * d.c_out + co0) * plane + at;
    for (var j = 0u; j < min(CONV_BLOCK, d.c_out - co0); j++) {
        c[out + j * plane] = act_apply(ACT, acc[j]);
    }
}

// A thread per input pixel and block of CONV_BLOCK input channels: each output gradient loaded
// serves the block's four sums.
fn input_grad(t: u32, d: Dims, rows: u32) {
    let plane = d.h * d.w;
    let per_row = (d.c_in + CONV_BLOCK - 1u) / CONV_BLOCK * plane;
    if t >= rows * per_row {
        return;
    }
    let n = t / per_row;
    let ci0 = (t % per_row) / plane * CONV_BLOCK;
    let at = t % plane;
    let iy = at / d.w;
    let ix = at % d.w;
    let k2 = d.k * d.k;
    let ci_taps = channel_block(ci0, d.c_in) * k2;
    let taps = d.c_in * k2;
    // The taps whose output column ox = ix + p - kx lies inside the output row.
    let kx_first = u32(max(i32(ix + d.pad) + 1 - i32(d.ow), 0));
    let kx_last = min(ix + d.pad + 1u, d.k);
    var acc = vec4<f32>(0.0);
    for (var co = 0u; co < d.c_out; co++) {
        for (var ky = 0u; ky < d.k; ky++) {
            // The output that read this value through tap (ky, kx): oy + ky - p = iy.
            let oy = i32(iy + d.pad) - i32(ky);
            if oy < 0 || oy >= i32(d.oh) {
                continue;
            }
            let dy_row = (n * d.c_out + co) * d.oh * d.ow + u32(oy) * d.ow;
            let w_row = co * taps + ky * d.k;
            for (var kx = kx_first; kx < kx_last; kx++) {
                let g = a[dy_row + ix + d.pad - kx];
                let o = w_row + kx;
                acc += vec4<f32>(b[o + ci_taps.x], b[o + ci_taps.y], b[o + ci_taps.z], b[o + ci_taps.w]) * g;
            }
        }
    }
    let out = (n * d.c_in + ci0) * plane + at;
    for (var j = 0u; j < min(CONV_BLOCK, d.c_in - ci0); j++) {
        let i = out + j * plane;
        c[i] = acc[j] * act_derivative_from_output(ACT, aux[i]);
    }
}

// The optimizer step of parameter `p` (thread 0 of its workgroup) with gradient `grad`.
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

// Workgroup `g`: a block of CONV_BLOCK neighbouring taps (co, ci, ky, kx0 … kx0 + 3) of a kernel
// row, or (the last C_out groups) one bias. Its threads take whole output rows (n, oy) each, so
// that the index arithmetic (integer division above all, scalarised on software adapters) is
// per row, and each output gradient loaded serves the block's four sums; the shares are added
// in a tree, then thread 0 hands each gradient to the optimizer. Every thread reaches every
// barrier: the bounds only zero a thread's share.
fn update(g: u32, lid: u32, d: Dims, rows: u32) {
    let k_blocks = (d.k + CONV_BLOCK - 1u) / CONV_BLOCK;
    let row_groups = d.c_out * d.c_in * d.k;
    let weight_groups = row_groups * k_blocks;
    let is_bias = g >= weight_groups;
    let kernel_row = g / k_blocks;  // (co, ci, ky)
    let co = select(kernel_row / (d.c_in * d.k), g - weight_groups, is_bias);
    let ci = (kernel_row / d.k) % d.c_in;
    let ky = kernel_row % d.k;
    let kx0 = (g % k_blocks) * CONV_BLOCK;
    let out_rows = select(0u, rows * d.oh, g < weight_groups + d.c_out);
    var acc = vec4<f32>(0.0);
    for (var r = lid; r < out_rows; r += WG) {
        let n = r / d.oh;
        let oy = r % d.oh;
        let dy_row = ((n * d.c_out + co) * d.oh + oy) * d.ow;
        if is_bias {
            for (var ox = 0u; ox < d.ow; ox++) {
                acc.x += b[dy_row + ox];
            }
            continue;
        }
        let iy = i32(oy + ky) - i32(d.pad);
        if iy < 0 || iy >= i32(d.h) {
            continue;
        }
        let x_row = ((n * d.c_in + ci) * d.h + u32(iy)) * d.w;
        // Tap kx0 + j reads column ox + kx0 + j - p: a zero outside the row (or past the kernel).
        let kx = vec4<i32>(i32(kx0)) + vec4<i32>(0, 1, 2, 3);
        let inside_kernel = kx < vec4<i32>(i32(d.k));
        let last = i32(d.w) - 1;
        for (var ox = 0u; ox < d.ow; ox++) {
            let ix = vec4<i32>(i32(ox) - i32(d.pad)) + kx;
            let ok = inside_kernel & (ix >= vec4<i32>(0)) & (ix <= vec4<i32>(last));
            let at = x_row + vec4<u32>(clamp(ix, vec4<i32>(0), vec4<i32>(last)));
            let x = vec4<f32>(a[at.x], a[at.y], a[at.z], a[at.w]);
            acc += select(vec4<f32>(0.0), x, ok) * b[dy_row + ox];
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
    if lid != 0u || g >= weight_groups + d.c_out {
        return;
    }
    let sums = partial[0];
    if is_bias {
        apply_update(d.c_out * d.c_in * d.k * d.k + co, sums.x, d);
        return;
    }
    let first = kernel_row * d.k + kx0;  // = co·C_in·k² + (ci·k + ky)·k + kx0
    for (var j = 0u; j < min(CONV_BLOCK, d.k - kx0); j++) {
        apply_update(first + j, sums[j], d);
    }
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

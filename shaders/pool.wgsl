// CPU twin: `soma::ops::pool` (`max_pool`, `max_pool_backward`; the backward's epilogue is
// `Activation::derivative_from_output`). Record: `soma::ops::pool::PoolDims`.
//
// 2×2, stride-2 max-pooling on batches of C·H·W rows (channel-major, H and W even), by MODE:
//   POOL_FORWARD   one thread per output value: the window's maximum, and where it is (its
//                  index in the sample's input row) in `argmax`. Ties go to the first in
//                  row-major order; a NaN wins over any number (the first NaN), as on the CPU.
//   POOL_BACKWARD  one thread per output value: its gradient to the window's arg-max, zeros to
//                  the rest of the window, each times f'(aux) (the activation of the layer
//                  before the pool, taken from its output, the pool's input). The windows do not
//                  overlap, so every input value is written once and nothing is added twice.

override WG: u32 = 64u;
override MODE: u32 = 0u;
override ACT: u32 = 0u;

struct Dims {
    c: u32,
    h: u32,   // the input's height and width
    w: u32,
    rows: u32,
    rows_from_step: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;              // forward: x; backward: dy
@group(0) @binding(1) var<storage, read_write> c: array<f32>;        // forward: y; backward: dx
@group(0) @binding(2) var<storage, read_write> argmax: array<u32>;   // written forward, read backward
@group(0) @binding(3) var<storage, read> aux: array<f32>;            // backward: the pool's input
@group(0) @binding(4) var<storage, read> dims: Dims;
@group(0) @binding(5) var<storage, read> step: Step;

// Output value t's window: its first input (row-major in the sample's row), and where the
// sample's row starts.
struct Window {
    first: u32,
    row: u32,
}

fn window_of(t: u32, d: Dims) -> Window {
    let oh = d.h / 2u;
    let ow = d.w / 2u;
    let plane = oh * ow;
    let per_row = d.c * plane;
    let n = t / per_row;
    let ch = (t % per_row) / plane;
    let oy = (t % plane) / ow;
    let ox = t % ow;
    return Window((ch * d.h + 2u * oy) * d.w + 2u * ox, n * d.c * d.h * d.w);
}

// Window value `i` (`at` in the sample's row) against the best so far: a greater one wins, and
// a NaN wins over any number (the first NaN); ties stay with the first.
fn better(v: f32, best_v: f32) -> bool {
    return v > best_v || (is_nan(v) && !is_nan(best_v));
}

// Written out, not a loop over an array of the window's indices: SwiftShader keeps such an
// array in memory, indexed per lane, and the pool ran at a fifth of lavapipe's speed there.
fn forward(t: u32, d: Dims) {
    let win = window_of(t, d);
    let at = win.row + win.first;
    var best = win.first;
    var best_v = a[at];
    let v1 = a[at + 1u];
    if better(v1, best_v) {
        best = win.first + 1u;
        best_v = v1;
    }
    let v2 = a[at + d.w];
    if better(v2, best_v) {
        best = win.first + d.w;
        best_v = v2;
    }
    let v3 = a[at + d.w + 1u];
    if better(v3, best_v) {
        best = win.first + d.w + 1u;
        best_v = v3;
    }
    c[t] = best_v;
    argmax[t] = best;
}

// Output t's gradient to its window's arg-max, zeros to the other three.
fn backward(t: u32, d: Dims) {
    let win = window_of(t, d);
    let g = a[t];
    let best = argmax[t];
    backward_one(win.row, win.first, best, g);
    backward_one(win.row, win.first + 1u, best, g);
    backward_one(win.row, win.first + d.w, best, g);
    backward_one(win.row, win.first + d.w + 1u, best, g);
}

fn backward_one(row: u32, at: u32, best: u32, g: f32) {
    let i = row + at;
    c[i] = select(0.0, g, best == at) * act_derivative_from_output(ACT, aux[i]);
}

@compute @workgroup_size(WG)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let d = dims;
    let rows = rows_of(d.rows, d.rows_from_step, step);
    let t = gid.y * groups.x * WG + gid.x;
    if t >= rows * d.c * (d.h / 2u) * (d.w / 2u) {
        return;
    }
    if MODE == POOL_FORWARD {
        forward(t, d);
    } else {
        backward(t, d);
    }
}

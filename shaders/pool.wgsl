// CPU twin: `soma::ops::pool` (`max_pool`, `max_pool_backward`; the backward's epilogue is
// `Activation::derivative_from_output`). Record: `soma::ops::pool::PoolDims`.
//
// 2×2, stride-2 max-pooling on batches of C·H·W rows (channel-major, H and W even), by MODE:
//   POOL_FORWARD   one thread per output value: the window's maximum, and where it is (its
//                  index in the sample's input row) in `argmax`. Ties go to the first in
//                  row-major order; a NaN wins over any number (the first NaN), as on the CPU.
//   POOL_BACKWARD  one thread per input value: the gradient of its window's output if the
//                  arg-max is this value, else 0, times f'(aux) (the activation of the layer
//                  before the pool, taken from its output, the pool's input). The windows do not
//                  overlap, so every input value has one window and nothing is added twice.

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

// By the bits: compilers may assume that `v != v` is false.
fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

fn forward(t: u32, d: Dims, rows: u32) {
    let oh = d.h / 2u;
    let ow = d.w / 2u;
    let plane = oh * ow;
    let per_row = d.c * plane;
    if t >= rows * per_row {
        return;
    }
    let n = t / per_row;
    let ch = (t % per_row) / plane;
    let oy = (t % plane) / ow;
    let ox = t % ow;
    let row = n * d.c * d.h * d.w;
    let first = (ch * d.h + 2u * oy) * d.w + 2u * ox;
    var window = array<u32, 4>(first, first + 1u, first + d.w, first + d.w + 1u);
    var best = first;
    var best_v = a[row + first];
    for (var j = 1u; j < 4u; j++) {
        let v = a[row + window[j]];
        if v > best_v || (is_nan(v) && !is_nan(best_v)) {
            best = window[j];
            best_v = v;
        }
    }
    c[t] = best_v;
    argmax[t] = best;
}

fn backward(t: u32, d: Dims, rows: u32) {
    let plane = d.h * d.w;
    let per_row = d.c * plane;
    if t >= rows * per_row {
        return;
    }
    let n = t / per_row;
    let i = t % per_row;
    let ch = i / plane;
    let y = (i % plane) / d.w;
    let x = i % d.w;
    let oh = d.h / 2u;
    let ow = d.w / 2u;
    let o = n * d.c * oh * ow + (ch * oh + y / 2u) * ow + x / 2u;
    let g = select(0.0, a[o], argmax[o] == i);
    c[t] = g * act_derivative_from_output(ACT, aux[t]);
}

@compute @workgroup_size(WG)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let d = dims;
    let rows = rows_of(d.rows, d.rows_from_step, step);
    let t = gid.y * groups.x * WG + gid.x;
    if MODE == POOL_FORWARD {
        forward(t, d, rows);
    } else {
        backward(t, d, rows);
    }
}

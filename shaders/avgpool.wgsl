// CPU twin: `soma::ops::avgpool` (`avg_pool`, `avg_pool_backward`; the epilogues are
// `Activation::apply` and `derivative_from_output`). Record: `soma::gpu::spatial::AvgPoolDims`.
//
// Average pooling in non-overlapping WH×WW windows (stride = window; the global pool's window
// is the whole plane) on batches of C·H·W rows (channel-major), by MODE:
//   AVGPOOL_FORWARD   one thread per output value: its window's mean, then ACT (the activation
//                     fused after the pool; the identity for none).
//   AVGPOOL_BACKWARD  one thread per input value: its window's output gradient / (WH·WW),
//                     times f'(aux) (the activation of the layer before the pool, taken from
//                     its output, the pool's input). Each input is written once.

override WG: u32 = 64u;
override MODE: u32 = 0u;
override ACT: u32 = 0u;

struct Dims {
    c: u32,
    h: u32,   // the input's height and width
    w: u32,
    wh: u32,  // the window's height and width
    ww: u32,
    rows: u32,
    rows_from_step: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;         // forward: x; backward: dy
@group(0) @binding(1) var<storage, read_write> c: array<f32>;   // forward: y; backward: dx
@group(0) @binding(2) var<storage, read> aux: array<f32>;       // backward: the pool's input
@group(0) @binding(3) var<storage, read> dims: Dims;
@group(0) @binding(4) var<storage, read> step: Step;

fn forward(t: u32, d: Dims) {
    let oh = d.h / d.wh;
    let ow = d.w / d.ww;
    let plane = oh * ow;
    let per_row = d.c * plane;
    let n = t / per_row;
    let ch = (t % per_row) / plane;
    let oy = (t % plane) / ow;
    let ox = t % ow;
    let first = n * d.c * d.h * d.w + (ch * d.h + d.wh * oy) * d.w + d.ww * ox;
    var sum = 0.0;
    for (var y = 0u; y < d.wh; y++) {
        let row = first + y * d.w;
        for (var x = 0u; x < d.ww; x++) {
            sum += a[row + x];
        }
    }
    c[t] = act_apply(ACT, sum * (1.0 / f32(d.wh * d.ww)));
}

fn backward(t: u32, d: Dims) {
    let plane = d.h * d.w;
    let per_row = d.c * plane;
    let n = t / per_row;
    let ch = (t % per_row) / plane;
    let y = (t % plane) / d.w;
    let x = t % d.w;
    let oh = d.h / d.wh;
    let ow = d.w / d.ww;
    let g = a[(n * d.c + ch) * oh * ow + (y / d.wh) * ow + x / d.ww];
    c[t] = g * (1.0 / f32(d.wh * d.ww)) * act_derivative_from_output(ACT, aux[t]);
}

@compute @workgroup_size(WG)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let d = dims;
    let rows = rows_of(d.rows, d.rows_from_step, step);
    let t = gid.y * groups.x * WG + gid.x;
    var values = d.c * (d.h / d.wh) * (d.w / d.ww);
    if MODE == AVGPOOL_BACKWARD {
        values = d.c * d.h * d.w;
    }
    if t >= rows * values {
        return;
    }
    if MODE == AVGPOOL_FORWARD {
        forward(t, d);
    } else {
        backward(t, d);
    }
}

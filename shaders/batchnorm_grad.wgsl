// The backward kernels before the update, by MODE:
//   BN_GRAD_SUMS   a workgroup per channel: Σdy and Σdy·x̂, kept.
//   BN_INPUT_GRAD  a thread per value: γ/σ·(dy − Σdy/N − x̂·Σdy·x̂/N) · f'(x), with γ before the
//                  update and f' of the activation of the layer before (from its output, this
//                  layer's input x).

@group(0) @binding(0) var<storage, read> a: array<f32>;          // dy
@group(0) @binding(1) var<storage, read_write> out: array<f32>;  // dx
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> p: array<f32>;          // γ, β
@group(0) @binding(4) var<storage, read_write> keep: array<f32>;
@group(0) @binding(5) var<storage, read> dims: Dims;
@group(0) @binding(6) var<storage, read> step: Step;

fn grad_sums(ch: u32, lid: u32, d: Dims, n: u32) {
    let mean = keep[ch];
    let inv = keep[d.c + ch];
    var s = vec2<f32>(0.0, 0.0);
    for (var i = lid; i < n; i += WG) {
        let k = value_at(d, ch, i);
        let g = a[k];
        s += vec2<f32>(g, g * ((x[k] - mean) * inv));
    }
    let total = tree_sum(lid, s);
    if lid == 0u {
        keep[2u * d.c + ch] = total.x;
        keep[3u * d.c + ch] = total.y;
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
    let n = rows * d.plane;
    if MODE == BN_GRAD_SUMS {
        // A workgroup per channel: `ch` is the same for all of its threads.
        let ch = wid.y * groups.x + wid.x;
        if ch < d.c {
            grad_sums(ch, lid, d, n);
        }
        return;
    }
    let t = gid.y * groups.x * WG + gid.x;
    if t >= rows * d.c * d.plane {
        return;
    }
    let ch = (t / d.plane) % d.c;
    let xhat = (x[t] - keep[ch]) * keep[d.c + ch];
    let mean_dy = keep[2u * d.c + ch] / f32(n);
    let mean_dyx = keep[3u * d.c + ch] / f32(n);
    let g = p[ch] * keep[d.c + ch] * (a[t] - mean_dy - xhat * mean_dyx);
    out[t] = g * act_derivative_from_output(ACT, x[t]);
}

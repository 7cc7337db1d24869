// The forward kernels, by MODE:
//   BN_STATS             a workgroup per channel: μ = Σx/N, then σ² = Σ(x − μ)²/N (two passes,
//                        tree sums), kept as μ and 1/√(σ² + ε); the running mean and variance
//                        (unbiased) updated in place.
//   BN_NORMALIZE         a thread per value: ACT(γ·(x − μ)/σ + β) with the kept statistics.
//   BN_NORMALIZE_RUNNING the same with the running statistics (evaluation, prediction).

@group(0) @binding(0) var<storage, read> a: array<f32>;          // x
@group(0) @binding(1) var<storage, read_write> out: array<f32>;  // y
@group(0) @binding(2) var<storage, read_write> p: array<f32>;    // γ, β; running mean, variance
@group(0) @binding(3) var<storage, read_write> keep: array<f32>;
@group(0) @binding(4) var<storage, read> dims: Dims;
@group(0) @binding(5) var<storage, read> step: Step;

fn stats(ch: u32, lid: u32, d: Dims, n: u32) {
    var s = 0.0;
    for (var i = lid; i < n; i += WG) {
        s += a[value_at(d, ch, i)];
    }
    let mean = tree_sum(lid, vec2<f32>(s, 0.0)).x / f32(n);
    var q = 0.0;
    for (var i = lid; i < n; i += WG) {
        let e = a[value_at(d, ch, i)] - mean;
        q += e * e;
    }
    let var_b = tree_sum(lid, vec2<f32>(q, 0.0)).x / f32(n);
    if lid == 0u {
        keep[ch] = mean;
        keep[d.c + ch] = 1.0 / sqrt(var_b + BN_EPS);
        let unbiased = select(var_b, var_b * f32(n) / f32(n - 1u), n > 1u);
        let m = d.stats_at + ch;
        let v = d.stats_at + d.c + ch;
        p[m] = (1.0 - BN_MOMENTUM) * p[m] + BN_MOMENTUM * mean;
        p[v] = (1.0 - BN_MOMENTUM) * p[v] + BN_MOMENTUM * unbiased;
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
    if MODE == BN_STATS {
        // A workgroup per channel: `ch` is the same for all of its threads.
        let ch = wid.y * groups.x + wid.x;
        if ch < d.c {
            stats(ch, lid, d, rows * d.plane);
        }
        return;
    }
    let t = gid.y * groups.x * WG + gid.x;
    if t >= rows * d.c * d.plane {
        return;
    }
    let ch = (t / d.plane) % d.c;
    var mean = keep[ch];
    var inv = keep[d.c + ch];
    if MODE == BN_NORMALIZE_RUNNING {
        mean = p[d.stats_at + ch];
        inv = 1.0 / sqrt(p[d.stats_at + d.c + ch] + BN_EPS);
    }
    out[t] = act_apply(ACT, p[ch] * ((a[t] - mean) * inv) + p[d.c + ch]);
}

// CPU twin: `soma::ops::reduce::column_sums`; record `ColsumDims`.
//
// Column sums `out[j] = Σ_i m[i, j]` (the bias gradient on its own; the training step gets it
// for free from the dW kernel's implicit ones-row). One thread per column, rows in order, so the
// sum is taken in the same order as the CPU's `column_sums`.

override WG: u32 = 64u;

struct Dims {
    rows: u32,
    cols: u32,
    rows_from_step: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> m: array<f32>;
@group(0) @binding(1) var<storage, read_write> sums: array<f32>;
@group(0) @binding(2) var<storage, read> dims: Dims;
@group(0) @binding(3) var<storage, read> step: Step;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    if j >= dims.cols {
        return;
    }
    let rows = rows_of(dims.rows, dims.rows_from_step, step);
    var s = 0.0;
    for (var i = 0u; i < rows; i++) {
        s += m[i * dims.cols + j];
    }
    sums[j] = s;
}

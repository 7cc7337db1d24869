// The matmul without workgroup memory or barriers (after `matmul.wgsl`), for software adapters
// (SwiftShader, lavapipe). There, workgroup memory is ordinary memory behind the same caches as
// A and B, so staging buys no reuse, and a workgroup with a barrier runs each SIMD group as a
// coroutine that yields at every barrier. Against the staged kernel: 1.5× the samples/s on
// SwiftShader at batch 64 to 1024, and less GPU time per step on lavapipe (BENCHMARKS.md).
//
// Each thread still owns a 4 × 4 block of C, but its four columns are TILE_N/4 apart: the
// threads side by side in a SIMD group then read consecutive addresses of B and write
// consecutive addresses of C. Rows and columns past C are clamped to the last one, so the loop
// has no bounds checks; their results are never stored.

@compute @workgroup_size(TILE_N / 4u, TILE_M / 4u, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let m = select(dims.m, step.rows, dims.rows_dim == ROWS_M);
    let k = select(dims.k, step.rows, dims.rows_dim == ROWS_K);
    let m_out = m + select(0u, 1u, dims.ones_row != 0u);
    let i0 = wg.y * TILE_M + lid.y * 4u;
    let j0 = wg.x * TILE_N + lid.x;
    let sj = TILE_N / 4u;
    if i0 >= m_out || j0 >= dims.n {
        return;
    }
    let rows = min(vec4<u32>(i0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(max(m, 1u) - 1u));
    let cols = min(vec4<u32>(j0) + vec4<u32>(0u, 1u, 2u, 3u) * sj, vec4<u32>(dims.n - 1u));
    // Row m of op(A) is the ones-row when there is one (the bias gradient).
    let ones = (vec4<u32>(i0) + vec4<u32>(0u, 1u, 2u, 3u) == vec4<u32>(m))
        & vec4<bool>(dims.ones_row != 0u);

    // Where the four rows of op(A) and the four columns of op(B) start, and how far one step
    // along K moves them.
    var ao: vec4<u32>;
    var a_step: u32;
    if TRANS_A {
        ao = rows;
        a_step = dims.lda;
    } else {
        ao = rows * dims.lda;
        a_step = 1u;
    }
    var bo: vec4<u32>;
    var b_step: u32;
    if TRANS_B {
        bo = cols * dims.ldb;
        b_step = 1u;
    } else {
        bo = cols;
        b_step = dims.ldb;
    }

    // Four named accumulators, not an array: naga would emit an array as function memory.
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var kk = 0u; kk < k; kk++) {
        let bv = vec4<f32>(b[bo.x], b[bo.y], b[bo.z], b[bo.w]);
        let av = select(vec4<f32>(a[ao.x], a[ao.y], a[ao.z], a[ao.w]), vec4<f32>(1.0), ones);
        acc0 += av.x * bv;
        acc1 += av.y * bv;
        acc2 += av.z * bv;
        acc3 += av.w * bv;
        ao += vec4<u32>(a_step);
        bo += vec4<u32>(b_step);
    }

    store_row(i0, j0, sj, m_out, acc0);
    store_row(i0 + 1u, j0, sj, m_out, acc1);
    store_row(i0 + 2u, j0, sj, m_out, acc2);
    store_row(i0 + 3u, j0, sj, m_out, acc3);
}

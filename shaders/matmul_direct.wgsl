// The matmul without workgroup memory or barriers (after `matmul.wgsl`), for software adapters
// (SwiftShader, lavapipe). There, workgroup memory is ordinary memory behind the same caches as
// A and B, so staging buys no reuse, and a workgroup with a barrier runs each SIMD group as a
// coroutine that yields at every barrier.
//
// Each thread owns a BLOCK_M × BLOCK_N block of C (`ops::matmul::Tile`), its columns
// TILE_N / BLOCK_N apart: the threads side by side in a SIMD group then read consecutive
// addresses of B and write consecutive addresses of C. Every load with a per-lane address is a
// gather on these adapters, and they cost more than the multiply-adds: a block loads
// BLOCK_M + BLOCK_N values per BLOCK_M · BLOCK_N multiply-adds, so bigger blocks win until the
// per-thread work starves the adapter's threads (BENCHMARKS.md). Rows and columns past C are
// clamped to the last one, so the loop has no bounds checks; their results are never stored.
//
// This file is a template. `ops::matmul::direct_source` writes each `{{...}}` line out for the
// tile's block, per row quad q (rows 4q..4q+3 of the block), column quad p (columns
// 4p..4p+3) or row r of the block, with the constants BLOCK_M and BLOCK_N; the naga and browser
// tests compile every block that is built.
{{block}}

@compute @workgroup_size(TILE_N / BLOCK_N, TILE_M / BLOCK_M, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let m = select(dims.m, step.rows, dims.rows_dim == ROWS_M);
    let k = select(dims.k, step.rows, dims.rows_dim == ROWS_K);
    let m_out = m + select(0u, 1u, dims.ones_row != 0u);
    let i0 = wg.y * TILE_M + lid.y * BLOCK_M;
    let j0 = wg.x * TILE_N + lid.x;
    let sj = TILE_N / BLOCK_N;
    if i0 >= m_out || j0 >= dims.n {
        return;
    }
    let last_row = vec4<u32>(max(m, 1u) - 1u);
    let last_col = vec4<u32>(dims.n - 1u);
    let up = vec4<u32>(0u, 1u, 2u, 3u);
    // Row m of op(A) is the ones-row when there is one (the bias gradient).
    let with_ones = vec4<bool>(dims.ones_row != 0u);
    // How far one step along K moves through A and B.
    let a_step = select(1u, dims.lda, TRANS_A);
    let b_step = select(dims.ldb, 1u, TRANS_B);

    // Per row quad: its rows of op(A) (clamped), which of them is the ones-row, and where
    // they start in A. For example, quad 1:
    //   let rows1 = min(vec4<u32>(i0 + 4u) + up, last_row);
    //   let ones1 = (vec4<u32>(i0 + 4u) + up == vec4<u32>(m)) & with_ones;
    //   var ao1 = select(rows1 * dims.lda, rows1, TRANS_A);
{{row quads}}
    // Per column quad: its columns of op(B) (clamped) and where they start in B:
    //   let cols1 = min(vec4<u32>(j0 + 4u * sj) + up * sj, last_col);
    //   var bo1 = select(cols1, cols1 * dims.ldb, TRANS_B);
{{column quads}}
    // Named accumulators, not an array (naga would emit an array as function memory):
    // `c5_1` is row 5 of the block, column quad 1.
{{accumulators}}
    for (var kk = 0u; kk < k; kk++) {
        // let b1 = vec4<f32>(b[bo1.x], b[bo1.y], b[bo1.z], b[bo1.w]);
        // let a1 = select(vec4<f32>(a[ao1.x], ...), vec4<f32>(1.0), ones1);
{{loads}}
        // c5_1 += a1.y * b1;
{{multiply-adds}}
        // ao1 += vec4<u32>(a_step); bo1 += vec4<u32>(b_step);
{{advance}}
    }

    // The stores walk the block row by row, with the rows moving up one each time: one copy of
    // `store_row` per column quad, whose inlined epilogues (the optimizer update, the bounds
    // checks) had been most of the code written out per value. SwiftShader took 1.5 s to
    // compile a 16×16 kernel that way. Going through an array instead (indexed per row) made
    // lavapipe lower each read into a chain of branches, and in a browser workgroup memory is
    // zeroed behind a barrier at every dispatch.
    load_epilogue();
    for (var r = 0u; r < BLOCK_M; r++) {
        // store_row(i0 + r, j0 + 4u * sj, sj, m_out, c0_1);
{{stores}}
        // c0_1 = c1_1; c1_1 = c2_1; ...
{{shift}}
    }
}

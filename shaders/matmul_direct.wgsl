// The matmul without workgroup memory or barriers (after `matmul.wgsl`), for software adapters
// (SwiftShader, lavapipe). There, workgroup memory is ordinary memory behind the same caches as
// A and B, so staging buys no reuse, and a workgroup with a barrier runs each SIMD group as a
// coroutine that yields at every barrier. Against the staged kernel: 1.5× the samples/s on
// SwiftShader at batch 64 to 1024, and less GPU time per step on lavapipe (BENCHMARKS.md).
//
// Each thread owns a BLOCK × BLOCK block of C (4 or 8: `ops::matmul::Tile::block`), its
// columns TILE_N/BLOCK apart: the threads side by side in a SIMD group then read consecutive
// addresses of B and write consecutive addresses of C. An 8 × 8 block loads 16 values per 64
// multiply-adds instead of 8 per 16; every load with a per-lane address is a gather there. The
// block is four 4 × 4 quads (rows 0-3 / 4-7 × columns 0-3 / 4-7); with BLOCK = 4 the `wide`
// branches fold away and only the first quad remains. Rows and columns past C are clamped to
// the last one, so the loop has no bounds checks; their results are never stored.

override BLOCK: u32 = 4u;
const WIDE_BLOCK: u32 = 8u;

@compute @workgroup_size(TILE_N / BLOCK, TILE_M / BLOCK, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let wide = BLOCK == WIDE_BLOCK;
    let m = select(dims.m, step.rows, dims.rows_dim == ROWS_M);
    let k = select(dims.k, step.rows, dims.rows_dim == ROWS_K);
    let m_out = m + select(0u, 1u, dims.ones_row != 0u);
    let i0 = wg.y * TILE_M + lid.y * BLOCK;
    let j0 = wg.x * TILE_N + lid.x;
    let sj = TILE_N / BLOCK;
    if i0 >= m_out || j0 >= dims.n {
        return;
    }
    // The quads' first rows and columns.
    let i1 = i0 + 4u;
    let j1 = j0 + 4u * sj;
    let last_row = vec4<u32>(max(m, 1u) - 1u);
    let last_col = vec4<u32>(dims.n - 1u);
    let up = vec4<u32>(0u, 1u, 2u, 3u);
    let rows0 = min(vec4<u32>(i0) + up, last_row);
    let rows1 = min(vec4<u32>(i1) + up, last_row);
    let cols0 = min(vec4<u32>(j0) + up * sj, last_col);
    let cols1 = min(vec4<u32>(j1) + up * sj, last_col);
    // Row m of op(A) is the ones-row when there is one (the bias gradient).
    let with_ones = vec4<bool>(dims.ones_row != 0u);
    let ones0 = (vec4<u32>(i0) + up == vec4<u32>(m)) & with_ones;
    let ones1 = (vec4<u32>(i1) + up == vec4<u32>(m)) & with_ones;

    // Where the rows of op(A) and the columns of op(B) start, and how far one step along K
    // moves them.
    var ao0: vec4<u32>;
    var ao1: vec4<u32>;
    var a_step: u32;
    if TRANS_A {
        ao0 = rows0;
        ao1 = rows1;
        a_step = dims.lda;
    } else {
        ao0 = rows0 * dims.lda;
        ao1 = rows1 * dims.lda;
        a_step = 1u;
    }
    var bo0: vec4<u32>;
    var bo1: vec4<u32>;
    var b_step: u32;
    if TRANS_B {
        bo0 = cols0 * dims.ldb;
        bo1 = cols1 * dims.ldb;
        b_step = 1u;
    } else {
        bo0 = cols0;
        bo1 = cols1;
        b_step = dims.ldb;
    }

    // Named accumulators, not an array: naga would emit an array as function memory. `cRQ` is
    // row R of the block, columns of quad Q.
    var c00 = vec4<f32>(0.0);
    var c10 = vec4<f32>(0.0);
    var c20 = vec4<f32>(0.0);
    var c30 = vec4<f32>(0.0);
    var c01 = vec4<f32>(0.0);
    var c11 = vec4<f32>(0.0);
    var c21 = vec4<f32>(0.0);
    var c31 = vec4<f32>(0.0);
    var c40 = vec4<f32>(0.0);
    var c50 = vec4<f32>(0.0);
    var c60 = vec4<f32>(0.0);
    var c70 = vec4<f32>(0.0);
    var c41 = vec4<f32>(0.0);
    var c51 = vec4<f32>(0.0);
    var c61 = vec4<f32>(0.0);
    var c71 = vec4<f32>(0.0);
    for (var kk = 0u; kk < k; kk++) {
        let b0 = vec4<f32>(b[bo0.x], b[bo0.y], b[bo0.z], b[bo0.w]);
        let a0 = select(vec4<f32>(a[ao0.x], a[ao0.y], a[ao0.z], a[ao0.w]), vec4<f32>(1.0), ones0);
        c00 += a0.x * b0;
        c10 += a0.y * b0;
        c20 += a0.z * b0;
        c30 += a0.w * b0;
        if wide {
            let b1 = vec4<f32>(b[bo1.x], b[bo1.y], b[bo1.z], b[bo1.w]);
            let a1 = select(vec4<f32>(a[ao1.x], a[ao1.y], a[ao1.z], a[ao1.w]), vec4<f32>(1.0), ones1);
            c01 += a0.x * b1;
            c11 += a0.y * b1;
            c21 += a0.z * b1;
            c31 += a0.w * b1;
            c40 += a1.x * b0;
            c50 += a1.y * b0;
            c60 += a1.z * b0;
            c70 += a1.w * b0;
            c41 += a1.x * b1;
            c51 += a1.y * b1;
            c61 += a1.z * b1;
            c71 += a1.w * b1;
        }
        ao0 += vec4<u32>(a_step);
        ao1 += vec4<u32>(a_step);
        bo0 += vec4<u32>(b_step);
        bo1 += vec4<u32>(b_step);
    }

    store_row(i0, j0, sj, m_out, c00);
    store_row(i0 + 1u, j0, sj, m_out, c10);
    store_row(i0 + 2u, j0, sj, m_out, c20);
    store_row(i0 + 3u, j0, sj, m_out, c30);
    if wide {
        store_row(i0, j1, sj, m_out, c01);
        store_row(i0 + 1u, j1, sj, m_out, c11);
        store_row(i0 + 2u, j1, sj, m_out, c21);
        store_row(i0 + 3u, j1, sj, m_out, c31);
        store_row(i1, j0, sj, m_out, c40);
        store_row(i1 + 1u, j0, sj, m_out, c50);
        store_row(i1 + 2u, j0, sj, m_out, c60);
        store_row(i1 + 3u, j0, sj, m_out, c70);
        store_row(i1, j1, sj, m_out, c41);
        store_row(i1 + 1u, j1, sj, m_out, c51);
        store_row(i1 + 2u, j1, sj, m_out, c61);
        store_row(i1 + 3u, j1, sj, m_out, c71);
    }
}

// The matmul with K staged in workgroup memory (after `matmul.wgsl`): each pass, the workgroup
// copies a TILE_M × TILE_K slice of op(A) and a TILE_K × TILE_N slice of op(B) into workgroup
// memory, then each thread runs its 4 × 4 block over the slice. On a GPU this turns every
// global load into TILE_M/4 (or TILE_N/4) loads from on-chip memory; the price is two barriers
// per slice.

override TILE_K: u32 = 16u;

// k-major, four consecutive rows (columns) per vec4: one load feeds a thread's 4×4 block.
// (Scalar tiles cost 8 workgroup loads per 16 FMAs; lavapipe runs each as a gather.)
var<workgroup> a_tile: array<vec4<f32>, TILE_M * TILE_K / 4u>;  // [kk * TILE_M/4 + i/4][i%4]
var<workgroup> b_tile: array<vec4<f32>, TILE_N * TILE_K / 4u>;  // [kk * TILE_N/4 + j/4][j%4]

fn load_a(i: u32, kk: u32, m: u32, k: u32) -> f32 {
    if kk >= k {
        return 0.0;
    }
    if i == m && dims.ones_row != 0u {
        return 1.0;
    }
    if i >= m {
        return 0.0;
    }
    if TRANS_A {
        return a[kk * dims.lda + i];
    }
    return a[i * dims.lda + kk];
}

fn load_b(kk: u32, j: u32, k: u32) -> f32 {
    if kk >= k || j >= dims.n {
        return 0.0;
    }
    if TRANS_B {
        return b[j * dims.ldb + kk];
    }
    return b[kk * dims.ldb + j];
}

@compute @workgroup_size(TILE_N / 4u, TILE_M / 4u, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let m = select(dims.m, step.rows, dims.rows_dim == ROWS_M);
    let k = select(dims.k, step.rows, dims.rows_dim == ROWS_K);
    let threads = (TILE_M / 4u) * (TILE_N / 4u);
    let row0 = wg.y * TILE_M;
    let col0 = wg.x * TILE_N;
    let ty = lid.y * 4u;
    let tx = lid.x * 4u;

    // Four named accumulators, not an array: naga would emit an array as function memory.
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);

    for (var k0 = 0u; k0 < k; k0 += TILE_K) {
        // Consecutive threads read consecutive addresses of whichever dimension is contiguous.
        for (var e = li; e < TILE_M * TILE_K; e += threads) {
            var i: u32;
            var kk: u32;
            if TRANS_A {
                i = e % TILE_M;
                kk = e / TILE_M;
            } else {
                kk = e % TILE_K;
                i = e / TILE_K;
            }
            a_tile[kk * (TILE_M / 4u) + i / 4u][i % 4u] = load_a(row0 + i, k0 + kk, m, k);
        }
        for (var e = li; e < TILE_N * TILE_K; e += threads) {
            var j: u32;
            var kk: u32;
            if TRANS_B {
                kk = e % TILE_K;
                j = e / TILE_K;
            } else {
                j = e % TILE_N;
                kk = e / TILE_N;
            }
            b_tile[kk * (TILE_N / 4u) + j / 4u][j % 4u] = load_b(k0 + kk, col0 + j, k);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TILE_K; kk++) {
            let bv = b_tile[kk * (TILE_N / 4u) + lid.x];
            let av = a_tile[kk * (TILE_M / 4u) + lid.y];
            acc0 += av.x * bv;
            acc1 += av.y * bv;
            acc2 += av.z * bv;
            acc3 += av.w * bv;
        }
        workgroupBarrier();
    }

    let m_out = m + select(0u, 1u, dims.ones_row != 0u);
    load_epilogue();
    store_row(row0 + ty, col0 + tx, 1u, m_out, acc0);
    store_row(row0 + ty + 1u, col0 + tx, 1u, m_out, acc1);
    store_row(row0 + ty + 2u, col0 + tx, 1u, m_out, acc2);
    store_row(row0 + ty + 3u, col0 + tx, 1u, m_out, acc3);
}

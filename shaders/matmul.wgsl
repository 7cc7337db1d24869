// CPU twin: `soma::ops::matmul` (`cpu::linalg::gemm`, then `bias_activation` or
// `mul_derivative`; the optimizer epilogue is `ops::optim::update`). Record: `MatmulDims`.
//
// C = op(A) · op(B) with an epilogue, register-blocked: each workgroup computes a
// TILE_M × TILE_N block of C, each thread a 4 × 4 sub-block held in registers, with K walked in
// TILE_K slices staged in workgroup memory. (On lavapipe the 4×4 blocking is ~5× a plain tile.)
//
// Forms (override constants, so the branches fold away per pipeline):
//   TRANS_A = false, TRANS_B = false: A·B     (forward:     x · W)
//   TRANS_A = true,  TRANS_B = false: Aᵀ·B    (weights:     xᵀ · dz, plus the bias row)
//   TRANS_A = false, TRANS_B = true:  A·Bᵀ    (input grad:  dz · Wᵀ)
//
// `ones_row` appends an implicit row of ones to op(A): row `m` of C is then the column sums of
// op(B), which is the bias gradient; with `b` stored right after `W` the dW kernel writes both.

override TILE_M: u32 = 64u;
override TILE_N: u32 = 64u;
override TILE_K: u32 = 16u;
override TRANS_A: bool = false;
override TRANS_B: bool = false;

// Epilogues (EPI_* in the prelude, `ops::matmul::Epilogue`): EPI_BIAS_ACT c = act(acc + bias[j]);
// EPI_MUL_DERIV c = acc * f'(aux[i, j]) with f' from the stored output; EPI_OPTIM acc is the
// gradient of parameter c[i, j], updated in place. ROWS_M / ROWS_K: m or k comes from the step
// record.

struct Dims {
    m: u32,
    n: u32,
    k: u32,
    rows_dim: u32,
    lda: u32,
    ldb: u32,
    ldc: u32,
    epilogue: u32,
    act: u32,
    ones_row: u32,
    bias_offset: u32,  // where the bias starts in `b` (it follows W in the parameter layout)
    slot_base: u32,    // EPI_OPTIM: where this layer's optimizer state starts in `slots`
    opt: OptimParams,  // EPI_OPTIM: the optimizer
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<storage, read> aux: array<f32>;
@group(0) @binding(4) var<storage, read_write> slots: array<f32>;  // EPI_OPTIM only
@group(0) @binding(5) var<storage, read> dims: Dims;
@group(0) @binding(6) var<storage, read> step: Step;

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

// The optimizer step of parameter c[i, j] (with the bias as the ones-row, the layer's W and b
// are one (in+1)×out block): the gradient never goes to memory, and the update needs no
// dispatch or pass over the parameters of its own. Each element has one thread: no races.
fn update_param(i: u32, j: u32, grad: f32) -> f32 {
    let o = dims.opt;
    let at = i * dims.ldc + j;
    let s = dims.slot_base + at;
    var s0 = 0.0;
    var s1 = 0.0;
    if o.kind != OPTIM_SGD {
        s0 = slots[s];
    }
    if o.kind == OPTIM_ADAM {
        s1 = slots[o.slot_stride + s];
    }
    let u = optimizer_update(o, step.lr, step.c1, step.c2, c[at], grad, s0, s1);
    if o.kind != OPTIM_SGD {
        slots[s] = u.s0;
    }
    if o.kind == OPTIM_ADAM {
        slots[o.slot_stride + s] = u.s1;
    }
    return u.p;
}

fn epilogue(i: u32, j: u32, acc: f32) -> f32 {
    if dims.epilogue == EPI_OPTIM {
        return update_param(i, j, acc);
    }
    if dims.epilogue == EPI_BIAS_ACT {
        return act_apply(dims.act, acc + b[dims.bias_offset + j]);
    } else if dims.epilogue == EPI_MUL_DERIV {
        return acc * act_derivative_from_output(dims.act, aux[i * dims.ldc + j]);
    }
    return acc;
}

// Writes columns j..j+3 of row i of C (those inside C).
fn store_row(i: u32, j: u32, m_out: u32, v: vec4<f32>) {
    if i >= m_out {
        return;
    }
    let at = i * dims.ldc;
    if j < dims.n {
        c[at + j] = epilogue(i, j, v.x);
    }
    if j + 1u < dims.n {
        c[at + j + 1u] = epilogue(i, j + 1u, v.y);
    }
    if j + 2u < dims.n {
        c[at + j + 2u] = epilogue(i, j + 2u, v.z);
    }
    if j + 3u < dims.n {
        c[at + j + 3u] = epilogue(i, j + 3u, v.w);
    }
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
    store_row(row0 + ty, col0 + tx, m_out, acc0);
    store_row(row0 + ty + 1u, col0 + tx, m_out, acc1);
    store_row(row0 + ty + 2u, col0 + tx, m_out, acc2);
    store_row(row0 + ty + 3u, col0 + tx, m_out, acc3);
}

// CPU twin: `soma::ops::matmul` (`cpu::linalg::gemm`, then `bias_activation` or
// `mul_derivative`; the optimizer epilogue is `ops::optim::update`). Record: `MatmulDims`.
//
// C = op(A) · op(B) with an epilogue, register-blocked: each workgroup computes a
// TILE_M × TILE_N block of C, each thread a 4 × 4 sub-block held in registers. This file is
// what both ways of feeding the blocks share; the kernel is it plus one of
//   matmul_staged.wgsl: K walked in TILE_K slices staged in workgroup memory (GPUs);
//   matmul_direct.wgsl: no workgroup memory or barriers (software adapters).
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
override TRANS_A: bool = false;
override TRANS_B: bool = false;
// The epilogue, its activation and the optimizer (`ops::matmul::Special`): constants of the
// pipeline, not read from the record, because software adapters run every arm of a branch on a
// record field under a lane mask, for every element of C.
override EPILOGUE: u32 = 0u;
override ACT: u32 = 0u;
override OPTIM: u32 = 0u;

// Epilogues (EPI_* in the prelude, `ops::matmul::Epilogue`): EPI_BIAS_ACT c = act(acc + bias[j]);
// EPI_MUL_DERIV c = acc * f'(aux[i, j]) with f' from the stored output; EPI_OPTIM acc is the
// gradient of parameter c[i, j], updated in place. ROWS_M / ROWS_K: m or k comes from the step
// record.

// `epilogue`, `act` and `opt.kind` are also the pipeline's constants (they chose it); the
// kernel reads the constants.
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

// What the epilogue and the stores read of the records, loaded once per thread by
// `load_epilogue` (before its stores) instead of once per element: on software adapters every
// storage load is a per-lane gather with bounds checks, and with momentum the weight-gradient
// kernels spent more on these loads than on the update itself.
struct EpilogueRecords {
    opt: OptimParams,
    lr: f32,
    c1: f32,
    c2: f32,
    n: u32,
    ldc: u32,
    slot_base: u32,
    bias_offset: u32,
}
var<private> rec: EpilogueRecords;

fn load_epilogue() {
    rec = EpilogueRecords(dims.opt, step.lr, step.c1, step.c2, dims.n, dims.ldc, dims.slot_base,
        dims.bias_offset);
}

// The optimizer step of parameter c[i, j] (with the bias as the ones-row, the layer's W and b
// are one (in+1)×out block): the gradient never goes to memory, and the update needs no
// dispatch or pass over the parameters of its own. Each element has one thread: no races.
fn update_param(i: u32, j: u32, grad: f32) -> f32 {
    let o = rec.opt;
    let at = i * rec.ldc + j;
    let s = rec.slot_base + at;
    var s0 = 0.0;
    var s1 = 0.0;
    if OPTIM != OPTIM_SGD {
        s0 = slots[s];
    }
    if OPTIM == OPTIM_ADAM {
        s1 = slots[o.slot_stride + s];
    }
    let u = optimizer_update(OPTIM, o, rec.lr, rec.c1, rec.c2, c[at], grad, s0, s1);
    if OPTIM != OPTIM_SGD {
        slots[s] = u.s0;
    }
    if OPTIM == OPTIM_ADAM {
        slots[o.slot_stride + s] = u.s1;
    }
    return u.p;
}

fn epilogue(i: u32, j: u32, acc: f32) -> f32 {
    if EPILOGUE == EPI_OPTIM {
        return update_param(i, j, acc);
    }
    if EPILOGUE == EPI_BIAS_ACT {
        return act_apply(ACT, acc + b[rec.bias_offset + j]);
    } else if EPILOGUE == EPI_MUL_DERIV {
        return acc * act_derivative_from_output(ACT, aux[i * rec.ldc + j]);
    }
    return acc;
}

// Writes row i of C at columns j, j + sj, j + 2·sj, j + 3·sj (those inside C), after
// `load_epilogue`.
fn store_row(i: u32, j: u32, sj: u32, m_out: u32, v: vec4<f32>) {
    if i >= m_out {
        return;
    }
    let at = i * rec.ldc;
    if j < rec.n {
        c[at + j] = epilogue(i, j, v.x);
    }
    if j + sj < rec.n {
        c[at + j + sj] = epilogue(i, j + sj, v.y);
    }
    if j + 2u * sj < rec.n {
        c[at + j + 2u * sj] = epilogue(i, j + 2u * sj, v.z);
    }
    if j + 3u * sj < rec.n {
        c[at + j + 3u * sj] = epilogue(i, j + 3u * sj, v.w);
    }
}

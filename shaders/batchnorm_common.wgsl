// Included by the batch-norm kernels (`batchnorm.wgsl`, `batchnorm_grad.wgsl`,
// `batchnorm_update.wgsl`, split so that none binds more than 7 storage buffers): the record,
// the indexing and the workgroup's tree sum. CPU twin: `soma::ops::batchnorm`; record:
// `soma::gpu::batchnorm::BnDims`.
//
// Batch norm over C channels of PLANE values per sample (rows of C·PLANE values, channel-major),
// N = rows·PLANE values per channel. `keep` holds per channel: [0, C) μ, [C, 2C) 1/σ,
// [2C, 3C) Σdy, [3C, 4C) Σdy·x̂. `p` holds the layer's two tensors: [0, C) γ, [C, 2C) β, then
// from `stats_at` the running mean [0, C) and variance [C, 2C).

override WG: u32 = 64u;
override MODE: u32 = 0u;
override ACT: u32 = 0u;
override OPTIM: u32 = 0u;

struct Dims {
    c: u32,
    plane: u32,
    stats_at: u32,
    slot_base: u32,  // the update: where γ's optimizer state starts in `slots`
    rows: u32,
    rows_from_step: u32,
    _pad0: u32,
    _pad1: u32,
    opt: OptimParams,
}

var<workgroup> part: array<vec2<f32>, WG>;

// Value i of channel ch (i < N): its index in the batch.
fn value_at(d: Dims, ch: u32, i: u32) -> u32 {
    let n = i / d.plane;
    return (n * d.c + ch) * d.plane + i % d.plane;
}

// The workgroup's sum of `v` (every thread's), by a tree in a fixed order.
fn tree_sum(lid: u32, v: vec2<f32>) -> vec2<f32> {
    part[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if lid < s {
            part[lid] += part[lid + s];
        }
        workgroupBarrier();
    }
    let total = part[0];
    workgroupBarrier();
    return total;
}

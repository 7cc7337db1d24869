// CPU twin: `soma::ops::gather::gather_inputs`; record `GatherDims`; INPUT_U8 / INPUT_F32
// from the prelude.
//
// Builds an input batch from the dataset, which is uploaded once: row r of `out` is sample
// index[first + r], mapped `x = v · scale + shift`. Bytes (MNIST pixels) are packed four to a
// u32 word, which keeps MNIST's 47 MB under the 128 MiB binding limit that its 188 MB of f32
// would exceed; f32 datasets are stored as their bits.
//
// Each thread writes GATHER_RUN consecutive values of one row: the row and the image position
// are worked out once per run, not per value. They take integer divisions, which software
// adapters (SwiftShader, lavapipe) run one lane at a time: on SwiftShader the kernel went from
// 1.16 to 0.79 ms per batch-64 step.

override WG: u32 = 256u;

struct Dims {
    features: u32,
    kind: u32,
    scale: f32,
    shift: f32,
    rows: u32,
    rows_from_step: u32,
    index_offset: u32,
    height: u32,  // image shape for shifted entries; 0 when samples are not images
    width: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> data: array<u32>;
@group(0) @binding(1) var<storage, read> index: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> dims: Dims;
@group(0) @binding(4) var<storage, read> step: Step;

@compute @workgroup_size(WG)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let t = gid.y * groups.x * WG + gid.x;
    let rows = rows_of(dims.rows, dims.rows_from_step, step);
    let first = select(dims.index_offset, step.index_offset, dims.rows_from_step != 0u);
    let f = dims.features;
    let runs = (f + GATHER_RUN - 1u) / GATHER_RUN;
    if t >= rows * runs {
        return;
    }
    let r = t / runs;
    let col0 = (t - r * runs) * GATHER_RUN;
    let entry = index[first + r];
    let base = sample_index(entry) * f;
    let d = sample_shift(entry);
    let shifted = dims.width != 0u && (d.x != 0 || d.y != 0);
    // The image position of col0 (for shifted images), then stepped along the run.
    var y = 0u;
    var x = 0u;
    if shifted {
        y = col0 / dims.width;
        x = col0 - y * dims.width;
    }
    for (var col = col0; col < min(col0 + GATHER_RUN, f); col++) {
        var p = base + col;
        var inside = true;
        if shifted {
            // This pixel shows the source pixel (y - dy, x - dx), or a 0 byte where that falls
            // outside the image.
            let sy = i32(y) - d.y;
            let sx = i32(x) - d.x;
            inside = sy >= 0 && sx >= 0 && sy < i32(dims.height) && sx < i32(dims.width);
            p = base + u32(max(sy, 0)) * dims.width + u32(max(sx, 0));
            x++;
            if x == dims.width {
                x = 0u;
                y++;
            }
        }
        var v = 0.0;
        if inside {
            if dims.kind == INPUT_U8 {
                v = f32((data[p >> 2u] >> ((p & 3u) * 8u)) & 0xffu);
            } else {
                v = bitcast<f32>(data[p]);
            }
        }
        out[r * f + col] = v * dims.scale + dims.shift;
    }
}

// CPU twin: `soma::ops::gather::gather_inputs`; record `GatherDims`; INPUT_U8 / INPUT_F32
// from the prelude.
//
// Builds an input batch from the dataset, which is uploaded once: row r of `out` is sample
// index[first + r], mapped `x = v · scale + shift`. Bytes (MNIST pixels) are packed four to a
// u32 word, which keeps MNIST's 47 MB under the 128 MiB binding limit that its 188 MB of f32
// would exceed; f32 datasets are stored as their bits.

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
    let e = gid.y * groups.x * WG + gid.x;
    let rows = rows_of(dims.rows, dims.rows_from_step, step);
    let first = select(dims.index_offset, step.index_offset, dims.rows_from_step != 0u);
    let f = dims.features;
    if e >= rows * f {
        return;
    }
    let r = e / f;
    let col = e - r * f;
    let entry = index[first + r];
    var p = sample_index(entry) * f + col;
    let d = sample_shift(entry);
    if dims.width != 0u && (d.x != 0 || d.y != 0) {
        // Shifted image: this pixel shows the source pixel (y - dy, x - dx), or a 0 byte
        // where that falls outside the image.
        let y = i32(col / dims.width) - d.y;
        let x = i32(col % dims.width) - d.x;
        if y < 0 || x < 0 || y >= i32(dims.height) || x >= i32(dims.width) {
            out[e] = dims.shift;
            return;
        }
        p = sample_index(entry) * f + u32(y) * dims.width + u32(x);
    }
    var v: f32;
    if dims.kind == INPUT_U8 {
        v = f32((data[p >> 2u] >> ((p & 3u) * 8u)) & 0xffu);
    } else {
        v = bitcast<f32>(data[p]);
    }
    out[e] = v * dims.scale + dims.shift;
}

// CPU twin: `soma::ops::gather::gather_inputs`; record `GatherDims`; INPUT_U8 / INPUT_F32
// from the prelude.
//
// Builds an input batch from the dataset, which is uploaded once: row r of `out` is sample
// index[first + r], each channel mapped by its own `x = v · scale + shift`. Bytes (pixels) are
// packed four to a u32 word, which keeps MNIST's 47 MB under the 128 MiB binding limit that its
// 188 MB of f32 would exceed; f32 datasets are stored as their bits.
//
// Written for software adapters (SwiftShader, lavapipe), which run every arm of a branch under
// a lane mask and integer divisions one lane at a time; a GPU does not mind either way. So:
// - the input kind is a pipeline constant (`KIND`), not a branch on the record;
// - shifted and unshifted samples take the same branch-free path (a zero shift reads the pixel
//   itself), and samples that are not images are one channel of one row of `features` pixels;
// - each thread writes GATHER_RUN consecutive values of one row, so that the divisions that
//   place it (its row, its channel and image position) are made once per run.

override WG: u32 = 256u;
override KIND: u32 = 0u;

struct Dims {
    features: u32,
    kind: u32,  // also the pipeline's KIND (it chose the pipeline); the kernel reads KIND
    rows: u32,
    rows_from_step: u32,
    index_offset: u32,
    height: u32,  // image shape: channels of height × width; 0 when samples are not images
    width: u32,
    _pad0: u32,
    scale: vec4<f32>,  // channel c's map is x = v · scale[c] + shift[c]
    shift: vec4<f32>,
}

@group(0) @binding(0) var<storage, read> data: array<u32>;
@group(0) @binding(1) var<storage, read> index: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> dims: Dims;
@group(0) @binding(4) var<storage, read> step: Step;

// Component c of v, by selects (a dynamic index into a vector goes through memory on some
// compilers).
fn channel_of(v: vec4<f32>, c: u32) -> f32 {
    return select(select(v.x, v.y, c == 1u), select(v.z, v.w, c >= 3u), c >= 2u);
}

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
    let image = dims.width != 0u;
    let base = sample_index(entry, image) * f;
    let d = select(vec2<i32>(0), sample_shift(entry), image);
    let width = select(f, dims.width, image);
    let height = select(1u, dims.height, image);
    // The channel and image position of col0, then stepped along the run.
    let line = col0 / width;
    var ch = line / height;
    var y = line - ch * height;
    var x = col0 - line * width;
    let end = min(col0 + GATHER_RUN, f);
    for (var col = col0; col < end; col++) {
        // This pixel shows the source pixel (y - dy, x - dx) of its channel, or a 0 where that
        // falls outside the image.
        let sy = i32(y) - d.y;
        let sx = i32(x) - d.x;
        let inside = sy >= 0 && sx >= 0 && sy < i32(height) && sx < i32(width);
        let p = base + (ch * height + min(u32(max(sy, 0)), height - 1u)) * width
            + min(u32(max(sx, 0)), width - 1u);
        var v: f32;
        if KIND == INPUT_U8 {
            v = f32((data[p >> 2u] >> ((p & 3u) * 8u)) & 0xffu);
        } else {
            v = bitcast<f32>(data[p]);
        }
        out[r * f + col] = select(0.0, v, inside) * channel_of(dims.scale, ch)
            + channel_of(dims.shift, ch);
        x++;
        let wrap = x == width;
        x = select(x, 0u, wrap);
        y = select(y, y + 1u, wrap);
        let next = y == height;
        y = select(y, 0u, next);
        ch = select(ch, ch + 1u, next);
    }
}

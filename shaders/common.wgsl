// Included by every kernel, after the generated prelude (`soma::ops::prelude`).
// CPU twins: `soma::ops::StepRecord` (the record) and `soma::train::Sample` (order entries).

// The per-step record every step kernel can read (bound with a dynamic offset, one record per
// step, written once per `train_batches` call).
struct Step {
    rows: u32,          // rows of this batch (a smaller final batch just has fewer)
    index_offset: u32,  // where this batch's sample indices start in the index buffer
    lr: f32,
    c1: f32,            // Adam bias corrections 1 - beta^t, computed on the host
    c2: f32,
    step: u32,          // the optimizer step being taken, 1-based (dropout's draw)
    _pad1: u32,
    _pad2: u32,
}

// Rows of the current dispatch: from the step record when `from_step` is set (training), else
// the fixed count (standalone ops, evaluation chunks of a known size).
fn rows_of(fixed: u32, from_step: u32, s: Step) -> u32 {
    return select(fixed, s.rows, from_step != 0u);
}

// An order entry over images is an image's index and its shift (dx, dy as two's-complement
// fields above the index); over any other samples it is the index, whole. See `train::Sample`.
fn sample_index(entry: u32, image: bool) -> u32 {
    return select(entry, entry & SAMPLE_INDEX_MASK, image);
}

fn sample_shift(entry: u32) -> vec2<i32> {
    // Move each field to the top, then an arithmetic right shift sign-extends it.
    let e = bitcast<i32>(entry);
    let down = 32u - SAMPLE_SHIFT_BITS;
    let dx = (e << (down - SAMPLE_DX_BIT)) >> down;
    let dy = (e << (down - SAMPLE_DY_BIT)) >> down;
    return vec2<i32>(dx, dy);
}

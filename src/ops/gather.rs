//! Building an input batch from the stored dataset: rows picked by the batch order, shifted
//! when an order entry carries a shift (augmentation), mapped `x = v · scale + shift`. The CPU
//! twin of `shaders/gather.wgsl`.

use bytemuck::{Pod, Zeroable};
use ndarray::{ArrayViewMut2, s};

use super::Shared;
use crate::data::Sample;
use crate::data::{Dataset, Inputs, MAX_CHANNEL_MAPS, Normalize};
use crate::shape::Chw;

pub(crate) const WGSL: &str = include_str!("../../shaders/gather.wgsl");

/// Threads per workgroup of the element-wise kernels (gather, optimizer).
pub const WG: u32 = 256;

/// Consecutive values of a row that one thread of the gather kernel writes: the two integer
/// divisions that place a run cost as much as its values on software adapters, so longer runs
/// pay for them fewer times (BENCHMARKS.md, "Kernel parameters").
pub const GATHER_RUN: u32 = 16;

/// Threads the gather kernel runs for `rows` rows of `features` values.
pub fn gather_threads(rows: u64, features: u32) -> u64 {
    rows * features.div_ceil(GATHER_RUN) as u64
}

/// How the dataset's inputs are stored on the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum InputKind {
    /// Bytes packed four to a `u32` word, little-endian ([`pack_inputs`]).
    U8 = 0,
    /// The bits of f32 values.
    F32 = 1,
}

pub(crate) const SHARED: &[Shared] = &[
    Shared::U32("GATHER_RUN", GATHER_RUN),
    Shared::U32("INPUT_U8", InputKind::U8 as u32),
    Shared::U32("INPUT_F32", InputKind::F32 as u32),
    Shared::U32("SAMPLE_INDEX_MASK", Sample::MAX_INDEX),
    Shared::U32("SAMPLE_DX_BIT", Sample::DX_BIT),
    Shared::U32("SAMPLE_DY_BIT", Sample::DY_BIT),
    Shared::U32("SAMPLE_SHIFT_BITS", Sample::SHIFT_BITS),
];

/// `shaders/gather.wgsl`'s `Dims`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct GatherDims {
    pub features: u32,
    pub kind: u32,
    pub rows: u32,
    pub rows_from_step: u32,
    pub index_offset: u32,
    /// Image shape (0 when the samples are not images): planes of `height × width` values.
    pub height: u32,
    pub width: u32,
    pub _pad: u32,
    /// Each channel's map `x = v · scale + shift` ([`Dataset::gather_maps`]).
    pub scale: [f32; MAX_CHANNEL_MAPS],
    pub shift: [f32; MAX_CHANNEL_MAPS],
}

impl GatherDims {
    /// The record of a gather from `features`-wide samples of `kind`, of shape `image` (none:
    /// vectors), each channel mapped by `maps`.
    pub fn new(
        features: u32,
        kind: InputKind,
        image: Option<Chw>,
        maps: [Normalize; MAX_CHANNEL_MAPS],
    ) -> GatherDims {
        GatherDims {
            features,
            kind: kind as u32,
            height: image.map_or(0, |i| i.h as u32),
            width: image.map_or(0, |i| i.w as u32),
            scale: maps.map(|m| m.scale),
            shift: maps.map(|m| m.shift),
            ..Default::default()
        }
    }
}

/// A dataset's inputs as u32 words for the gather kernel: bytes packed four to a word
/// (little-endian, as the kernel unpacks them), or f32 bits.
pub fn pack_inputs(inputs: &Inputs) -> (InputKind, Vec<u32>) {
    match inputs {
        Inputs::U8(v) => {
            let words = v
                .chunks(4)
                .map(|c| {
                    let mut w = [0u8; 4];
                    w[..c.len()].copy_from_slice(c);
                    u32::from_le_bytes(w)
                })
                .collect();
            (InputKind::U8, words)
        }
        Inputs::F32(v) => (InputKind::F32, v.iter().map(|x| x.to_bits()).collect()),
    }
}

/// Writes the normalised inputs of the samples `order` names into the rows of `x`. An entry
/// may carry a shift (see [`Sample`]): every channel of the image moves by `(dx, dy)` pixels
/// and the uncovered border reads as a 0 byte. Each channel is mapped by its own map
/// ([`Dataset::gather_maps`]); samples that are not images are one channel.
pub fn gather_inputs(data: &Dataset, order: &[u32], mut x: ArrayViewMut2<f32>) {
    let f = data.features();
    let maps = data.gather_maps();
    // Stored values `src` of one sample into `out`, mapped by `map` and vectorised.
    let copy = |src: std::ops::Range<usize>, out: &mut [f32], map: Normalize| match data.inputs() {
        Inputs::U8(v) => convert(&v[src], out, |p| p as f32, map.scale, map.shift),
        Inputs::F32(v) => convert(&v[src], out, |p| p, map.scale, map.shift),
    };
    // Checked to be `f` values (`backend::check_data`).
    let image = data.image.filter(|i| i.plane() > 0);
    for (r, &entry) in order.iter().enumerate() {
        let mut row = x.slice_mut(s![r, ..]);
        let row = row.as_slice_mut().expect("batch rows are contiguous");
        let Some(chw) = image else {
            let base = Sample::index_of(entry, false) * f;
            copy(base..base + f, row, maps[0]);
            continue;
        };
        let Sample { index, dx, dy } = Sample::decode(entry);
        let base = index as usize * f;
        let (h, w, plane) = (chw.h, chw.w, chw.plane());
        for (c, out) in row.chunks_exact_mut(plane).enumerate() {
            let map = maps[c.min(maps.len() - 1)];
            let base = base + c * plane;
            if (dx, dy) == (0, 0) {
                copy(base..base + plane, out, map);
                continue;
            }
            // Output pixel (y, x) shows source pixel (y - dy, x - dx); outside the source it
            // reads as a 0 byte, which maps to the channel's shift. Row by row: the covered
            // columns are one contiguous copy, the rest a fill.
            let (dx, dy) = (dx as isize, dy as isize);
            let cols = w.saturating_sub(dx.unsigned_abs());
            let (out_x, src_x) = if dx >= 0 {
                (dx as usize, 0)
            } else {
                (0, (-dx) as usize)
            };
            for (y, out) in out.chunks_exact_mut(w).enumerate().take(h) {
                let src_y = y as isize - dy;
                if src_y < 0 || src_y >= h as isize || cols == 0 {
                    out.fill(map.shift);
                    continue;
                }
                let src = base + src_y as usize * w + src_x;
                out[..out_x].fill(map.shift);
                copy(src..src + cols, &mut out[out_x..out_x + cols], map);
                out[out_x + cols..].fill(map.shift);
            }
        }
    }
}

/// Starts loading the stored values of `order`'s samples into this core's caches, so that
/// gathering them a step later finds them there: each sample is a random row of a dataset far
/// larger than the caches (MNIST's 47 MB of bytes), and without the hint the gather waits on
/// memory row by row. A hint only: it changes no result, and entries past the data are ignored.
pub fn prefetch(data: &Dataset, order: &[u32]) {
    let f = data.features();
    let image = data.is_image();
    let rows = order.iter().map(|&e| Sample::index_of(e, image) * f);
    match data.inputs() {
        Inputs::U8(v) => rows.for_each(|base| prefetch_range(v.get(base..base + f))),
        Inputs::F32(v) => rows.for_each(|base| prefetch_range(v.get(base..base + f))),
    }
}

/// Prefetches every cache line of `values` (64-byte lines, x86-64's; elsewhere nothing).
fn prefetch_range<T>(values: Option<&[T]>) {
    #[cfg(target_arch = "x86_64")]
    if let Some(values) = values {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        const LINE: usize = 64;
        let (start, bytes) = (values.as_ptr().cast::<i8>(), std::mem::size_of_val(values));
        // From the line holding the first byte to the one holding the last.
        let first = start as usize / LINE;
        let last = (start as usize + bytes.max(1) - 1) / LINE;
        for line in first..=last {
            let offset = (line * LINE).saturating_sub(start as usize);
            // SAFETY: `offset` < `bytes` (each line from the first starts inside the slice or,
            // for the first, before its start, when the offset is 0), so the pointer stays in
            // the slice; a prefetch never faults and reads nothing the program sees.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.add(offset)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = values;
}

/// `out[i] = to_f32(src[i]) · scale + shift`, over equal-length slices so that it vectorises;
/// compiled for AVX-512 and AVX2 too, chosen at run time.
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512dq+avx512vl",
    "x86_64+avx2+fma"
))]
fn convert<T: Copy>(src: &[T], out: &mut [f32], to_f32: impl Fn(T) -> f32, scale: f32, shift: f32) {
    for (o, &p) in out.iter_mut().zip(src) {
        *o = to_f32(p) * scale + shift;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Targets;

    #[test]
    fn shifted_gather_moves_the_image() {
        // A 3x3 image with one lit pixel in the centre, shifted right by 1 and up by 1.
        let mut px = vec![0u8; 9];
        px[4] = 255;
        let mut d = Dataset::new(
            9,
            Inputs::U8(px),
            Targets::Labels {
                labels: vec![0],
                classes: 2,
            },
            Normalize::UNIT,
        )
        .unwrap();
        d.image = Some(crate::shape::Chw::new(1, 3, 3));
        let mut x = ndarray::Array2::zeros((1, 9));
        let entry = Sample {
            index: 0,
            dx: 1,
            dy: -1,
        }
        .encode();
        gather_inputs(&d, &[entry], x.view_mut());
        let lit: Vec<usize> = x
            .iter()
            .enumerate()
            .filter(|(_, v)| **v > 0.5)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(lit, vec![2]); // row 0, column 2
    }

    #[test]
    fn every_channel_shifts_and_has_its_own_map() {
        // Two 3x3 channels, each with one lit pixel in the centre, shifted left by 1: both
        // lights move, and each channel maps its bytes by its own scale and shift.
        let mut px = vec![0u8; 18];
        px[4] = 255;
        px[9 + 4] = 255;
        let mut d = Dataset::new(
            18,
            Inputs::U8(px),
            Targets::Labels {
                labels: vec![0],
                classes: 2,
            },
            Normalize::UNIT,
        )
        .unwrap();
        d.image = Some(crate::shape::Chw::new(2, 3, 3));
        let maps = vec![
            Normalize::UNIT,
            Normalize {
                scale: 2.0 / 255.0,
                shift: -1.0,
            },
        ];
        d.set_channel_maps(maps).unwrap();
        let mut x = ndarray::Array2::zeros((1, 18));
        let entry = Sample {
            index: 0,
            dx: -1,
            dy: 0,
        }
        .encode();
        gather_inputs(&d, &[entry], x.view_mut());
        let row = x.row(0).to_vec();
        let mut want = vec![0.0f32; 9];
        want[3] = 1.0;
        want.extend([-1.0; 9]);
        want[9 + 3] = 1.0;
        assert_eq!(row, want);
    }
}

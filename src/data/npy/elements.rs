//! Reading an array's elements once the header is known: the size checks against the data
//! present and the limits, the single pass that reads the payload straight into its final
//! vector or converts it in [`CHUNK_BYTES`] chunks (byte order, widening to `i64` / `f32`,
//! `f2` → `f32`), the transparent-huge-page advice for large buffers on Linux, and the
//! Fortran-to-C transpose. Every allocation is sized from counts already checked against
//! [`MAX_NPY_BYTES`], and a failed allocation is an error rather than an abort.

use std::io::{self, Read};

use super::header::{Dtype, Header, Kind, read_header};
use super::source::{Origin, Source};
use super::{Array, CHUNK_BYTES, MAX_NPY_BYTES, Values};
use crate::error::{Error, Result};

/// Reads one `.npy` whose bytes (all of them, header included) are the next `total` bytes of
/// `r`. Every size is checked against `total` before anything is allocated from it.
pub(super) fn read_npy(src: &Source, r: &mut impl Read, total: u64) -> Result<Array> {
    let (header, data_start) = read_header(src, r, total)?;
    let count = check_sizes(src, &header, total - data_start)?;
    let mut values = read_values(src, r, header.dtype, count)?;
    expect_end(src, r)?;
    if header.fortran_order && header.shape.len() > 1 {
        values = match values {
            Values::U8(v) => Values::U8(fortran_to_c(src, &v, &header.shape)?),
            Values::Int(v) => Values::Int(fortran_to_c(src, &v, &header.shape)?),
            Values::F32(v) => Values::F32(fortran_to_c(src, &v, &header.shape)?),
        };
    }
    Ok(Array {
        shape: header.shape,
        values,
        dtype: header.descr,
    })
}

/// Checks the shape against the limits and the data present; returns the element count.
fn check_sizes(src: &Source, header: &Header, present: u64) -> Result<usize> {
    let Header {
        descr,
        shape,
        dtype,
        ..
    } = header;
    let count = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| {
            src.format(
                "shape",
                "an element count that fits in usize",
                format!("shape {shape:?}, whose product overflows"),
            )
        })?;
    let what = |bytes: &str| format!("the {bytes} of an array of shape {shape:?} ({descr})");
    let in_file = (count as u64).checked_mul(dtype.size as u64);
    let widened = (count as u64).checked_mul(dtype.widened_size() as u64);
    let limit = MAX_NPY_BYTES.min(isize::MAX as u64);
    match (in_file, widened) {
        (Some(f), _) if f > limit => return Err(src.too_large(&what("data"), f, limit)),
        (_, Some(w)) if w > limit => return Err(src.too_large(&what("widened values"), w, limit)),
        (None, _) | (_, None) => return Err(src.too_large(&what("data"), u64::MAX, limit)),
        _ => {}
    }
    let needed = in_file.unwrap_or(u64::MAX);
    if present != needed {
        let found = if present < needed {
            format!("{present} bytes after the header: the file is truncated or the shape lies")
        } else {
            format!(
                "{present} bytes after the header: {} bytes past the array",
                present - needed
            )
        };
        return Err(src.format(
            "data length",
            format!("{needed} bytes for shape {shape:?} of {descr}"),
            found,
        ));
    }
    Ok(count)
}

/// After the array, the source must be at its end: a member that decompresses to more than it
/// declared, or a file that grew while being read, is an error.
fn expect_end(src: &Source, r: &mut impl Read) -> Result<()> {
    let mut probe = [0u8; 1];
    loop {
        match r.read(&mut probe) {
            Ok(0) => return Ok(()),
            Ok(_) => {
                let (field, expected) = match src.origin {
                    Origin::Member => ("npz member", "exactly the size the archive declares"),
                    _ => ("data length", "the file to end after the array"),
                };
                return Err(src.format(field, expected, "more bytes"));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(src.read_error(e)),
        }
    }
}

/// A vector of `n` zeroes, or `TooLarge` where memory runs out. Zeroed allocation maps fresh
/// pages without writing them, so reading into it costs one pass.
fn zeroed<T: bytemuck::Zeroable>(src: &Source, n: usize) -> Result<Vec<T>> {
    let mut v = bytemuck::allocation::try_zeroed_vec(n).map_err(|()| out_of_memory::<T>(src, n))?;
    advise_huge_pages(&mut v);
    Ok(v)
}

/// An empty vector with room for `n` values, or `TooLarge` where memory runs out.
fn with_capacity<T>(src: &Source, n: usize) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| out_of_memory::<T>(src, n))?;
    advise_huge_pages(v.spare_capacity_mut());
    Ok(v)
}

fn out_of_memory<T>(src: &Source, n: usize) -> Error {
    let bytes = (n as u64).saturating_mul(size_of::<T>() as u64);
    Error::TooLarge {
        what: format!("{}: the array's values", src.path.display()),
        needed: format!("{bytes} bytes"),
        limit: "the memory that could be allocated".to_string(),
    }
}

/// Reads `count` elements of `dtype` and widens them.
fn read_values(src: &Source, r: &mut impl Read, dtype: Dtype, count: usize) -> Result<Values> {
    let native = dtype.big_endian == cfg!(target_endian = "big");
    let be = dtype.big_endian;
    // Reads through the chunk buffer, converting each element of `$n` bytes with `$f`.
    macro_rules! convert {
        ($variant:ident, $n:literal, $f:expr) => {
            Values::$variant(convert(src, r, count, $n, map::<_, $n>($f))?)
        };
    }
    Ok(match (dtype.kind, dtype.size) {
        (Kind::Unsigned, 1) => Values::U8(read_direct(src, r, count)?),
        (Kind::Bool, _) => {
            let mut v: Vec<u8> = read_direct(src, r, count)?;
            v.iter_mut().for_each(|b| *b = u8::from(*b != 0));
            Values::U8(v)
        }
        (Kind::Float, 4) if native => Values::F32(read_direct(src, r, count)?),
        (Kind::Signed, 8) if native => Values::Int(read_direct(src, r, count)?),
        (Kind::Float, 2) => convert!(F32, 2, |b| f16_to_f32(word::<2, u16>(b, be))),
        (Kind::Float, 4) => convert!(F32, 4, |b| f32::from_bits(word::<4, u32>(b, be))),
        (Kind::Float, _) => convert!(F32, 8, |b| f64::from_bits(word::<8, u64>(b, be)) as f32),
        (Kind::Signed, 1) => convert!(Int, 1, |b| i64::from(b[0] as i8)),
        (Kind::Signed, 2) => convert!(Int, 2, |b| i64::from(word::<2, u16>(b, be) as i16)),
        (Kind::Signed, 4) => convert!(Int, 4, |b| i64::from(word::<4, u32>(b, be) as i32)),
        (Kind::Signed, _) => convert!(Int, 8, |b| word::<8, u64>(b, be) as i64),
        (Kind::Unsigned, 2) => convert!(Int, 2, |b| i64::from(word::<2, u16>(b, be))),
        (Kind::Unsigned, 4) => convert!(Int, 4, |b| i64::from(word::<4, u32>(b, be))),
        (Kind::Unsigned, _) => Values::Int(convert(src, r, count, 8, |bytes, first, out| {
            u64_to_i64(src, bytes, first, be, out)
        })?),
    })
}

/// Reads elements whose file bytes are already their in-memory values straight into the
/// final vector: one pass, no intermediate copy.
fn read_direct<T: bytemuck::Pod>(src: &Source, r: &mut impl Read, count: usize) -> Result<Vec<T>> {
    let mut values = zeroed::<T>(src, count)?;
    src.read_exact(r, bytemuck::cast_slice_mut(&mut values))?;
    Ok(values)
}

/// Asks Linux to back a large, not yet touched buffer with transparent huge pages, as NumPy
/// does for its arrays: reading into fresh memory is otherwise dominated by one page fault
/// per 4 KB, and the kernel's default (`madvise`) grants huge pages only to those who ask.
#[cfg(target_os = "linux")]
fn advise_huge_pages<T>(values: &mut [T]) {
    const PAGE: usize = 4096;
    const MIN_BYTES: usize = 4 << 20;
    let bytes = size_of_val(values);
    if bytes < MIN_BYTES {
        return;
    }
    let start = values.as_mut_ptr() as usize;
    let aligned = start.next_multiple_of(PAGE);
    let length = (start + bytes - aligned) / PAGE * PAGE;
    // SAFETY: the range lies inside `values`' allocation (its start rounded up and its length
    // down to whole pages), and MADV_HUGEPAGE is advice only: it changes neither the contents
    // nor the mapping's permissions. A failure (say, a kernel without THP) is harmless.
    unsafe {
        libc::madvise(aligned as *mut libc::c_void, length, libc::MADV_HUGEPAGE);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages<T>(_values: &mut [T]) {}

/// Reads `count` elements of `size` bytes through one reused chunk buffer; `step` converts a
/// chunk (whose first element has index `first`) and appends it to the output.
fn convert<T>(
    src: &Source,
    r: &mut impl Read,
    count: usize,
    size: usize,
    mut step: impl FnMut(&[u8], usize, &mut Vec<T>) -> Result<()>,
) -> Result<Vec<T>> {
    let mut out = with_capacity(src, count)?;
    let per_chunk = (CHUNK_BYTES / size).min(count);
    let mut buf = vec![0u8; per_chunk * size];
    while out.len() < count {
        let n = per_chunk.min(count - out.len());
        let bytes = &mut buf[..n * size];
        src.read_exact(r, bytes)?;
        step(bytes, out.len(), &mut out)?;
    }
    Ok(out)
}

/// Turns an element conversion into a chunk step for [`convert`].
fn map<T, const N: usize>(
    f: impl Fn([u8; N]) -> T,
) -> impl FnMut(&[u8], usize, &mut Vec<T>) -> Result<()> {
    move |bytes, _, out| {
        out.extend(
            bytes
                .chunks_exact(N)
                .map(|b| f(b.try_into().unwrap_or([0; N]))),
        );
        Ok(())
    }
}

/// An unsigned word from its bytes in the file's byte order.
fn word<const N: usize, W: Word<N>>(b: [u8; N], big_endian: bool) -> W {
    if big_endian {
        W::from_be(b)
    } else {
        W::from_le(b)
    }
}

trait Word<const N: usize> {
    fn from_le(b: [u8; N]) -> Self;
    fn from_be(b: [u8; N]) -> Self;
}

macro_rules! word {
    ($t:ty, $n:literal) => {
        impl Word<$n> for $t {
            fn from_le(b: [u8; $n]) -> Self {
                <$t>::from_le_bytes(b)
            }
            fn from_be(b: [u8; $n]) -> Self {
                <$t>::from_be_bytes(b)
            }
        }
    };
}
word!(u16, 2);
word!(u32, 4);
word!(u64, 8);

/// Widens a chunk of `u8` elements, refusing values that `i64` cannot hold.
fn u64_to_i64(
    src: &Source,
    bytes: &[u8],
    first: usize,
    be: bool,
    out: &mut Vec<i64>,
) -> Result<()> {
    for (i, b) in bytes.chunks_exact(8).enumerate() {
        let v: u64 = word(b.try_into().unwrap_or([0; 8]), be);
        let v = i64::try_from(v).map_err(|_| {
            src.format(
                "dtype",
                "u8 values up to i64::MAX (9223372036854775807)",
                format!("{v} at element {} (in file order)", first + i),
            )
        })?;
        out.push(v);
    }
    Ok(())
}

/// An IEEE half-precision value as f32; exact, since every f16 is an f32.
pub(super) fn f16_to_f32(h: u16) -> f32 {
    let negative = h & 0x8000 != 0;
    let exp = u32::from((h >> 10) & 0x1f);
    let frac = u32::from(h & 0x3ff);
    let bits = match exp {
        // Zero or subnormal: frac · 2^-24, exact in f32.
        0 => {
            let magnitude = frac as f32 * f32::from_bits(0x3380_0000);
            return if negative { -magnitude } else { magnitude };
        }
        // Infinity or NaN: the payload moves to the top of f32's fraction.
        0x1f => 0x7f80_0000 | (frac << 13),
        _ => ((exp + 127 - 15) << 23) | (frac << 13),
    };
    f32::from_bits(bits | u32::from(negative) << 31)
}

/// Turns Fortran-ordered values (first axis fastest) into C order (last axis fastest).
///
/// The permutation reverses the axes. For each index of the middle axes, the first and last
/// axes form a 2-D transpose (source contiguous along the first axis, destination along the
/// last), done in square blocks so that both sides stay in cache.
fn fortran_to_c<T: bytemuck::Zeroable + Copy>(
    src: &Source,
    values: &[T],
    shape: &[usize],
) -> Result<Vec<T>> {
    const BLOCK: usize = 32;
    let mut out = zeroed::<T>(src, values.len())?;
    let (Some(&rows), Some(&cols)) = (shape.first(), shape.last()) else {
        return Ok(values.to_vec());
    };
    if values.is_empty() || shape.len() < 2 {
        out.copy_from_slice(values);
        return Ok(out);
    }
    let axes = shape.len();
    // Source strides: axis k moves by the product of the axes before it (first axis fastest).
    let src_strides: Vec<usize> = (0..axes).map(|k| shape[..k].iter().product()).collect();
    // Destination strides: axis k moves by the product of the axes after it (C order).
    let dst_strides: Vec<usize> = (0..axes).map(|k| shape[k + 1..].iter().product()).collect();
    let (src_col_stride, dst_row_stride) = (src_strides[axes - 1], dst_strides[0]);
    // The index of the middle axes (1 to axes-2), advanced like an odometer.
    let mut index = vec![0usize; axes - 2];
    loop {
        let middle = index.iter().zip(1..);
        let src_base: usize = middle.clone().map(|(&i, k)| i * src_strides[k]).sum();
        let dst_base: usize = middle.map(|(&i, k)| i * dst_strides[k]).sum();
        for r0 in (0..rows).step_by(BLOCK) {
            for c0 in (0..cols).step_by(BLOCK) {
                for r in r0..(r0 + BLOCK).min(rows) {
                    let (src_row, dst_row) = (src_base + r, dst_base + r * dst_row_stride);
                    for c in c0..(c0 + BLOCK).min(cols) {
                        out[dst_row + c] = values[src_row + c * src_col_stride];
                    }
                }
            }
        }
        let Some(k) = (0..index.len())
            .rev()
            .find(|&k| index[k] + 1 < shape[k + 1])
        else {
            return Ok(out);
        };
        index[k] += 1;
        index[k + 1..].iter_mut().for_each(|i| *i = 0);
    }
}

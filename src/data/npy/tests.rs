//! Tests of the `.npy` / `.npz` reader: headers and dtypes built byte by byte, every refusal
//! (truncation, trailing bytes, oversized claims, zip bombs, bad dtypes) checked to be an error
//! that names its source rather than a panic, and round trips against the NumPy-written
//! fixtures in `tests/data/npy` (or `SOMA_NPY_FIXTURES`).

use super::elements::f16_to_f32;
use super::*;
use std::io::Write;
use std::path::PathBuf;

/// An `.npy` file of the given version: magic, version, header length, the dict padded
/// with spaces and a newline to a multiple of 64 bytes (as NumPy pads it), then `data`.
fn npy_with(major: u8, dict: &str, data: &[u8]) -> Vec<u8> {
    let len_bytes = if major == 1 { 2 } else { 4 };
    let unpadded = 8 + len_bytes + dict.len() + 1;
    let header_len = dict.len() + 1 + (64 - unpadded % 64) % 64;
    let mut out = MAGIC.to_vec();
    out.extend([major, 0]);
    out.extend(&(header_len as u32).to_le_bytes()[..len_bytes]);
    out.extend(dict.as_bytes());
    out.resize(8 + len_bytes + header_len - 1, b' ');
    out.push(b'\n');
    out.extend(data);
    out
}

fn npy(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
    let fortran = if fortran { "True" } else { "False" };
    let dict = format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}");
    npy_with(1, &dict, data)
}

fn read(bytes: &[u8]) -> Result<Array> {
    read_npy_bytes(Path::new("t.npy"), bytes)
}

fn err(bytes: &[u8]) -> String {
    match read(bytes) {
        Ok(a) => panic!("expected an error, read {a:?}"),
        Err(e) => e.to_string(),
    }
}

fn ints(bytes: &[u8]) -> Vec<i64> {
    match read(bytes).unwrap().values {
        Values::Int(v) => v,
        other => panic!("expected Int values, got {other:?}"),
    }
}

fn floats(bytes: &[u8]) -> Vec<f32> {
    match read(bytes).unwrap().values {
        Values::F32(v) => v,
        other => panic!("expected F32 values, got {other:?}"),
    }
}

fn bytes_of(bytes: &[u8]) -> Vec<u8> {
    match read(bytes).unwrap().values {
        Values::U8(v) => v,
        other => panic!("expected U8 values, got {other:?}"),
    }
}

/// Each value's bytes in the given order (`le` little-endian, else big-endian).
fn encode<const N: usize, T: Copy>(values: &[T], le: bool, to: fn(T) -> [u8; N]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|&v| {
            let mut b = to(v);
            if !le {
                b.reverse();
            }
            b
        })
        .collect()
}

#[test]
fn integers_in_both_byte_orders() {
    for (le, o) in [(true, '<'), (false, '>')] {
        let v8 = [-3i8, 0, 127, -128];
        let d = encode(&v8, le, i8::to_le_bytes);
        assert_eq!(ints(&npy("|i1", false, "(4,)", &d)), [-3, 0, 127, -128]);
        let v16 = [-30000i16, 1, 32767];
        let d = encode(&v16, le, i16::to_le_bytes);
        assert_eq!(
            ints(&npy(&format!("{o}i2"), false, "(3,)", &d)),
            [-30000, 1, 32767]
        );
        let v32 = [i32::MIN, -1, i32::MAX];
        let d = encode(&v32, le, i32::to_le_bytes);
        let want: Vec<i64> = v32.iter().map(|&v| v.into()).collect();
        assert_eq!(ints(&npy(&format!("{o}i4"), false, "(3,)", &d)), want);
        let v64 = [i64::MIN, -5, i64::MAX];
        let d = encode(&v64, le, i64::to_le_bytes);
        assert_eq!(ints(&npy(&format!("{o}i8"), false, "(3,)", &d)), v64);
        let u16s = [0u16, 65535, 258];
        let d = encode(&u16s, le, u16::to_le_bytes);
        assert_eq!(
            ints(&npy(&format!("{o}u2"), false, "(3,)", &d)),
            [0, 65535, 258]
        );
        let u32s = [0u32, u32::MAX, 1 << 24];
        let d = encode(&u32s, le, u32::to_le_bytes);
        let want: Vec<i64> = u32s.iter().map(|&v| v.into()).collect();
        assert_eq!(ints(&npy(&format!("{o}u4"), false, "(3,)", &d)), want);
        let u64s = [0u64, i64::MAX as u64, 7];
        let d = encode(&u64s, le, u64::to_le_bytes);
        assert_eq!(
            ints(&npy(&format!("{o}u8"), false, "(3,)", &d)),
            [0, i64::MAX, 7]
        );
    }
    assert_eq!(ints(&npy("=i2", false, "(1,)", &[1, 2])), [0x0201]);
}

#[test]
fn u8_above_i64_max_is_refused_naming_the_element() {
    let d = encode(&[1u64, 2, 1 << 63], true, u64::to_le_bytes);
    let e = err(&npy("<u8", false, "(3,)", &d));
    assert!(e.contains("9223372036854775808 at element 2"), "{e}");
    let d = encode(&[u64::MAX], false, u64::to_le_bytes);
    assert!(err(&npy(">u8", false, "(1,)", &d)).contains("at element 0"));
}

#[test]
fn floats_in_both_byte_orders() {
    for (le, o) in [(true, '<'), (false, '>')] {
        let f4 = [1.5f32, -0.0, f32::INFINITY, 3.4e38, 1e-45];
        let d = encode(&f4, le, f32::to_le_bytes);
        let got = floats(&npy(&format!("{o}f4"), false, "(5,)", &d));
        assert_eq!(
            got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            f4.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        let f8 = [0.1f64, -2.5, 1e300, 1e-300, f64::NEG_INFINITY];
        let d = encode(&f8, le, f64::to_le_bytes);
        let want: Vec<f32> = f8.iter().map(|&v| v as f32).collect();
        assert_eq!(floats(&npy(&format!("{o}f8"), false, "(5,)", &d)), want);
        // 1, -2, 65504 (max), 2^-24 (least subnormal), 2^-14·1023/1024 (largest
        // subnormal), -0, inf, -inf, 2^-14 (least normal), 1/3 rounded.
        let f2 = [
            0x3c00u16, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x8000, 0x7c00, 0xfc00, 0x0400, 0x3555,
        ];
        let d = encode(&f2, le, u16::to_le_bytes);
        let got = floats(&npy(&format!("{o}f2"), false, "(10,)", &d));
        let want = [
            1.0,
            -2.0,
            65504.0,
            2f32.powi(-24),
            2f32.powi(-14) * 1023.0 / 1024.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            2f32.powi(-14),
            0.333_251_95,
        ];
        assert_eq!(
            got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            want.iter().map(|v: &f32| v.to_bits()).collect::<Vec<_>>()
        );
    }
    let nan = floats(&npy("<f2", false, "(1,)", &[0x01, 0x7e]));
    assert!(nan[0].is_nan());
}

#[test]
fn f2_conversion_is_exact_for_every_value() {
    for h in 0..=u16::MAX {
        let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
        let (exp, frac) = (i32::from((h >> 10) & 0x1f), f64::from(h & 0x3ff));
        let want = match exp {
            0 => sign * frac * 2f64.powi(-24),
            31 if frac == 0.0 => sign * f64::INFINITY,
            31 => f64::NAN,
            _ => sign * (1.0 + frac / 1024.0) * 2f64.powi(exp - 15),
        };
        let got = f16_to_f32(h);
        if want.is_nan() {
            assert!(got.is_nan(), "{h:#06x}");
        } else {
            assert_eq!(got.to_bits(), (want as f32).to_bits(), "{h:#06x}");
        }
    }
}

#[test]
fn bytes_and_bools() {
    assert_eq!(
        bytes_of(&npy("|u1", false, "(4,)", &[0, 1, 200, 255])),
        [0, 1, 200, 255]
    );
    assert_eq!(
        bytes_of(&npy("|b1", false, "(4,)", &[0, 1, 2, 255])),
        [0, 1, 1, 1]
    );
    let a = read(&npy("|b1", false, "(2, 2)", &[1, 0, 0, 7])).unwrap();
    assert_eq!(
        (a.shape, a.dtype, a.values),
        (vec![2, 2], "|b1".into(), Values::U8(vec![1, 0, 0, 1]))
    );
    assert_eq!(bytes_of(&npy("<u1", false, "(1,)", &[9])), [9]);
}

#[test]
fn zero_d_one_d_and_empty_shapes() {
    let a = read(&npy("<i4", false, "()", &7i32.to_le_bytes())).unwrap();
    assert_eq!((a.shape.clone(), a.len()), (vec![], 1));
    assert_eq!(a.values, Values::Int(vec![7]));
    let a = read(&npy("<f4", false, "(2,)", &[0, 0, 128, 63, 0, 0, 0, 64])).unwrap();
    assert_eq!((a.shape, a.values), (vec![2], Values::F32(vec![1.0, 2.0])));
    let a = read(&npy("<f8", true, "(0, 5)", &[])).unwrap();
    assert_eq!(
        (a.shape.clone(), a.len(), a.is_empty()),
        (vec![0, 5], 0, true)
    );
    // A 0-length axis makes any other axis length legal, even one near usize::MAX.
    let a = read(&npy("<i8", false, &format!("(0, {})", usize::MAX), &[])).unwrap();
    assert_eq!(a.len(), 0);
}

#[test]
fn fortran_order_2d_is_transposed_to_c_order() {
    // C-order [[0, 1, 2], [3, 4, 5]] is stored column by column in Fortran order.
    let a = read(&npy("|u1", true, "(2, 3)", &[0, 3, 1, 4, 2, 5])).unwrap();
    assert_eq!(
        (a.shape, a.values),
        (vec![2, 3], Values::U8(vec![0, 1, 2, 3, 4, 5]))
    );
    // Larger than a block in both axes, with ragged edges, widened and byte-swapped.
    let (rows, cols) = (70usize, 45usize);
    let fortran: Vec<i32> = (0..cols)
        .flat_map(|c| (0..rows).map(move |r| (r * cols + c) as i32))
        .collect();
    let d = encode(&fortran, false, i32::to_le_bytes);
    let got = ints(&npy(">i4", true, &format!("({rows}, {cols})"), &d));
    assert_eq!(got, (0..(rows * cols) as i64).collect::<Vec<_>>());
}

#[test]
fn fortran_order_nd_reverses_the_axes() {
    for shape in [
        vec![2, 3, 4],
        vec![40, 3, 35],
        vec![2, 1, 3, 2],
        vec![3, 2, 2, 2, 3],
    ] {
        let n: usize = shape.iter().product();
        // Element at C index i holds i; Fortran order enumerates indices first axis fastest.
        let mut fortran = Vec::with_capacity(n);
        let mut index = vec![0usize; shape.len()];
        for _ in 0..n {
            let c = index
                .iter()
                .zip(&shape)
                .fold(0, |acc, (&i, &d)| acc * d + i);
            fortran.push(c as f32);
            for (i, &d) in index.iter_mut().zip(&shape) {
                *i += 1;
                if *i < d {
                    break;
                }
                *i = 0;
            }
        }
        let d = encode(&fortran, true, f32::to_le_bytes);
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        let a = read(&npy("<f4", true, &format!("({})", dims.join(", ")), &d)).unwrap();
        assert_eq!(a.shape, shape);
        assert_eq!(
            a.values,
            Values::F32((0..n).map(|i| i as f32).collect()),
            "{shape:?}"
        );
    }
    // 1-d and 0-d arrays are the same in either order.
    assert_eq!(
        ints(&npy("<i2", true, "(3,)", &[1, 0, 2, 0, 3, 0])),
        [1, 2, 3]
    );
    assert_eq!(ints(&npy("<i2", true, "()", &[9, 0])), [9]);
}

#[test]
fn header_versions_and_spellings() {
    let dict = "{'descr': '<i2', 'fortran_order': False, 'shape': (2,), }";
    for major in [1, 2, 3] {
        assert_eq!(
            ints(&npy_with(major, dict, &[1, 0, 2, 0])),
            [1, 2],
            "version {major}"
        );
    }
    for dict in [
        "{'shape': (2,), 'fortran_order': False, 'descr': '<i2'}",
        "{\"descr\":\"<i2\",\"fortran_order\":False,\"shape\":(2L,)}",
        "{ 'fortran_order' : False , 'shape' : ( 2 , ) , 'descr' : '<i2' , }",
        "{'descr': '<i2', 'fortran_order': False, 'shape': (1, 2,)}",
    ] {
        assert_eq!(ints(&npy_with(1, dict, &[1, 0, 2, 0])), [1, 2], "{dict}");
    }
    // Version 3.0 is UTF-8; 1.0 is Latin-1, where the same bytes are other characters.
    let e = err(&npy_with(
        3,
        "{'descr': '<i2', 'fortran_order': False, 'shape': (1,), 'é': 1}",
        &[1, 0],
    ));
    assert!(e.contains("key \"é\""), "{e}");
    let mut bad_utf8 = npy_with(
        3,
        "{'descr': '<i2', 'fortran_order': False, 'shape': (1,)}",
        &[1, 0],
    );
    bad_utf8[20] = 0xff;
    assert!(err(&bad_utf8).contains("UTF-8"));
}

#[test]
fn malformed_headers_are_refused() {
    let cases = [
        ("[1, 2]", "a Python dict literal"),
        (
            "{'descr': '<i2', 'fortran_order': False}",
            "the keys 'descr', 'fortran_order' and 'shape'",
        ),
        (
            "{'descr': '<i2', 'fortran_order': False, 'shape': (1,), 'x': 1}",
            "only the keys",
        ),
        (
            "{'descr': '<i2', 'descr': '<i2', 'fortran_order': False, 'shape': (1,)}",
            "each key once",
        ),
        (
            "{'descr': '<i2', 'fortran_order': 0, 'shape': (1,)}",
            "True or False",
        ),
        (
            "{'descr': '<i2', 'fortran_order': False, 'shape': (1)}",
            "a one-axis shape is written (n,)",
        ),
        (
            "{'descr': '<i2', 'fortran_order': False, 'shape': [1]}",
            "a shape tuple",
        ),
        (
            "{'descr': '<i2', 'fortran_order': False, 'shape': (-1,)}",
            "an axis length",
        ),
        (
            "{'descr': '<i2', 'fortran_order': False, 'shape': (1,) 'x'}",
            "',' or '}'",
        ),
        (
            "{'descr': '<i2', 'fortran_order': False, 'shape': (1,)} x",
            "nothing but spaces",
        ),
        (
            "{'descr': '<i\\x32', 'fortran_order': False, 'shape': (1,)}",
            "without escapes",
        ),
        (
            "{'descr': '<i2', 'fortran_order': False, 'shape': (99999999999999999999999,)}",
            "fits in usize",
        ),
        (
            "{'descr': '<i2', 'fortran_order': False, 'shape': (1,",
            "an axis length",
        ),
        (
            "{'descr': '<i2', 'fortran_order': False, 'shape': (1 2)}",
            "',' or ')'",
        ),
    ];
    for (dict, want) in cases {
        let e = err(&npy_with(1, dict, &[1, 0]));
        assert!(
            e.contains("t.npy: bad npy header") && e.contains(want),
            "{dict}: {e}"
        );
    }
    let too_many_axes = format!("({})", vec!["1"; 65].join(", "));
    assert!(err(&npy("<i2", false, &too_many_axes, &[1, 0])).contains("at most 64 axes"));
}

#[test]
fn unsupported_dtypes_are_refused_by_name() {
    for descr in ["|O", "<O8"] {
        let e = err(&npy(descr, false, "(1,)", &[0; 8]));
        assert!(e.contains("never unpickles") && e.contains(descr), "{e}");
    }
    let dict = "{'descr': [('a', '<i4'), ('b', '|O')], 'fortran_order': False, 'shape': (1,)}";
    assert!(err(&npy_with(1, dict, &[0; 12])).contains("never unpickles"));
    let dict = "{'descr': [('a', '<i4'), ('b', '<f8')], 'fortran_order': False, 'shape': (1,)}";
    let e = err(&npy_with(1, dict, &[0; 12]));
    assert!(
        e.contains("structured") && e.contains("('b', '<f8')"),
        "{e}"
    );
    for descr in [
        "<U3", "|S4", "<c8", "<M8[ns]", "<m8", "<f16", "|V4", "<i3", "|i2", "i4", "", "<", "|b2",
        "|f1",
    ] {
        let e = err(&npy(descr, false, "(1,)", &[0; 4]));
        assert!(
            e.contains("t.npy: bad dtype") && e.contains(&format!("{descr:?}")),
            "{descr}: {e}"
        );
    }
}

#[test]
fn truncated_and_oversized_files_are_refused() {
    let good = npy("<i4", false, "(2,)", &[1, 0, 0, 0, 2, 0, 0, 0]);
    for len in [0, 5, 8, 9, 10, 50, good.len() - 1] {
        let e = err(&good[..len]);
        assert!(e.starts_with("t.npy: bad "), "{len}: {e}");
    }
    assert!(err(&good[..9]).contains("header length"));
    assert!(err(&good[..50]).contains("a file of only 50 bytes"));
    let mut bad = good.clone();
    bad[0] = b'P';
    assert!(err(&bad).contains("magic"));
    bad = good.clone();
    bad[6] = 4;
    assert!(err(&bad).contains("version 4.0"));
    // A header length past the end, and one over the limit.
    bad = good.clone();
    bad[8..10].copy_from_slice(&1000u16.to_le_bytes());
    assert!(err(&bad).contains("a header of 1000 bytes"));
    let mut v2 = npy_with(
        2,
        "{'descr': '<i4', 'fortran_order': False, 'shape': (2,)}",
        &[],
    );
    v2[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(err(&v2).contains("a header of at most 65536 bytes"));
    // A shape that claims more than present, and data past the array.
    let e = err(&npy("<i4", false, "(3,)", &[0; 8]));
    assert!(
        e.contains("bad data length: expected 12 bytes for shape [3] of <i4, found 8 bytes"),
        "{e}"
    );
    let e = err(&npy("<i4", false, "(2,)", &[0; 9]));
    assert!(e.contains("1 bytes past the array"), "{e}");
    let e = err(&npy("<i4", false, "(1000000, 1000000)", &[0; 8]));
    assert!(e.contains("4000000000000 bytes"), "{e}");
}

#[test]
fn huge_shapes_are_refused_before_allocating() {
    let e = err(&npy("<f8", false, &format!("({}, 3)", usize::MAX / 2), &[]));
    assert!(e.contains("bad shape") && e.contains("overflows"), "{e}");
    let e = read(&npy("<f8", false, "(4294967296,)", &[])).unwrap_err();
    assert!(matches!(e, Error::TooLarge { .. }), "{e}");
    assert!(e.to_string().contains("34359738368 bytes"), "{e}");
    // The file's data fits the limit, the values widened to i64 would not.
    let e = read(&npy(
        "|i1",
        false,
        &format!("({},)", MAX_NPY_BYTES / 4),
        &[],
    ))
    .unwrap_err();
    assert!(
        matches!(e, Error::TooLarge { .. }) && e.to_string().contains("widened"),
        "{e}"
    );
}

#[test]
fn large_direct_reads() {
    // Past the size where the buffer is advised to use huge pages.
    let n = (6 << 20) / 4 + 1;
    let values: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let got = floats(&npy(
        "<f4",
        false,
        &format!("({n},)"),
        bytemuck::cast_slice(&values),
    ));
    assert_eq!(got, values);
    let d: Vec<u8> = (0..n).map(|i| i as u8).collect();
    assert_eq!(bytes_of(&npy("|u1", false, &format!("({n},)"), &d)), d);
}

#[test]
fn large_conversions_span_chunks() {
    // More than one chunk, and a chunk boundary inside the data.
    let n = CHUNK_BYTES / 8 * 2 + 3;
    let values: Vec<f64> = (0..n).map(|i| i as f64 * 0.5).collect();
    let d = encode(&values, false, f64::to_le_bytes);
    let got = floats(&npy(">f8", false, &format!("({n},)"), &d));
    assert!(got.iter().enumerate().all(|(i, &v)| v == i as f32 * 0.5));
    let values: Vec<u64> = (0..n as u64).collect();
    let mut d = encode(&values, true, u64::to_le_bytes);
    d[(n - 1) * 8 + 7] = 0x80;
    let e = err(&npy("<u8", false, &format!("({n},)"), &d));
    assert!(e.contains(&format!("at element {}", n - 1)), "{e}");
}

// --- .npz ---------------------------------------------------------------------------

struct Member<'a> {
    name: &'a str,
    data: Vec<u8>,
    deflate: bool,
    /// The uncompressed size written in the headers, when it should lie.
    declared: Option<u32>,
    /// The CRC written in the headers, when it should be wrong.
    crc: Option<u32>,
    /// Whether the sizes go in zip64 extra fields (as NumPy writes them), the 32-bit
    /// fields holding 0xFFFFFFFF.
    zip64: bool,
}

fn member(name: &str, data: Vec<u8>, deflate: bool) -> Member<'_> {
    Member {
        name,
        data,
        deflate,
        declared: None,
        crc: None,
        zip64: false,
    }
}

/// A zip archive of the members, written by hand so that tests can make its headers lie.
fn zip(members: &[Member]) -> Vec<u8> {
    let (mut out, mut central) = (Vec::new(), Vec::new());
    for m in members {
        let mut crc = flate2::Crc::new();
        crc.update(&m.data);
        let crc = m.crc.unwrap_or(crc.sum());
        let packed = if m.deflate {
            let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
            e.write_all(&m.data).unwrap();
            e.finish().unwrap()
        } else {
            m.data.clone()
        };
        let size = m.declared.unwrap_or(m.data.len() as u32);
        let method: u16 = if m.deflate { 8 } else { 0 };
        let mut extra = Vec::new();
        let (mut packed32, mut size32) = (packed.len() as u32, size);
        if m.zip64 {
            extra.extend(1u16.to_le_bytes());
            extra.extend(16u16.to_le_bytes());
            extra.extend(u64::from(size).to_le_bytes());
            extra.extend((packed.len() as u64).to_le_bytes());
            (packed32, size32) = (u32::MAX, u32::MAX);
        }
        let fields = |out: &mut Vec<u8>| {
            for v in [45u16, 0, method, 0, 0x21] {
                out.extend(v.to_le_bytes());
            }
            for v in [crc, packed32, size32] {
                out.extend(v.to_le_bytes());
            }
            out.extend((m.name.len() as u16).to_le_bytes());
            out.extend((extra.len() as u16).to_le_bytes());
        };
        let offset = out.len() as u32;
        out.extend(0x0403_4b50u32.to_le_bytes());
        fields(&mut out);
        out.extend(m.name.as_bytes());
        out.extend(&extra);
        out.extend(&packed);
        central.extend(0x0201_4b50u32.to_le_bytes());
        central.extend(20u16.to_le_bytes());
        fields(&mut central);
        central.extend([0u8; 10]);
        central.extend(offset.to_le_bytes());
        central.extend(m.name.as_bytes());
        central.extend(&extra);
    }
    let (dir_offset, dir_len) = (out.len() as u32, central.len() as u32);
    out.extend(central);
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0u8; 4]);
    out.extend((members.len() as u16).to_le_bytes());
    out.extend((members.len() as u16).to_le_bytes());
    out.extend(dir_len.to_le_bytes());
    out.extend(dir_offset.to_le_bytes());
    out.extend([0u8; 2]);
    out
}

fn npz(bytes: &[u8]) -> Result<Vec<(String, Array)>> {
    read_npz_bytes(Path::new("d.npz"), bytes)
}

fn npz_err(bytes: &[u8]) -> String {
    match npz(bytes) {
        Ok(a) => panic!("expected an error, read {a:?}"),
        Err(e) => e.to_string(),
    }
}

fn sample_x() -> Vec<u8> {
    npy("<f4", false, "(2,)", &[0, 0, 128, 63, 0, 0, 0, 64])
}

fn sample_y() -> Vec<u8> {
    npy("|u1", false, "(3,)", &[7, 8, 9])
}

#[test]
fn npz_stored_and_deflated() {
    for deflate in [false, true] {
        let z = zip(&[
            member("x.npy", sample_x(), deflate),
            member("y.npy", sample_y(), deflate),
        ]);
        let got = npz(&z).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, "x");
        assert_eq!(got[0].1.values, Values::F32(vec![1.0, 2.0]));
        assert_eq!(got[1].0, "y");
        assert_eq!(got[1].1.values, Values::U8(vec![7, 8, 9]));
    }
    // A member not named .npy is read when it is an .npy, and keeps its name.
    let got = npz(&zip(&[member("raw", sample_y(), true)])).unwrap();
    assert_eq!(got[0].0, "raw");
    let e = npz_err(&zip(&[
        member("x.npy", sample_x(), true),
        member("notes.txt", b"hello".to_vec(), true),
    ]));
    assert!(
        e.starts_with("d.npz: member notes.txt: bad npy header"),
        "{e}"
    );
    assert_eq!(npz(&zip(&[])).unwrap(), vec![]);
}

#[test]
fn npz_zip64_sizes() {
    for deflate in [false, true] {
        let mut x = member("x.npy", sample_x(), deflate);
        x.zip64 = true;
        let got = npz(&zip(&[x, member("y.npy", sample_y(), deflate)])).unwrap();
        assert_eq!(got[0].1.values, Values::F32(vec![1.0, 2.0]));
        assert_eq!(got[1].1.values, Values::U8(vec![7, 8, 9]));
    }
    // A zip64 size that lies is caught as the 32-bit one is.
    let mut m = member("y.npy", sample_y(), true);
    (m.zip64, m.declared) = (true, Some(u32::MAX - 1));
    assert!(npz_err(&zip(&[m])).contains("deflate's limit"));
}

#[test]
fn npz_member_errors_name_the_member() {
    let e = npz_err(&zip(&[member(
        "x.npy",
        npy("|O", false, "(1,)", &[0; 8]),
        true,
    )]));
    assert!(
        e.starts_with("d.npz: member x.npy: bad dtype") && e.contains("never unpickles"),
        "{e}"
    );
    let e = npz_err(b"PK\x03\x04 not really a zip");
    assert!(e.starts_with("d.npz: bad npz archive"), "{e}");
}

#[test]
fn npz_declared_size_lies_are_caught() {
    // The data inflates to more than declared: the bounded reader stops one byte past.
    let header_only = npy("|u1", false, "(3,)", &[]);
    let mut longer = sample_y();
    longer.extend([0u8; 5000]);
    let mut m = member("y.npy", longer, true);
    m.declared = Some(sample_y().len() as u32);
    let e = npz_err(&zip(&[m]));
    assert!(e.starts_with("d.npz: member y.npy: bad npz member"), "{e}");
    // The data inflates to less than declared (header consistent with the declared size).
    let mut m = member("y.npy", header_only.clone(), true);
    m.declared = Some(sample_y().len() as u32);
    let e = npz_err(&zip(&[m]));
    assert!(
        e.starts_with("d.npz: member y.npy: bad npz member") && e.contains("ends early"),
        "{e}"
    );
    // A stored member whose size differs from its stored bytes.
    let mut m = member("y.npy", sample_y(), false);
    m.declared = Some(10_000);
    assert!(npz_err(&zip(&[m])).contains("a stored member's size equal to its stored bytes"));
    // A corrupt CRC.
    let mut m = member("y.npy", sample_y(), true);
    m.crc = Some(12345);
    let e = npz_err(&zip(&[m]));
    assert!(e.starts_with("d.npz: member y.npy: bad npz member"), "{e}");
}

#[test]
fn npz_huge_declared_size_is_refused_before_inflating() {
    let mut m = member("y.npy", sample_y(), true);
    m.declared = Some(u32::MAX - 1);
    let e = npz_err(&zip(&[m]));
    assert!(
        e.contains("deflate's limit") && e.contains("4294967294 bytes"),
        "{e}"
    );
}

#[test]
fn npz_duplicate_members_are_refused() {
    let e = npz_err(&zip(&[
        member("x.npy", sample_x(), false),
        member("x.npy", sample_x(), false),
    ]));
    assert!(e.contains("distinct member names"), "{e}");
    let e = npz_err(&zip(&[
        member("x.npy", sample_x(), false),
        member("x", sample_x(), false),
    ]));
    assert!(
        e.starts_with("d.npz: member x: bad npz member")
            && e.contains("a second array named \"x\""),
        "{e}"
    );
}

// --- Files NumPy wrote (tests/data/npy/make.py) ---------------------------------------

fn fixture(name: &str) -> PathBuf {
    let dir = std::env::var_os("SOMA_NPY_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/npy")));
    dir.join(name)
}

fn array(path: &Path) -> Array {
    let from_file = load_npy(path).unwrap();
    let from_bytes = read_npy_bytes(path, &std::fs::read(path).unwrap()).unwrap();
    assert_eq!(from_file, from_bytes);
    from_file
}

fn check(a: &Array, shape: &[usize], dtype: &str, values: Values) {
    assert_eq!((a.shape.as_slice(), a.dtype.as_str()), (shape, dtype));
    assert_eq!(a.values, values);
}

#[test]
fn numpy_npy_files() {
    let x = array(&fixture("x_u8.npy"));
    let want = vec![
        186, 187, 182, 250, 243, 254, 8, 250, 129, 172, 233, 252, 247, 129, 84, 97, 180, 60, 222,
        43, 124, 221, 89, 236, 142, 62, 218, 26, 82, 70, 254, 66, 132, 30, 135, 35,
    ];
    check(&x, &[6, 2, 3], "|u1", Values::U8(want));
    let y = array(&fixture("y_i64.npy"));
    check(
        &y,
        &[6],
        "<i8",
        Values::Int(vec![-362, 72, -764, 591, -517, 572]),
    );
    let f = array(&fixture("x_f64_fortran.npy"));
    let want = vec![
        -36.5, 58.5, 92.75, 91.5, -47.5, 11.0, -12.0, -49.25, 21.75, 79.25, 72.5, 29.0,
    ];
    check(&f, &[3, 4], "<f8", Values::F32(want));
    let be = array(&fixture("x_f4_be.npy"));
    check(
        &be,
        &[2, 3],
        ">f4",
        Values::F32(vec![36.375, 1.75, 17.375, 45.5, 15.875, -45.375]),
    );
    let e = load_npy(&fixture("object.npy")).unwrap_err().to_string();
    assert!(
        e.contains("object.npy: bad dtype") && e.contains("never unpickles"),
        "{e}"
    );
}

#[test]
fn numpy_npz_files() {
    let path = fixture("keras.npz");
    let got = load_npz(&path).unwrap();
    assert_eq!(
        got,
        read_npz_bytes(&path, &std::fs::read(&path).unwrap()).unwrap()
    );
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["x_train", "y_train", "x_test", "y_test"]);
    let sum = |a: &Array| match &a.values {
        Values::U8(v) => v.iter().map(|&b| u64::from(b)).sum::<u64>(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        (
            got[0].1.shape.as_slice(),
            got[0].1.dtype.as_str(),
            sum(&got[0].1)
        ),
        (&[8, 4, 4][..], "|u1", 14381)
    );
    match &got[0].1.values {
        Values::U8(v) => assert_eq!(&v[..8], [212, 157, 90, 188, 242, 169, 25, 189]),
        other => panic!("{other:?}"),
    }
    check(
        &got[1].1,
        &[8],
        "<i8",
        Values::Int(vec![7, 6, 9, 7, 1, 8, 9, 3]),
    );
    assert_eq!(
        (got[2].1.shape.as_slice(), sum(&got[2].1)),
        (&[3, 4, 4][..], 6408)
    );
    check(&got[3].1, &[3], "<i8", Values::Int(vec![8, 8, 9]));

    let got = load_npz(&fixture("xy_compressed.npz")).unwrap();
    assert_eq!(
        got.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["x", "y"]
    );
    let x = vec![
        -2.1875, 4.25, -0.9375, -0.6875, 3.1875, -1.625, 3.125, -0.25, -6.1875, -5.125, 3.25,
        -3.4375, 6.0, 0.4375, -4.125, 2.875, -3.8125, -0.6875, 1.0, -2.4375, 2.1875, 5.5625,
        -1.875, 3.125, -2.8125, -0.375, -4.9375, -0.5625, 2.125, 3.0625,
    ];
    check(&got[0].1, &[10, 3], "<f4", Values::F32(x));
    let y = vec![
        1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0,
        0.0, 1.0,
    ];
    check(&got[1].1, &[10, 2], "<f4", Values::F32(y));
}

#[test]
fn missing_files_are_io_errors() {
    let e = load_npy(Path::new("/nonexistent/a.npy")).unwrap_err();
    assert!(
        matches!(e, Error::Io { .. })
            && e.to_string()
                .starts_with("/nonexistent/a.npy: open npy file")
    );
    let e = load_npz(Path::new("/nonexistent/a.npz")).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
}

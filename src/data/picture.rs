//! Decodes one picture (PNG, JPEG, BMP or PGM/PPM/PBM, through the `image` crate) from
//! untrusted bytes, with guards: what `predict` does with each file it is given and what the
//! folder reader ([`super::folder`]) does with every picture of a dataset.
//!
//! A picture is untrusted input: a few kilobytes of PNG or JPEG can claim a picture of
//! billions of pixels. Every entry point reads the header first and refuses, before a single
//! pixel is decoded, a picture
//! - of more than [`MAX_PIXELS`] pixels, or with a side over [`MAX_SIDE`];
//! - of more pixels than its size in bytes pays for ([`FREE_PIXELS`], [`PIXELS_PER_BYTE`]);
//! - with a side under [`MIN_SIDE`] (too small to train on or to recognise anything in).
//!
//! The decoders get `image`'s own limits as well (side and allocation), so that no decoder
//! allocates more than a picture of [`MAX_PIXELS`] needs whatever its header claims.
//!
//! A decoder that panics on a malformed file is contained: the panic comes back as an error
//! naming the file (see `contain_panics`), safely when several threads decode at once.
//!
//! Errors are `String`s that start with the `name` the caller gave (usually the file's path),
//! for the caller to wrap in its own error type. Nothing here touches the file system except
//! [`read`], so the byte forms work in a browser (wasm32) too.

use std::cell::Cell;
use std::io::{BufRead, Cursor, Seek};
use std::sync::Once;

use image::imageops::FilterType;
use image::{ColorType, DynamicImage, ImageBuffer, ImageDecoder, ImageReader, Limits};

/// The most pixels a picture may have: 2^24 (16.7 megapixels, more than a 12-megapixel phone
/// photo). Decoding one, converting it to RGBA and bringing it to MNIST's form then needs
/// about 20 bytes per pixel (340 MB at most), and no single buffer is over 8 bytes per pixel.
pub const MAX_PIXELS: u64 = 1 << 24;

/// The longest side a picture may have: a 16384 × 1024 strip is as many pixels as a
/// 4096 × 4096 square, so both pass, but no 1-pixel-high picture a million wide does.
pub const MAX_SIDE: u32 = 16_384;

/// The shortest side a picture may have: below 4 pixels there is nothing to train on, and
/// such a file in a dataset is more likely a placeholder or an icon than a sample.
pub const MIN_SIDE: u32 = 4;

/// Pixels a picture may have whatever its size in bytes: 2^20 (a 1024 × 1024 picture), which
/// decodes in milliseconds.
pub const FREE_PIXELS: u64 = 1 << 20;

/// Past [`FREE_PIXELS`], the pixels each byte of the file must pay for. Real pictures hold a
/// few pixels a byte (a 12-megapixel JPEG photo ~4, a scanned page as PNG ~100, even a blank
/// 4096 × 4096 PNG ~1000). An 821-byte JPEG a fuzzer made claimed 7168 × 284 pixels
/// (2,500 a byte), all of which the decoder then fills in: a way to make a reader spend
/// seconds on a small input.
pub const PIXELS_PER_BYTE: u64 = 1024;

/// What a picture's header says, read without decoding a pixel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub width: u32,
    pub height: u32,
    /// The file stores grey levels (with or without alpha), not colour.
    pub grey: bool,
}

/// A decoded picture, 8 bits a sample.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    pub width: u32,
    pub height: u32,
    /// 1 (grey) or 3 (RGB); alpha is dropped.
    pub channels: u8,
    /// Interleaved rows, top row first: `width · height · channels` bytes.
    pub pixels: Vec<u8>,
}

/// A decoded picture as RGBA, 4 bytes a pixel, interleaved rows: what `predict` brings to
/// MNIST's form (`soma::digit::grey_from_rgba` uses the alpha).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rgba {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

/// The header of the picture whose file is `bytes`; `name` is what errors name.
pub fn header(name: &str, bytes: &[u8]) -> Result<Header, String> {
    header_reader(name, bytes.len() as u64, Cursor::new(bytes))
}

/// The header of a picture of `len_bytes` bytes read from `reader`. Reads only as much as the
/// format's decoder needs for its header (all of it for JPEG, whose decoder buffers the file).
pub fn header_reader(
    name: &str,
    len_bytes: u64,
    reader: impl BufRead + Seek,
) -> Result<Header, String> {
    contain_panics(name, || {
        let decoder = guarded_decoder(name, len_bytes, reader)?;
        let (width, height) = decoder.dimensions();
        Ok(Header {
            width,
            height,
            grey: is_grey(decoder.color_type()),
        })
    })
}

/// The picture whose file is `bytes`: grey stays 1 channel, colour becomes RGB.
pub fn decode(name: &str, bytes: &[u8]) -> Result<Decoded, String> {
    decode_reader(name, bytes.len() as u64, Cursor::new(bytes))
}

/// The picture of `len_bytes` bytes read from `reader`, with the guards of [`decode`].
pub fn decode_reader(
    name: &str,
    len_bytes: u64,
    reader: impl BufRead + Seek,
) -> Result<Decoded, String> {
    let image = decode_image(name, len_bytes, reader)?;
    Ok(if is_grey(image.color()) {
        let grey = image.into_luma8();
        decoded(grey.width(), grey.height(), 1, grey.into_raw())
    } else {
        let rgb = image.into_rgb8();
        decoded(rgb.width(), rgb.height(), 3, rgb.into_raw())
    })
}

/// The picture whose file is `bytes` as RGBA (alpha kept, grey replicated): what `predict`
/// hands to `soma::digit`.
pub fn decode_rgba(name: &str, bytes: &[u8]) -> Result<Rgba, String> {
    decode_rgba_reader(name, bytes.len() as u64, Cursor::new(bytes))
}

/// The picture of `len_bytes` bytes read from `reader` as RGBA, with the guards of [`decode`].
pub fn decode_rgba_reader(
    name: &str,
    len_bytes: u64,
    reader: impl BufRead + Seek,
) -> Result<Rgba, String> {
    let rgba = decode_image(name, len_bytes, reader)?.into_rgba8();
    Ok(Rgba {
        width: rgba.width(),
        height: rgba.height(),
        pixels: rgba.into_raw(),
    })
}

/// The picture file at `path`, decoded as by [`decode`]; errors name the path.
#[cfg(not(target_arch = "wasm32"))]
pub fn read(path: &std::path::Path) -> Result<Decoded, String> {
    let name = path.display().to_string();
    let (len, reader) = open(&name, path)?;
    decode_reader(&name, len, reader)
}

/// The picture file at `path` as RGBA, decoded as by [`decode_rgba`]; errors name the path.
#[cfg(not(target_arch = "wasm32"))]
pub fn read_rgba(path: &std::path::Path) -> Result<Rgba, String> {
    let name = path.display().to_string();
    let (len, reader) = open(&name, path)?;
    decode_rgba_reader(&name, len, reader)
}

#[cfg(not(target_arch = "wasm32"))]
fn open(name: &str, path: &std::path::Path) -> Result<(u64, impl BufRead + Seek), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{name}: cannot open: {e}"))?;
    let len = file
        .metadata()
        .map_err(|e| format!("{name}: cannot read: {e}"))?
        .len();
    Ok((len, std::io::BufReader::new(file)))
}

/// `src` brought to `height × width` pixels, channels unchanged. Downscaling averages with a
/// triangle filter whose support grows with the ratio (every source pixel counts, no
/// aliasing); upscaling is bilinear. A picture already that size is copied as it is.
pub fn resize(src: &Decoded, height: u32, width: u32) -> Decoded {
    if (src.height, src.width) == (height, width) {
        return src.clone();
    }
    let (w, h) = (src.width, src.height);
    let pixels = match src.channels {
        1 => {
            let img: ImageBuffer<image::Luma<u8>, &[u8]> =
                ImageBuffer::from_raw(w, h, &src.pixels[..]).expect("a consistent Decoded");
            image::imageops::resize(&img, width, height, FilterType::Triangle).into_raw()
        }
        3 => {
            let img: ImageBuffer<image::Rgb<u8>, &[u8]> =
                ImageBuffer::from_raw(w, h, &src.pixels[..]).expect("a consistent Decoded");
            image::imageops::resize(&img, width, height, FilterType::Triangle).into_raw()
        }
        c => panic!("a Decoded has 1 or 3 channels, not {c}"),
    };
    decoded(width, height, src.channels, pixels)
}

fn decoded(width: u32, height: u32, channels: u8, pixels: Vec<u8>) -> Decoded {
    Decoded {
        width,
        height,
        channels,
        pixels,
    }
}

fn is_grey(color: ColorType) -> bool {
    matches!(
        color,
        ColorType::L8 | ColorType::La8 | ColorType::L16 | ColorType::La16
    )
}

/// Decodes the whole picture, guarded, a decoder's panic contained.
fn decode_image(
    name: &str,
    len_bytes: u64,
    reader: impl BufRead + Seek,
) -> Result<DynamicImage, String> {
    contain_panics(name, || {
        let decoder = guarded_decoder(name, len_bytes, reader)?;
        DynamicImage::from_decoder(decoder).map_err(|e| not_picture(name, e))
    })
}

fn not_picture(name: &str, e: image::ImageError) -> String {
    format!("{name}: not a picture this reads (PNG, JPEG, BMP or PGM/PPM): {e}")
}

/// A decoder for the picture in `reader` whose header has passed every size check; no pixel
/// has been decoded yet.
fn guarded_decoder<'a>(
    name: &str,
    len_bytes: u64,
    reader: impl BufRead + Seek + 'a,
) -> Result<impl ImageDecoder + 'a, String> {
    let mut reader = ImageReader::new(reader)
        .with_guessed_format()
        .map_err(|e| format!("{name}: cannot read: {e}"))?;
    // The decoders' own guard as well: no decoder allocates more than a picture of
    // MAX_PIXELS needs (16-bit RGBA, 8 bytes per pixel), whatever its header claims.
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_PIXELS * 8);
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(|e| not_picture(name, e))?;
    let (w, h) = decoder.dimensions();
    check_size(name, len_bytes, w, h)?;
    Ok(decoder)
}

/// The checks on the header's size, before any pixel is decoded.
fn check_size(name: &str, len_bytes: u64, w: u32, h: u32) -> Result<(), String> {
    let pixels = u64::from(w) * u64::from(h);
    if pixels > MAX_PIXELS {
        return Err(format!(
            "{name}: a picture of {w}×{h} pixels; soma reads at most {MAX_PIXELS} pixels \
             (e.g. 4096×4096)"
        ));
    }
    let budget = FREE_PIXELS.max(len_bytes.saturating_mul(PIXELS_PER_BYTE));
    if pixels > budget {
        return Err(format!(
            "{name}: a picture of {w}×{h} pixels in only {len_bytes} bytes; soma reads at most \
             {PIXELS_PER_BYTE} pixels per byte of file past the first {FREE_PIXELS} pixels (a \
             real picture this large takes far more bytes)"
        ));
    }
    if w.min(h) < MIN_SIDE {
        return Err(format!(
            "{name}: a picture of {w}×{h} pixels, too small to train on (each side must be at \
             least {MIN_SIDE} pixels)"
        ));
    }
    Ok(())
}

thread_local! {
    // Whether this thread is inside `contain_panics`: the panic hook stays silent then.
    // `const` and without a destructor, so the hook can read it at any time.
    static DECODING: Cell<bool> = const { Cell::new(false) };
}

/// Installs, once per process, the panic hook that keeps decoders' panics quiet.
static QUIET_HOOK: Once = Once::new();

/// Runs `f`, a panic inside it turned into an error naming the file.
///
/// The JPEG decoder `image` uses (zune-jpeg 0.5.15) panics on some malformed files: a fuzzer
/// found an index out of bounds in its AVX2 IDCT, one of a class of panics known upstream.
/// `catch_unwind` turns such a panic into an error. So that the panic does not also print a
/// message and backtrace, the first call installs a panic hook (once, wrapping whatever hook
/// was in place) that is silent while the panicking thread's `DECODING` flag is set and
/// otherwise hands the panic to the previous hook. The flag is per thread, so decoding on
/// many threads at once (the folder reader decodes on rayon) never silences another thread's
/// panic, and no hook is swapped while other threads may panic.
///
/// A hook set with `std::panic::set_hook` after the first decode replaces this one: decoder
/// panics are then still contained, only no longer silent. With `panic = "abort"` nothing can
/// be contained.
fn contain_panics<T>(name: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !DECODING.try_with(Cell::get).unwrap_or(false) {
                previous(info);
            }
        }));
    });
    // Restored rather than cleared: a decode inside a decode leaves the outer one's flag set.
    let outer = DECODING.replace(true);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    DECODING.set(outer);
    result.unwrap_or_else(|payload| {
        let why = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("no message");
        Err(format!(
            "{name}: a malformed picture: its decoder failed on it ({why})"
        ))
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use image::{GrayImage, ImageFormat, Luma, Rgb, RgbImage, Rgba as RgbaPixel, RgbaImage};

    const PANIC_JPEG: &[u8] =
        include_bytes!("../../tests/data/fuzz/picture-zune-jpeg-avx2-idct-panic.jpg");
    const LYING_JPEG: &[u8] =
        include_bytes!("../../tests/data/fuzz/picture-7168x284-in-821-bytes.jpg");

    fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    fn grey(w: u32, h: u32) -> DynamicImage {
        DynamicImage::ImageLuma8(GrayImage::from_fn(w, h, |x, y| Luma([(x * 16 + y) as u8])))
    }

    fn rgb(w: u32, h: u32) -> DynamicImage {
        DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
            Rgb([x as u8, y as u8, (x + y) as u8])
        }))
    }

    /// The bytes of the chunk with a CRC recomputed; `kind_and_data` starts with the type.
    fn png_chunk(kind_and_data: &[u8]) -> Vec<u8> {
        let mut out = ((kind_and_data.len() - 4) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind_and_data);
        out.extend_from_slice(&crc32(kind_and_data).to_be_bytes());
        out
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// A PNG signature and IHDR claiming `w × h` 8-bit grey pixels, then the start of an
    /// empty IDAT chunk (the decoder reads up to it before it says the size).
    pub(crate) fn png_claiming(w: u32, h: u32) -> Vec<u8> {
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend_from_slice(&w.to_be_bytes());
        ihdr.extend_from_slice(&h.to_be_bytes());
        ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend(png_chunk(&ihdr));
        png.extend(png_chunk(b"IDAT"));
        png
    }

    #[test]
    fn the_hand_made_crc_matches_a_real_png() {
        let real = encode(&grey(5, 7), ImageFormat::Png);
        let made = png_claiming(5, 7);
        assert_eq!(real[..33], made[..33]);
    }

    #[test]
    fn grey_stays_one_channel_and_colour_becomes_rgb() {
        // (A grey BMP is written with a palette, which decodes as RGB.)
        for format in [ImageFormat::Png, ImageFormat::Pnm] {
            let g = decode("g", &encode(&grey(6, 5), format)).unwrap();
            assert_eq!((g.width, g.height, g.channels), (6, 5, 1), "{format:?}");
            assert_eq!(g.pixels, grey(6, 5).into_luma8().into_raw(), "{format:?}");
        }
        for format in [ImageFormat::Png, ImageFormat::Bmp, ImageFormat::Pnm] {
            let c = decode("c", &encode(&rgb(6, 5), format)).unwrap();
            assert_eq!((c.width, c.height, c.channels), (6, 5, 3), "{format:?}");
            assert_eq!(c.pixels, rgb(6, 5).into_rgb8().into_raw(), "{format:?}");
        }
        let h = header("j", &encode(&grey(8, 8), ImageFormat::Jpeg)).unwrap();
        assert_eq!(
            h,
            Header {
                width: 8,
                height: 8,
                grey: true
            }
        );
        let h = header("j", &encode(&rgb(9, 8), ImageFormat::Jpeg)).unwrap();
        assert_eq!(
            h,
            Header {
                width: 9,
                height: 8,
                grey: false
            }
        );
    }

    #[test]
    fn alpha_is_dropped_and_kept_for_rgba() {
        let img = DynamicImage::ImageRgba8(RgbaImage::from_pixel(4, 4, RgbaPixel([1, 2, 3, 4])));
        let bytes = encode(&img, ImageFormat::Png);
        let d = decode("a", &bytes).unwrap();
        assert_eq!((d.channels, &d.pixels[..3]), (3, &[1, 2, 3][..]));
        let r = decode_rgba("a", &bytes).unwrap();
        assert_eq!(
            (r.width, r.height, &r.pixels[..4]),
            (4, 4, &[1, 2, 3, 4][..])
        );
    }

    #[test]
    fn too_small_pictures_are_refused_naming_the_file() {
        let err = decode("dot.png", &encode(&grey(1, 1), ImageFormat::Png)).unwrap_err();
        assert!(
            err.starts_with("dot.png:") && err.contains("too small"),
            "{err}"
        );
        let err = header("strip.png", &encode(&grey(40, 3), ImageFormat::Png)).unwrap_err();
        assert!(err.contains("40×3"), "{err}");
        assert!(header("ok.png", &encode(&grey(4, 4), ImageFormat::Png)).is_ok());
    }

    #[test]
    fn huge_claims_are_refused_from_the_header() {
        let err = header("huge.png", &png_claiming(20_000, 20_000)).unwrap_err();
        assert!(err.starts_with("huge.png:"), "{err}");
        let err = decode("huge.pgm", b"P5\n65536 65536\n255\n").unwrap_err();
        assert!(err.starts_with("huge.pgm:"), "{err}");
        // Within MAX_PIXELS but far more pixels than 60-odd bytes pay for.
        let err = header("lying.png", &png_claiming(4000, 4000)).unwrap_err();
        assert!(err.contains("4000×4000") && err.contains("bytes"), "{err}");
        let err = header("tiny.jpg", LYING_JPEG).unwrap_err();
        assert!(
            err.contains("7168×284") && err.contains("821 bytes"),
            "{err}"
        );
    }

    #[test]
    fn garbage_and_truncation_are_errors_naming_the_file() {
        let err = decode("notes.png", b"these are not the pixels you are looking for").unwrap_err();
        assert!(err.starts_with("notes.png:"), "{err}");
        let png = encode(&rgb(32, 32), ImageFormat::Png);
        let err = decode("cut.png", &png[..png.len() / 2]).unwrap_err();
        assert!(err.starts_with("cut.png:"), "{err}");
    }

    /// The fuzzer's JPEG on which zune-jpeg panics (with AVX2) is an error, not a panic, even
    /// when decoded on many threads at once, and the flag that silences the hook is down
    /// again afterwards.
    #[test]
    fn decoder_panics_are_contained_on_parallel_threads() {
        use rayon::prelude::*;
        let outs: Vec<_> = (0..8)
            .into_par_iter()
            .map(|i| decode(&format!("crash{i}.jpg"), PANIC_JPEG))
            .collect();
        for (i, out) in outs.iter().enumerate() {
            if let Err(e) = out {
                assert!(e.starts_with(&format!("crash{i}.jpg:")), "{e}");
            }
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            assert!(
                outs.iter()
                    .all(|o| o.as_ref().unwrap_err().contains("decoder failed"))
            );
        }
        assert!(!DECODING.with(Cell::get));
    }

    #[test]
    fn resize_downscales_by_averaging_and_keeps_same_size() {
        // A 2-pixel checkerboard averages to mid grey at half size.
        let board = GrayImage::from_fn(8, 8, |x, y| Luma([if (x + y) % 2 == 0 { 0 } else { 200 }]));
        let src = decoded(8, 8, 1, board.into_raw());
        let half = resize(&src, 4, 4);
        assert_eq!((half.width, half.height, half.pixels.len()), (4, 4, 16));
        assert!(
            half.pixels.iter().all(|&p| (80..=120).contains(&p)),
            "{:?}",
            half.pixels
        );
        assert_eq!(resize(&src, 8, 8), src);
        let wide = resize(&decoded(6, 5, 3, rgb(6, 5).into_rgb8().into_raw()), 10, 12);
        assert_eq!((wide.width, wide.height, wide.pixels.len()), (12, 10, 360));
    }
}

//! Chart helpers shared by the examples that draw pictures (`mnist --report`; `bench --plot`
//! can use the same): text in a TrueType font that ships inside a crate, rendering into memory,
//! and PNG files written atomically.
//!
//! Plotters draws text through a font backend. Its `ab_glyph` backend takes fonts registered
//! by name from bytes, so the text here is DejaVu Sans from the `dejavu` crate (the Bitstream
//! Vera licence, which allows embedding and redistribution): no system font, no fontconfig, and
//! the same pixels on every machine. Include this file with
//! `#[path = "common/plot.rs"] mod plot;`.
#![allow(dead_code)] // each example uses its own subset

use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;

use image::ImageEncoder;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontStyle, register_font};

/// The family every chart's text is drawn in, registered by [`fonts`].
pub const FAMILY: &str = "sans-serif";

/// A drawing area over an in-memory RGB bitmap.
pub type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// What drawing or saving a chart fails with; the message names the file.
pub type Fail = Box<dyn std::error::Error>;

/// Registers DejaVu Sans (regular and bold) as [`FAMILY`], once per process. Call it before
/// drawing any text; plotters finds no font otherwise.
pub fn fonts() -> Result<(), Fail> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let bad = |style| format!("the embedded DejaVu Sans {style} font did not load");
            register_font(FAMILY, FontStyle::Normal, dejavu::sans::regular())
                .map_err(|_| bad("regular"))?;
            register_font(FAMILY, FontStyle::Bold, dejavu::sans::bold()).map_err(|_| bad("bold"))
        })
        .clone()
        .map_err(Into::into)
}

/// `size` made even. Plotters' ab_glyph backend places a glyph at `(size / 2 + top) as i32`
/// below the text's anchor, `top` being the glyph's whole-pixel top: at an odd size the half
/// pixel is truncated toward zero, down for tall glyphs and up for short ones, so a full stop
/// sat a pixel high beside digits (`96·3%`). At even sizes every glyph lands exactly.
fn even(size: u32) -> f64 {
    (size + size % 2) as f64
}

/// The chart font at `size` pixels (rounded up to even, see [`even`]).
pub fn font(size: u32) -> FontDesc<'static> {
    (FAMILY, even(size)).into_font()
}

/// The bold chart font at `size` pixels (rounded up to even).
pub fn bold(size: u32) -> FontDesc<'static> {
    (FAMILY, even(size), FontStyle::Bold).into_font()
}

/// `font` anchored at its `h`orizontal and `v`ertical position (left/centre/right,
/// top/centre/bottom) rather than at its top left corner.
pub fn anchored(font: FontDesc<'static>, h: HPos, v: VPos) -> TextStyle<'static> {
    TextStyle::from(font).pos(Pos::new(h, v))
}

/// Draws a `width × height` picture with `draw` on a white background and writes it to `path`
/// as a PNG, atomically (see [`write_atomic`]).
pub fn png(
    path: &Path,
    (width, height): (u32, u32),
    draw: impl FnOnce(&Area) -> Result<(), Fail>,
) -> Result<(), Fail> {
    fonts()?;
    let mut rgb = vec![255u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        draw(&root).map_err(|e| format!("{}: drawing failed: {e}", path.display()))?;
        root.present()
            .map_err(|e| format!("{}: drawing failed: {e}", path.display()))?;
    }
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(&rgb, width, height, image::ExtendedColorType::Rgb8)
        .map_err(|e| format!("{}: PNG encoding failed: {e}", path.display()))?;
    write_atomic(path, &bytes)
}

/// Writes `bytes` to `path` through a temporary sibling that is synced and then renamed over
/// it, so that `path` is never left half-written; the temporary file is removed on failure.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Fail> {
    let name = path
        .file_name()
        .ok_or_else(|| format!("{}: not a file name", path.display()))?;
    let tmp = path.with_file_name(format!(
        ".{}.tmp.{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> std::io::Result<()> {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        format!("{}: cannot write: {e}", path.display()).into()
    })
}

/// A colour between white (0) and `to` (1), for heat maps.
pub fn shade(to: RGBColor, t: f64) -> RGBColor {
    let t = t.clamp(0.0, 1.0);
    let mix = |c: u8| (255.0 - (255.0 - c as f64) * t).round() as u8;
    RGBColor(mix(to.0), mix(to.1), mix(to.2))
}

/// The colours of the chart series (matplotlib's first ones, which read well on white).
pub const COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
];

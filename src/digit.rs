//! Brings a picture of one handwritten digit to the form MNIST's digits have, so that a network
//! trained on MNIST can read it: light ink on a black background, the ink scaled to fit a
//! 20×20 box keeping its aspect ratio, and centred by its centre of mass in a 28×28 field
//! (LeCun, Cortes and Burges describe MNIST's digits so).
//!
//! These are pure functions over grey (or RGBA) byte buffers with no image-file dependency, so
//! that anything that has pixels (the `predict` example after decoding a file, a browser
//! canvas) can use them.

use crate::error::{Error, Result};

/// Side of the field a digit is placed in.
pub const SIDE: usize = 28;

/// Side of the box the ink is scaled to fit.
pub const BOX: usize = 20;

/// Below this fraction of the picture's contrast a pixel counts as background: it keeps paper
/// grain, JPEG noise and faint shadows out of the ink's bounding box.
const NOISE_FLOOR: f32 = 0.1;

/// A picture whose ink differs from its background by fewer grey levels than this has no
/// digit to read.
const MIN_CONTRAST: u8 = 32;

/// Grey levels (0 black … 255 white) of an RGBA picture, each pixel composited over white so
/// that a transparent background reads as paper (as a canvas drawn on with a pen leaves it).
/// Luma by the Rec. 709 weights, as the `image` crate converts.
pub fn grey_from_rgba(rgba: &[u8]) -> Result<Vec<u8>> {
    if !rgba.len().is_multiple_of(4) {
        return Err(Error::Shape {
            what: "RGBA pixels".into(),
            expected: "a multiple of 4 bytes".into(),
            got: format!("{} bytes", rgba.len()),
        });
    }
    Ok(rgba
        .chunks_exact(4)
        .map(|p| {
            let luma = 0.2126 * p[0] as f32 + 0.7152 * p[1] as f32 + 0.0722 * p[2] as f32;
            let alpha = p[3] as f32 / 255.0;
            (luma * alpha + 255.0 * (1.0 - alpha))
                .round()
                .clamp(0.0, 255.0) as u8
        })
        .collect())
}

/// The 28×28 MNIST-style image (row-major, 0 background, 255 full ink) of the digit in the grey
/// picture `grey` of `width × height` pixels:
///
/// 1. inverted when the background is light (the mean of the border pixels above mid-grey), so
///    that dark-on-light and light-on-dark pictures both end as light ink on black;
/// 2. contrast stretched from the background level (the median border pixel) to the brightest
///    pixel, with pixels below a tenth of that range set to background;
/// 3. cropped to the ink's bounding box;
/// 4. scaled by area averaging so that its longer side is 20 pixels, keeping the aspect ratio;
/// 5. placed in the 28×28 field with its centre of mass at pixel (14, 14), where MNIST has
///    it (as far as the field allows).
///
/// A picture with no ink (less contrast than 32 grey levels) is an error.
pub fn mnist_like(grey: &[u8], width: usize, height: usize) -> Result<Vec<u8>> {
    if width == 0 || height == 0 || width.checked_mul(height) != Some(grey.len()) {
        return Err(Error::Shape {
            what: "grey picture".into(),
            expected: format!("{width}×{height} pixels, both sides non-zero"),
            got: format!("{} pixels", grey.len()),
        });
    }
    let border: Vec<u8> = (0..height)
        .flat_map(|y| (0..width).map(move |x| (x, y)))
        .filter(|&(x, y)| x == 0 || y == 0 || x + 1 == width || y + 1 == height)
        .map(|(x, y)| grey[y * width + x])
        .collect();
    let mean = border.iter().map(|&v| v as f64).sum::<f64>() / border.len() as f64;
    let invert = mean > 127.5;
    let ink: Vec<u8> = if invert {
        grey.iter().map(|&v| 255 - v).collect()
    } else {
        grey.to_vec()
    };
    let mut sorted: Vec<u8> = border
        .iter()
        .map(|&v| if invert { 255 - v } else { v })
        .collect();
    sorted.sort_unstable();
    let background = sorted[sorted.len() / 2];
    let peak = *ink.iter().max().expect("non-empty");
    if peak.saturating_sub(background) < MIN_CONTRAST {
        return Err(Error::arg(
            "picture",
            format!("a digit: ink at least {MIN_CONTRAST} grey levels from the background"),
            format!(
                "a blank picture (background {background}, brightest ink {peak} after inversion)"
            ),
        ));
    }
    let range = (peak - background) as f32;
    let stretched: Vec<f32> = ink
        .iter()
        .map(|&v| {
            let x = (v.saturating_sub(background)) as f32 / range;
            if x < NOISE_FLOOR { 0.0 } else { x * 255.0 }
        })
        .collect();

    // Bounding box of the ink (non-empty: the peak is above the floor).
    let (mut x0, mut y0, mut x1, mut y1) = (width, height, 0, 0);
    for (i, &v) in stretched.iter().enumerate() {
        if v > 0.0 {
            let (x, y) = (i % width, i / width);
            x0 = x0.min(x);
            x1 = x1.max(x + 1);
            y0 = y0.min(y);
            y1 = y1.max(y + 1);
        }
    }
    let (w, h) = (x1 - x0, y1 - y0);
    let crop: Vec<f32> = (y0..y1)
        .flat_map(|y| stretched[y * width + x0..y * width + x1].iter().copied())
        .collect();

    let longer = w.max(h) as f64;
    let ow = ((w as f64 * BOX as f64 / longer).round() as usize).clamp(1, BOX);
    let oh = ((h as f64 * BOX as f64 / longer).round() as usize).clamp(1, BOX);
    let scaled = resample(&crop, w, h, ow, oh);

    // Centre of mass in pixel indices. MNIST's digits have theirs at index 14 in both
    // directions (the mean over its test set is 14.00 ± 0.29), half a pixel right of and below
    // the field's geometric centre: that is where the network expects them.
    let (mut mass, mut mx, mut my) = (0.0f64, 0.0f64, 0.0f64);
    for (i, &v) in scaled.iter().enumerate() {
        let v = v as f64;
        mass += v;
        mx += v * (i % ow) as f64;
        my += v * (i / ow) as f64;
    }
    let centre = (SIDE / 2) as f64;
    let offset = |com: f64, side: usize| -> usize {
        let max = (SIDE - side) as f64;
        (centre - com).round().clamp(0.0, max) as usize
    };
    let (ox, oy) = (offset(mx / mass, ow), offset(my / mass, oh));

    let mut out = vec![0u8; SIDE * SIDE];
    for y in 0..oh {
        for x in 0..ow {
            let v = scaled[y * ow + x].round().clamp(0.0, 255.0) as u8;
            out[(y + oy) * SIDE + x + ox] = v;
        }
    }
    Ok(out)
}

/// Area-averaging resampling of a `w × h` image to `ow × oh`: each output pixel is the mean of
/// the source area it covers, weighting source pixels by their overlap. Downscaling keeps thin
/// strokes as fainter lines instead of dropping them; upscaling repeats pixels.
fn resample(src: &[f32], w: usize, h: usize, ow: usize, oh: usize) -> Vec<f32> {
    let weights = |n: usize, on: usize| -> Vec<Vec<(usize, f32)>> {
        let ratio = n as f64 / on as f64;
        (0..on)
            .map(|j| {
                let (start, end) = (j as f64 * ratio, (j + 1) as f64 * ratio);
                let first = start.floor() as usize;
                let last = (end.ceil() as usize).min(n);
                (first..last)
                    .filter_map(|i| {
                        let overlap = (end.min(i as f64 + 1.0) - start.max(i as f64)).max(0.0);
                        (overlap > 0.0).then_some((i, (overlap / ratio) as f32))
                    })
                    .collect()
            })
            .collect()
    };
    let (wx, wy) = (weights(w, ow), weights(h, oh));
    let mut rows = vec![0.0f32; h * ow];
    for y in 0..h {
        for (x, taps) in wx.iter().enumerate() {
            rows[y * ow + x] = taps.iter().map(|&(i, k)| src[y * w + i] * k).sum();
        }
    }
    let mut out = vec![0.0f32; oh * ow];
    for (y, taps) in wy.iter().enumerate() {
        for x in 0..ow {
            out[y * ow + x] = taps.iter().map(|&(i, k)| rows[i * ow + x] * k).sum();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `w × h` picture, background `bg`, with a filled rectangle of `ink` at
    /// `[x0, x1) × [y0, y1)`.
    fn rect(
        w: usize,
        h: usize,
        bg: u8,
        ink: u8,
        (x0, y0, x1, y1): (usize, usize, usize, usize),
    ) -> Vec<u8> {
        let mut p = vec![bg; w * h];
        for y in y0..y1 {
            for x in x0..x1 {
                p[y * w + x] = ink;
            }
        }
        p
    }

    /// Bounding box `(x0, y0, x1, y1)` of the non-zero pixels of a 28×28 image.
    fn bbox(img: &[u8]) -> (usize, usize, usize, usize) {
        let lit: Vec<(usize, usize)> = (0..SIDE * SIDE)
            .filter(|&i| img[i] > 0)
            .map(|i| (i % SIDE, i / SIDE))
            .collect();
        let xs = lit.iter().map(|p| p.0);
        let ys = lit.iter().map(|p| p.1);
        (
            xs.clone().min().unwrap(),
            ys.clone().min().unwrap(),
            xs.max().unwrap() + 1,
            ys.max().unwrap() + 1,
        )
    }

    #[test]
    fn a_tall_bar_is_scaled_to_twenty_rows_and_centred() {
        // 10 wide, 40 tall on a 100×80 picture, off-centre: becomes 5×20 with its centre of
        // mass at (2, 9.5), placed so that it lands on (14, 14) (14 - 9.5 rounds up to 5).
        let p = rect(100, 80, 0, 255, (3, 30, 13, 70));
        let img = mnist_like(&p, 100, 80).unwrap();
        assert_eq!(bbox(&img), (12, 5, 17, 25));
        assert!(img.iter().all(|&v| v == 0 || v == 255));
    }

    #[test]
    fn dark_on_light_equals_light_on_dark() {
        let light = rect(50, 60, 255, 0, (10, 5, 30, 50));
        let dark = rect(50, 60, 0, 255, (10, 5, 30, 50));
        assert_eq!(
            mnist_like(&light, 50, 60).unwrap(),
            mnist_like(&dark, 50, 60).unwrap()
        );
        // A grey background and grey ink are stretched to the full range.
        let grey = rect(50, 60, 200, 80, (10, 5, 30, 50));
        assert_eq!(
            mnist_like(&grey, 50, 60).unwrap(),
            mnist_like(&dark, 50, 60).unwrap()
        );
    }

    #[test]
    fn centre_of_mass_lands_in_the_middle() {
        // An L shape: more mass on the left, so the box sits right of centre.
        let mut p = rect(40, 40, 0, 255, (0, 0, 4, 40));
        for y in 36..40 {
            for x in 0..40 {
                p[y * 40 + x] = 255;
            }
        }
        let img = mnist_like(&p, 40, 40).unwrap();
        let (mut m, mut mx, mut my) = (0.0, 0.0, 0.0);
        for (i, &v) in img.iter().enumerate() {
            m += v as f64;
            mx += v as f64 * (i % SIDE) as f64;
            my += v as f64 * (i / SIDE) as f64;
        }
        // Whole-pixel placement: the centre of mass is within half a pixel of (14, 14).
        assert!((mx / m - 14.0).abs() <= 0.5, "{}", mx / m);
        assert!((my / m - 14.0).abs() <= 0.5, "{}", my / m);
        let (x0, _, x1, _) = bbox(&img);
        assert_eq!(x1 - x0, 20);
    }

    #[test]
    fn blank_and_malformed_pictures_are_errors() {
        assert!(mnist_like(&[0; 100], 10, 10).is_err());
        assert!(mnist_like(&rect(10, 10, 100, 120, (2, 2, 8, 8)), 10, 10).is_err());
        assert!(mnist_like(&[0; 99], 10, 10).is_err());
        assert!(mnist_like(&[], 0, 0).is_err());
        assert!(grey_from_rgba(&[0, 0, 0]).is_err());
    }

    #[test]
    fn transparent_pixels_read_as_paper() {
        let g = grey_from_rgba(&[0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255]).unwrap();
        assert_eq!(g, vec![255, 0, 255]);
    }

    #[test]
    fn resampling_keeps_the_mean() {
        let src: Vec<f32> = (0..35).map(|i| i as f32).collect();
        for (ow, oh) in [(3, 2), (5, 7), (11, 13), (1, 1)] {
            let out = resample(&src, 5, 7, ow, oh);
            let (a, b) = (
                src.iter().sum::<f32>() / 35.0,
                out.iter().sum::<f32>() / (ow * oh) as f32,
            );
            // f32 sums of at most 35 terms below 35: rounding stays far below 1e-3.
            assert!((a - b).abs() < 1e-3, "{ow}×{oh}: {a} vs {b}");
        }
    }
}

//! Training samples/s against batch size, drawn with plotters on a bitmap: one series per
//! backend (and CPU thread count), median line, min-max whiskers, a log axis when the series
//! are far apart. Text is DejaVu Sans through the charts helper the examples share
//! (`examples/common/plot.rs`).

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use serde_json::Value;

use crate::chart::{self, Area, Fail};

/// One label: `size` pixels, anchored at `pos` by `anchor`, optionally rotated to read upwards.
fn text(
    root: &Area,
    label: &str,
    pos: (i32, i32),
    size: u32,
    anchor: (HPos, VPos),
    upright: bool,
) -> Result<(), Fail> {
    let font = if upright {
        chart::font(size)
    } else {
        chart::font(size).transform(FontTransform::Rotate270)
    };
    root.draw(&Text::new(
        label,
        pos,
        chart::anchored(font, anchor.0, anchor.1),
    ))?;
    Ok(())
}

const TOP: (HPos, VPos) = (HPos::Center, VPos::Top);
const RIGHT: (HPos, VPos) = (HPos::Right, VPos::Center);
const LEFT: (HPos, VPos) = (HPos::Left, VPos::Center);

const W: u32 = 1200;
const H: u32 = 700;
const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
];

struct Series {
    name: String,
    /// (log2 batch, median, min, max)
    points: Vec<(f64, f64, f64, f64)>,
}

fn series(rows: &[Value]) -> Vec<Series> {
    let mut out: Vec<Series> = Vec::new();
    for r in rows.iter().filter(|r| r.get("error").is_none()) {
        let (Some(batch), Some(med)) = (
            r["batch"].as_f64(),
            r["samples_per_second"]["median"].as_f64(),
        ) else {
            continue;
        };
        let sps = &r["samples_per_second"];
        let min = sps["min"].as_f64().unwrap_or(med);
        let max = sps["max"].as_f64().unwrap_or(med);
        let name = match (r["backend"].as_str(), r["threads"].as_u64()) {
            (Some("cpu"), Some(1)) => "cpu, 1 thread".to_string(),
            (Some("cpu"), Some(t)) => format!("cpu, {t} threads"),
            (Some(b), _) => {
                let device = r["device"].as_str().unwrap_or("");
                let short = device.split([',', '(']).next().unwrap_or("").trim();
                if short.is_empty() {
                    b.to_string()
                } else {
                    format!("{b}: {short}")
                }
            }
            _ => continue,
        };
        let p = (batch.log2(), med, min, max);
        match out.iter_mut().find(|s| s.name == name) {
            Some(s) => s.points.push(p),
            None => out.push(Series {
                name,
                points: vec![p],
            }),
        }
    }
    for s in &mut out {
        s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

/// A round step giving about `n` intervals up to `max`.
fn nice_step(max: f64, n: f64) -> f64 {
    let raw = (max / n).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
}

fn si(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if v >= 1e3 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let t = format!("{v:.2}");
    t.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Draws the chart of `rows` (those without an error) into the PNG at `path`.
pub fn draw(path: &Path, rows: &[Value]) -> Result<(), Fail> {
    let all = series(rows);
    if all.is_empty() {
        return Err("no successful row to plot".into());
    }
    let xs = all.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let (x_lo, x_hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
        (lo.min(x), hi.max(x))
    });
    let pad = if x_hi - x_lo < 1.0 { 1.0 } else { 0.35 };
    let medians = all.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let (y_min, y_max) = medians.fold((f64::INFINITY, 0.0f64), |(lo, hi), y| {
        (lo.min(y), hi.max(y))
    });
    // A log axis when the series differ by more than 20x (a software GPU beside the CPU).
    let log = y_min > 0.0 && y_max / y_min > 20.0;
    let all: Vec<Series> = if log {
        all.into_iter()
            .map(|s| Series {
                name: s.name,
                points: s
                    .points
                    .iter()
                    .map(|p| (p.0, p.1.log10(), p.2.max(1.0).log10(), p.3.log10()))
                    .collect(),
            })
            .collect()
    } else {
        all
    };
    let y_top = all
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.3))
        .fold(0.0, f64::max)
        .max(1.0);
    let (y_lo, y_hi, y_ticks) = if log {
        let lo = all
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.2))
            .fold(f64::INFINITY, f64::min)
            .floor();
        let hi = y_top + 0.4;
        let ticks: Vec<f64> = (lo as i32..=hi.ceil() as i32)
            .flat_map(|e| [1.0, 2.0, 5.0].map(|m| (m * 10f64.powi(e)).log10()))
            .filter(|t| *t >= lo && *t <= hi)
            .collect();
        (lo, hi, ticks)
    } else {
        let step = nice_step(y_top, 6.0);
        let hi = (y_top / step).ceil() * step + step;
        let ticks = (0..)
            .map(|i| i as f64 * step)
            .take_while(|t| *t <= hi)
            .collect();
        (0.0, hi, ticks)
    };

    chart::png(path, (W, H), |root| {
        draw_on(root, &all, (x_lo, x_hi, pad), (y_lo, y_hi, &y_ticks), log)
    })
}

/// Draws the series on `root`: x from `x_lo - pad` to `x_hi + pad` (log2 batch), y from
/// `y_lo` to `y_hi` (log10 of samples/s when `log`) with grid lines at `y_ticks`.
fn draw_on(
    root: &Area,
    all: &[Series],
    (x_lo, x_hi, pad): (f64, f64, f64),
    (y_lo, y_hi, y_ticks): (f64, f64, &[f64]),
    log: bool,
) -> Result<(), Fail> {
    root.fill(&WHITE)?;
    let (left, right, top, bottom) = (100, 30, 60, 80);
    let mut chart = ChartBuilder::on(root)
        .margin_left(left)
        .margin_right(right)
        .margin_top(top)
        .margin_bottom(bottom)
        .build_cartesian_2d((x_lo - pad)..(x_hi + pad), y_lo..y_hi)?;

    // Grid, ticks and their labels.
    let grid = RGBColor(225, 225, 225);
    let (first, last) = ((x_lo - pad).ceil() as i32, (x_hi + pad).floor() as i32);
    for e in first..=last {
        let x = e as f64;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(x, y_lo), (x, y_hi)],
            grid,
        )))?;
        let (px, py) = chart.backend_coord(&(x, y_lo));
        root.draw(&PathElement::new(vec![(px, py), (px, py + 6)], BLACK))?;
        let label = if e >= 0 {
            (1u64 << e).to_string()
        } else {
            format!("2^{e}")
        };
        text(root, &label, (px, py + 12), 14, TOP, true)?;
    }
    for &y in y_ticks {
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(x_lo - pad, y), (x_hi + pad, y)],
            grid,
        )))?;
        let (px, py) = chart.backend_coord(&(x_lo - pad, y));
        root.draw(&PathElement::new(vec![(px - 6, py), (px, py)], BLACK))?;
        let value = if log { 10f64.powf(y) } else { y };
        text(root, &si(value), (px - 10, py), 14, RIGHT, true)?;
    }
    let (x0, y0) = chart.backend_coord(&(x_lo - pad, y_lo));
    let (x1, y1) = chart.backend_coord(&(x_hi + pad, y_hi));
    root.draw(&Rectangle::new([(x0, y1), (x1, y0)], BLACK.stroke_width(1)))?;

    // The series: median line and points, min-max whiskers.
    for (i, s) in all.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let style = color.stroke_width(2);
        chart.draw_series(LineSeries::new(s.points.iter().map(|p| (p.0, p.1)), style))?;
        chart.draw_series(
            s.points
                .iter()
                .map(|p| Circle::new((p.0, p.1), 4, color.filled())),
        )?;
        for p in &s.points {
            if p.3 > p.2 {
                chart.draw_series(std::iter::once(PathElement::new(
                    vec![(p.0, p.2), (p.0, p.3)],
                    color.stroke_width(1),
                )))?;
            }
        }
    }

    // Titles.
    let title = "soma: training throughput, 784-64-64-10 MLP on MNIST";
    text(root, title, ((W / 2) as i32, 18), 22, TOP, true)?;
    let x_title = "batch size (log2 scale); bars: min-max over the timed epochs";
    text(root, x_title, ((x0 + x1) / 2, y0 + 42), 16, TOP, true)?;
    let y_title = if log {
        "training samples/s (median, log scale)"
    } else {
        "training samples/s (median)"
    };
    text(root, y_title, (22, (y0 + y1) / 2), 16, TOP, false)?;

    // Legend, upper left inside the plot.
    let line_h = 22;
    let width = all.iter().map(|s| s.name.len()).max().unwrap_or(0) as i32 * 9 + 60;
    let (lx, ly) = (x0 + 14, y1 + 12);
    root.draw(&Rectangle::new(
        [(lx, ly), (lx + width, ly + line_h * all.len() as i32 + 10)],
        WHITE.filled(),
    ))?;
    root.draw(&Rectangle::new(
        [(lx, ly), (lx + width, ly + line_h * all.len() as i32 + 10)],
        BLACK.stroke_width(1),
    ))?;
    for (i, s) in all.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let cy = ly + 16 + line_h * i as i32;
        root.draw(&PathElement::new(
            vec![(lx + 10, cy), (lx + 40, cy)],
            color.stroke_width(2),
        ))?;
        root.draw(&Circle::new((lx + 25, cy), 4, color.filled()))?;
        text(root, &s.name, (lx + 50, cy), 14, LEFT, true)?;
    }
    Ok(())
}

//! `mnist --report DIR` and `train --report DIR`: the run's metrics as JSON lines, and pictures
//! of its learning curves, its test confusion matrix and its most confidently wrong test
//! samples (each with its file or line); for a regression model, the curves (loss and R²) and
//! its test predictions against their targets. Included by both examples with `#[path]`; draws
//! through `plot.rs`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::plot::{self, Area, COLORS, Fail};

/// What an epoch is scored by besides its loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Score {
    /// The share of samples classified right (0 to 1).
    Accuracy,
    /// Regression's R² (1 a perfect fit; 0 no better than the mean; may be negative).
    R2,
}

impl Score {
    /// The `metrics.jsonl` key of the score of `part` (train or test).
    fn key(self, part: &str) -> String {
        match self {
            Score::Accuracy => format!("{part}_accuracy"),
            Score::R2 => format!("{part}_r2"),
        }
    }
}

/// One finished epoch, as a line of `metrics.jsonl`.
#[derive(Clone, Debug)]
pub struct EpochRow {
    pub epoch: u64,
    pub score: Score,
    pub train_loss: f64,
    pub train_score: f64,
    pub test_loss: f64,
    pub test_score: f64,
    /// The learning rate at the epoch's first step.
    pub lr: f32,
    pub seconds: f64,
    pub samples_per_second: f64,
}

impl EpochRow {
    /// A line of `metrics.jsonl` back, if it has every field.
    fn parse(line: &str) -> Option<EpochRow> {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        let num = |k: &str| v.get(k).and_then(serde_json::Value::as_f64);
        let score = if v.get("test_r2").is_some() {
            Score::R2
        } else {
            Score::Accuracy
        };
        Some(EpochRow {
            epoch: v.get("epoch")?.as_u64()?,
            score,
            train_loss: num("train_loss")?,
            train_score: num(&score.key("train"))?,
            test_loss: num("test_loss")?,
            test_score: num(&score.key("test"))?,
            lr: num("lr")? as f32,
            seconds: num("seconds")?,
            samples_per_second: num("samples_per_second")?,
        })
    }

    fn json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "epoch": self.epoch,
            "train_loss": self.train_loss,
            "test_loss": self.test_loss,
            // Through the shortest decimal, so that 0.1f32 reads 0.1 and not 0.10000000149.
            "lr": self.lr.to_string().parse::<f64>().unwrap_or(f64::NAN),
            "seconds": self.seconds,
            "samples_per_second": self.samples_per_second,
        });
        v[self.score.key("train")] = self.train_score.into();
        v[self.score.key("test")] = self.test_score.into();
        v
    }
}

/// A test sample the network got wrong.
#[derive(Clone, Debug)]
pub struct Mistake {
    /// Index in the test set.
    pub index: usize,
    /// Where it came from (a file, a CSV line), when known.
    pub origin: Option<String>,
    /// Its stored pixels and their shape, when it is an image of bytes.
    pub picture: Option<(Vec<u8>, soma::shape::Chw)>,
    /// Whether a grey picture is drawn inverted (IDX digits: light ink on black).
    pub dark_ink: bool,
    pub label: usize,
    pub predicted: usize,
    /// The probability the network gave its (wrong) answer.
    pub confidence: f32,
}

/// The report directory and what has been written to it.
pub struct Report {
    dir: PathBuf,
    rows: Vec<EpochRow>,
}

pub const METRICS: &str = "metrics.jsonl";
pub const CURVES: &str = "curves.png";
pub const CONFUSION: &str = "confusion.png";
pub const MISTAKES: &str = "mistakes.png";
pub const SCATTER: &str = "predictions.png";

/// A regression test sample: where it came from, its target and the prediction, in the
/// target's units.
#[derive(Clone, Debug)]
pub struct Fit {
    pub index: usize,
    pub origin: Option<String>,
    pub actual: f64,
    pub predicted: f64,
}

impl Report {
    /// Creates `dir` if needed and checks that files can be written there, before training.
    pub fn create(dir: &Path) -> Result<Report, Fail> {
        std::fs::create_dir_all(dir).map_err(|e| {
            format!(
                "--report {}: cannot create the directory: {e}",
                dir.display()
            )
        })?;
        let probe = dir.join(".soma-report-probe");
        plot::write_atomic(&probe, b"")
            .and_then(|()| std::fs::remove_file(&probe).map_err(Into::into))
            .map_err(|e| {
                format!(
                    "--report {}: the directory is not writable: {e}",
                    dir.display()
                )
            })?;
        Ok(Report {
            dir: dir.to_path_buf(),
            rows: Vec::new(),
        })
    }

    /// For a run resumed after `epochs_done` epochs: keeps those epochs' lines of an existing
    /// `metrics.jsonl`, so that the file and the curves cover the whole run. A line that does
    /// not parse is an error naming the file, not silently dropped.
    pub fn resume(&mut self, epochs_done: u64) -> Result<(), Fail> {
        let path = self.dir.join(METRICS);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(format!("{}: cannot read: {e}", path.display()).into()),
        };
        for (n, line) in text.lines().enumerate() {
            let row = EpochRow::parse(line).ok_or_else(|| {
                format!(
                    "{} line {}: expected an epoch's metrics, found {line:?}",
                    path.display(),
                    n + 1
                )
            })?;
            if row.epoch <= epochs_done {
                self.rows.push(row);
            }
        }
        Ok(())
    }

    /// Adds an epoch and rewrites `metrics.jsonl` (atomically: a reader sees every epoch so
    /// far or the previous version, never a torn line).
    pub fn epoch(&mut self, row: EpochRow) -> Result<(), Fail> {
        self.rows.push(row);
        let mut text = String::new();
        for r in &self.rows {
            writeln!(text, "{}", r.json()).expect("writing to a String");
        }
        plot::write_atomic(&self.dir.join(METRICS), text.as_bytes())
    }

    /// A regression run's pictures: the curves, and the test set's predictions against their
    /// targets (of the first target, `target`), with `title` above.
    pub fn finish_regression(&self, fits: &[Fit], target: &str, title: &str) -> Result<(), Fail> {
        curves(&self.dir.join(CURVES), &self.rows)?;
        scatter_png(&self.dir.join(SCATTER), fits, target, title)
    }

    /// A classifier's three pictures.
    pub fn finish(
        &self,
        confusion: &[Vec<u64>],
        classes: &[String],
        mistakes: &[Mistake],
    ) -> Result<(), Fail> {
        curves(&self.dir.join(CURVES), &self.rows)?;
        confusion_png(&self.dir.join(CONFUSION), confusion, classes)?;
        mistakes_png(&self.dir.join(MISTAKES), mistakes, classes)
    }
}

/// The heads of a confusion matrix's columns and rows: class names where every name fits a
/// column (five characters); else the columns are numbered and each row's name ends in its
/// number.
fn heads(classes: &[String]) -> (Vec<String>, Vec<String>) {
    if classes.iter().all(|c| c.chars().count() <= 5) {
        return (classes.to_vec(), classes.to_vec());
    }
    let columns = (0..classes.len()).map(|c| c.to_string()).collect();
    let rows = classes
        .iter()
        .enumerate()
        .map(|(c, name)| format!("{}  {c}", shorten(name, 24)))
        .collect();
    (columns, rows)
}

/// `matrix[label][predicted]` as a text table with each class's accuracy (recall).
pub fn confusion_table(matrix: &[Vec<u64>], classes: &[String]) -> String {
    let (columns, rows) = heads(classes);
    let width = rows
        .iter()
        .map(|c| c.chars().count())
        .max()
        .unwrap_or(1)
        .max(6);
    let mut out = String::new();
    let _ = write!(out, "{:>width$} |", "label");
    for c in &columns {
        let _ = write!(out, "{c:>6}");
    }
    let _ = writeln!(out, " | accuracy");
    for (l, row) in matrix.iter().enumerate() {
        let total: u64 = row.iter().sum();
        let _ = write!(out, "{:>width$} |", rows[l]);
        for &n in row {
            let _ = write!(out, "{n:>6}");
        }
        let acc = 100.0 * row[l] as f64 / total.max(1) as f64;
        let _ = writeln!(out, " | {acc:>7.2}%");
    }
    out
}

/// A class name cut to 5 characters, for narrow columns.
/// Loss and accuracy against epoch, train and test, side by side.
fn curves(path: &Path, rows: &[EpochRow]) -> Result<(), Fail> {
    plot::png(path, (1100, 460), |root| {
        let (left, right) = root.split_horizontally(550);
        let last = rows.last().map_or(1, |r| r.epoch);
        let first = rows.first().map_or(1, |r| r.epoch);
        // A quarter epoch of room at each end, so the end points' markers are whole; one
        // epoch still gets an axis of some width, with its point in the middle.
        let pad = if last > first { 0.25 } else { 1.0 };
        let x_range = first as f64 - pad..last as f64 + pad;
        let loss = |r: &EpochRow| [r.train_loss, r.test_loss];
        let score = rows.first().map_or(Score::Accuracy, |r| r.score);
        let top = rows
            .iter()
            .flat_map(loss)
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max);
        let frame = Frame {
            title: match score {
                Score::Accuracy => "Loss (cross-entropy)",
                Score::R2 => "Loss (mean squared error, standardised)",
            },
            y_label: "loss",
            x_range: x_range.clone(),
            y_range: 0.0..(top * 1.1).max(1e-3),
            // Losses fall: the upper right is empty.
            legend: SeriesLabelPosition::UpperRight,
        };
        panel(&left, frame, rows, |r| (r.train_loss, r.test_loss))?;
        if score == Score::R2 {
            let low = rows
                .iter()
                .flat_map(|r| [r.train_score, r.test_score])
                .filter(|v| v.is_finite())
                .fold(1.0f64, f64::min);
            // Tenths, down to 0 at least and -1 at most: a fit worse than the mean shows
            // below 0, and the first epochs' far worse ones leave the chart rather than
            // flatten the rest.
            let floor = (((low - 0.05) * 10.0).floor() / 10.0).clamp(-1.0, 0.0);
            let frame = Frame {
                title: "R² (1 is a perfect fit)",
                y_label: "R²",
                x_range,
                y_range: floor..1.0,
                legend: SeriesLabelPosition::LowerRight,
            };
            return panel(&right, frame, rows, |r| (r.train_score, r.test_score));
        }
        let acc = |r: &EpochRow| [100.0 * r.train_score, 100.0 * r.test_score];
        let low = rows
            .iter()
            .flat_map(acc)
            .filter(|v| v.is_finite())
            .fold(100.0f64, f64::min);
        let floor = ((low - 1.0) / 5.0).floor().max(0.0) * 5.0;
        let frame = Frame {
            title: "Accuracy",
            y_label: "accuracy (%)",
            x_range,
            y_range: floor..100.0,
            // Accuracies rise: the lower right is empty.
            legend: SeriesLabelPosition::LowerRight,
        };
        panel(&right, frame, rows, |r| {
            (100.0 * r.train_score, 100.0 * r.test_score)
        })
    })
}

/// The frame of one chart: its title, y axis, ranges and where the legend goes.
struct Frame<'a> {
    title: &'a str,
    y_label: &'a str,
    x_range: std::ops::Range<f64>,
    y_range: std::ops::Range<f64>,
    legend: SeriesLabelPosition,
}

/// One chart of a train and a test series against epoch.
fn panel(
    area: &Area,
    frame: Frame,
    rows: &[EpochRow],
    values: impl Fn(&EpochRow) -> (f64, f64),
) -> Result<(), Fail> {
    let Frame {
        title,
        y_label,
        x_range,
        y_range,
        legend,
    } = frame;
    let mut chart = ChartBuilder::on(area)
        .caption(title, plot::bold(22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x_range.clone(), y_range.clone())?;
    let whole = x_range.end - x_range.start;
    let y_span = y_range.end - y_range.start;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(y_label)
        .label_style(plot::font(14))
        .axis_desc_style(plot::font(16))
        // Whole epochs only: at most ~10 labels.
        .x_labels((whole as usize + 2).min(12))
        .x_label_formatter(&|x| {
            if (x - x.round()).abs() < 1e-9 {
                format!("{}", x.round() as i64)
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| {
            // Two decimals for small losses, none for percentages.
            if y_span < 5.0 {
                format!("{y:.2}")
            } else {
                format!("{y:.0}")
            }
        })
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    for (i, name) in ["train", "test"].into_iter().enumerate() {
        let color = COLORS[i];
        let points: Vec<(f64, f64)> = rows
            .iter()
            .map(|r| {
                let (a, b) = values(r);
                (r.epoch as f64, if i == 0 { a } else { b })
            })
            .filter(|p| p.1.is_finite())
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .label_font(plot::font(14))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(180, 180, 180))
        .position(legend)
        .draw()?;
    Ok(())
}

/// The confusion matrix as a heat map with counts, and each class's accuracy at the right.
fn confusion_png(path: &Path, matrix: &[Vec<u64>], classes: &[String]) -> Result<(), Fail> {
    let n = matrix.len() as i32;
    let cell = 52;
    let (columns, rows) = heads(classes);
    let widest = rows.iter().map(|r| r.chars().count()).max().unwrap_or(0) as i32;
    let total: u64 = matrix.iter().flatten().sum();
    let correct: u64 = (0..matrix.len()).map(|i| matrix[i][i]).sum();
    let title = format!(
        "Test confusion matrix: {correct} of {total} right ({:.2}%)",
        100.0 * correct as f64 / total.max(1) as f64
    );
    let (left, top) = (130.max(64 + 8 * widest), 96);
    // The rotated axis title, clear of the longest row name.
    let label_x = (left - 56).min(left - 24 - 8 * widest);
    let width = (left + n * cell + 120).max(32 + 11 * title.chars().count() as i32) as u32;
    let height = (top + n * cell + 30) as u32;
    plot::png(path, (width, height), |root| {
        root.draw(&Text::new(title, (16, 14), plot::bold(20)))?;
        let centre = |size| plot::anchored(plot::font(size), HPos::Center, VPos::Center);
        root.draw(&Text::new(
            "predicted",
            (left + n * cell / 2, top - 44),
            plot::anchored(plot::bold(16), HPos::Center, VPos::Center),
        ))?;
        root.draw(&Text::new(
            "label",
            (label_x, top + n * cell / 2),
            plot::anchored(
                plot::bold(16).transform(FontTransform::Rotate270),
                HPos::Center,
                VPos::Center,
            ),
        ))?;
        root.draw(&Text::new(
            "accuracy",
            (left + n * cell + 60, top - 18),
            centre(14),
        ))?;
        for (l, row) in matrix.iter().enumerate() {
            let y = top + l as i32 * cell;
            let row_total = row.iter().sum::<u64>().max(1) as f64;
            root.draw(&Text::new(
                rows[l].clone(),
                (left - 12, y + cell / 2),
                plot::anchored(plot::font(14), HPos::Right, VPos::Center),
            ))?;
            for (p, &count) in row.iter().enumerate() {
                let x = left + p as i32 * cell;
                // Shade by the share of the row, on a square-root scale so that the few
                // mistakes show beside the diagonal's hundreds.
                let share = (count as f64 / row_total).sqrt();
                let base = if l == p { COLORS[0] } else { COLORS[1] };
                let fill = plot::shade(base, share);
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    fill.filled(),
                ))?;
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    RGBColor(210, 210, 210),
                ))?;
                if count > 0 {
                    let ink = if share > 0.6 { WHITE } else { BLACK };
                    root.draw(&Text::new(
                        count.to_string(),
                        (x + cell / 2, y + cell / 2),
                        centre(14).color(&ink),
                    ))?;
                }
            }
            let acc = 100.0 * row[l] as f64 / row_total;
            root.draw(&Text::new(
                format!("{acc:.1}%"),
                (left + n * cell + 60, y + cell / 2),
                centre(14),
            ))?;
        }
        for (p, head) in columns.iter().enumerate() {
            root.draw(&Text::new(
                head.clone(),
                (left + p as i32 * cell + cell / 2, top - 14),
                centre(14),
            ))?;
        }
        Ok(())
    })
}

/// Predictions against targets, one dot per test sample, with the line where they agree.
fn scatter_png(path: &Path, fits: &[Fit], target: &str, title: &str) -> Result<(), Fail> {
    let (lo, hi) = fits
        .iter()
        .flat_map(|f| [f.actual, f.predicted])
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    let (lo, hi) = if lo < hi {
        let pad = 0.04 * (hi - lo);
        (lo - pad, hi + pad)
    } else if lo.is_finite() {
        (lo - 1.0, lo + 1.0)
    } else {
        (0.0, 1.0)
    };
    plot::png(path, (640, 640), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, plot::bold(18))
            .margin(18)
            .x_label_area_size(48)
            .y_label_area_size(72)
            .build_cartesian_2d(lo..hi, lo..hi)?;
        chart
            .configure_mesh()
            .x_desc(format!("{target} (actual)"))
            .y_desc(format!("{target} (predicted)"))
            .label_style(plot::font(14))
            .axis_desc_style(plot::font(16))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()?;
        chart.draw_series(LineSeries::new(
            [(lo, lo), (hi, hi)],
            RGBColor(150, 150, 150).stroke_width(1),
        ))?;
        // Small, see-through dots: thousands of samples still show where they crowd.
        let dot = COLORS[0].mix(0.45).filled();
        chart.draw_series(
            fits.iter()
                .filter(|f| f.actual.is_finite() && f.predicted.is_finite())
                .map(|f| Circle::new((f.actual, f.predicted), 3, dot)),
        )?;
        Ok(())
    })
}

/// The most confidently wrong test images in a grid, each with its label and the answer.
fn mistakes_png(path: &Path, mistakes: &[Mistake], classes: &[String]) -> Result<(), Fail> {
    const COLS: usize = 6;
    // Each picture is drawn in a box of BOX pixels, each of its pixels a square of whole pixels.
    const BOX: i32 = 112;
    // A line more under each picture where the samples have origins; no room for pictures
    // where the samples are not images (table rows).
    let with_origins = mistakes.iter().any(|m| m.origin.is_some());
    let picture_h = if mistakes.iter().any(|m| m.picture.is_some()) {
        BOX
    } else {
        0
    };
    let (cell_w, cell_h) = (150i32, picture_h + if with_origins { 96 } else { 76 });
    let rows = mistakes.len().div_ceil(COLS).max(1);
    let top = 56;
    let width = (COLS as i32 * cell_w + 20) as u32;
    let height = (top + rows as i32 * cell_h + 10) as u32;
    plot::png(path, (width, height), |root| {
        let title = if mistakes.is_empty() {
            "No test sample was misclassified".to_string()
        } else {
            format!(
                "The {} test samples the network got most confidently wrong",
                mistakes.len()
            )
        };
        root.draw(&Text::new(title, (16, 16), plot::bold(20)))?;
        for (k, m) in mistakes.iter().enumerate() {
            let x0 = 10 + (k % COLS) as i32 * cell_w + (cell_w - BOX) / 2;
            let y0 = top + (k / COLS) as i32 * cell_h;
            if let Some((pixels, image)) = &m.picture {
                draw_picture(root, pixels, *image, m.dark_ink, (x0, y0), BOX)?;
                root.draw(&Rectangle::new(
                    [(x0 - 1, y0 - 1), (x0 + BOX, y0 + BOX)],
                    RGBColor(190, 190, 190),
                ))?;
            }
            let cx = x0 + BOX / 2;
            let text_at = |dy| (cx, y0 + picture_h + dy);
            let centred = |f| plot::anchored(f, HPos::Center, VPos::Top);
            root.draw(&Text::new(
                format!("label {}", shorten(&classes[m.label], 16)),
                text_at(6),
                centred(plot::font(14)),
            ))?;
            root.draw(&Text::new(
                format!("said {}", shorten(&classes[m.predicted], 16)),
                text_at(23),
                centred(plot::font(14)),
            ))?;
            root.draw(&Text::new(
                format!("{:.1}% sure (#{})", 100.0 * m.confidence, m.index),
                text_at(42),
                centred(plot::font(12)).color(&RGBColor(90, 90, 90)),
            ))?;
            if let Some(origin) = &m.origin {
                root.draw(&Text::new(
                    shorten(origin, 24),
                    text_at(60),
                    centred(plot::font(11)).color(&RGBColor(90, 90, 90)),
                ))?;
            }
        }
        Ok(())
    })
}

/// The last `max` characters of `s`, with an ellipsis where it was cut (a file's name is at
/// its end).
fn shorten(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    let tail: String = s.chars().skip(n - (max - 1)).collect();
    format!("…{tail}")
}

/// Draws a picture of stored bytes (`image`, channel-major) with its top left at `at`, scaled by
/// whole pixels to fit `size`. One channel: grey, inverted when `dark_ink` (MNIST's light ink on
/// black, drawn dark on white as it was written); three or more: the first three as RGB.
fn draw_picture(
    root: &Area,
    pixels: &[u8],
    image: soma::shape::Chw,
    dark_ink: bool,
    at: (i32, i32),
    size: i32,
) -> Result<(), Fail> {
    let side = image.h.max(image.w).max(1) as i32;
    let scale = (size / side).max(1);
    let plane = image.plane();
    for y in 0..image.h.min(size as usize) {
        for x in 0..image.w.min(size as usize) {
            let at_c = |c: usize| pixels[c * plane + y * image.w + x];
            let colour = if image.c >= 3 {
                RGBColor(at_c(0), at_c(1), at_c(2))
            } else {
                let g = if dark_ink { 255 - at_c(0) } else { at_c(0) };
                RGBColor(g, g, g)
            };
            let (px, py) = (at.0 + x as i32 * scale, at.1 + y as i32 * scale);
            root.draw(&Rectangle::new(
                [(px, py), (px + scale, py + scale)],
                colour.filled(),
            ))?;
        }
    }
    Ok(())
}

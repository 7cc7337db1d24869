//! Times soma's readers of a user's data into a train-ready array, one JSON line per reading in
//! the form `../shared/peers/ingest.py` prints, so that the two sit side by side
//! (`benches/ingest_side_by_side.sh`): the best of `--repeats` readings (the file is in the
//! page cache after the first), and the process's peak RSS after them (run one reader per
//! process when that figure matters).
//!
//! ```text
//! cargo run --release --example ingest -- csv FILE [--threads 2]
//! cargo run --release --example ingest -- npy DIR        # x.npy, data.npz, data_z.npz
//! cargo run --release --example ingest -- folder DIR [--threads 2]
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Parser, Subcommand};
use soma::data::{csv, folder, npy};

#[derive(Parser, Debug)]
#[command(about = "Time soma's data readers (see benches/ingest_side_by_side.sh)")]
struct Args {
    #[command(subcommand)]
    what: What,
    /// Readings; the best is reported.
    #[arg(long, default_value_t = 3, global = true)]
    repeats: usize,
    /// Threads for the parallel readers (rayon's pool).
    #[arg(long, default_value_t = 2, global = true)]
    threads: usize,
}

#[derive(Subcommand, Debug)]
enum What {
    /// A CSV file into an f32 matrix.
    Csv { file: PathBuf },
    /// x.npy, data.npz (stored) and data_z.npz (deflated) in DIR, as ingest.py make-npy writes.
    Npy { dir: PathBuf },
    /// A folder of class subfolders of pictures into u8 samples.
    Folder { dir: PathBuf },
}

fn main() {
    let args = Args::parse();
    rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build_global()
        .expect("the first rayon pool");
    if let Err(e) = run(&args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// The best time of `repeats` calls of `f`, and its last result.
fn best_of<T>(repeats: usize, mut f: impl FnMut() -> soma::Result<T>) -> soma::Result<(f64, T)> {
    let mut best = f64::INFINITY;
    let mut out = None;
    for _ in 0..repeats.max(1) {
        // The last reading's result is dropped first, so that the peak is one reading's.
        drop(out.take());
        let t = Instant::now();
        let r = f()?;
        best = best.min(t.elapsed().as_secs_f64());
        out = Some(r);
    }
    Ok((best, out.expect("at least one reading")))
}

/// Peak resident memory so far (VmHWM), in MB; NaN where /proc is not there.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn bytes_of(path: &Path) -> u64 {
    if path.is_dir() {
        std::fs::read_dir(path)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| bytes_of(&e.path())).sum())
            .unwrap_or(0)
    } else {
        std::fs::metadata(path).map_or(0, |m| m.len())
    }
}

fn emit(reader: &str, what: &str, seconds: f64, path: &Path, shape: &[usize], threads: usize) {
    let nbytes = bytes_of(path) as f64;
    println!(
        "{}",
        serde_json::json!({
            "reader": reader,
            "what": what,
            "seconds": (seconds * 1e4).round() / 1e4,
            "mb_per_s": (nbytes / 1e6 / seconds * 10.0).round() / 10.0,
            "rows": shape.first().copied().unwrap_or(0),
            "shape": shape,
            "peak_rss_mb": (peak_rss_mb() * 10.0).round() / 10.0,
            "threads": threads,
            "version": env!("CARGO_PKG_VERSION"),
        })
    );
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let threads = args.threads;
    match &args.what {
        What::Csv { file } => {
            let opts = csv::CsvOptions {
                threads,
                ..csv::CsvOptions::default()
            };
            let (t, table) = best_of(args.repeats, || csv::read_csv(file, &opts))?;
            emit(
                "soma",
                "data::csv::read_csv, f32 matrix",
                t,
                file,
                &[table.rows(), table.width],
                threads,
            );
        }
        What::Npy { dir } => {
            let x = dir.join("x.npy");
            if x.is_file() {
                let (t, a) = best_of(args.repeats, || npy::load_npy(&x))?;
                emit("soma", "x.npy", t, &x, &a.shape, 1);
            }
            for name in ["data.npz", "data_z.npz"] {
                let p = dir.join(name);
                if !p.is_file() {
                    continue;
                }
                let (t, members) = best_of(args.repeats, || npy::load_npz(&p))?;
                let shape = members
                    .iter()
                    .find(|(n, _)| n == "x")
                    .map_or_else(Vec::new, |(_, a)| a.shape.clone());
                emit("soma", name, t, &p, &shape, 1);
            }
        }
        What::Folder { dir } => {
            let (t, data) = best_of(args.repeats, || {
                folder::read_folder(dir, &folder::FolderOptions::default())
            })?;
            let n = data.train.labels.len() + data.test.as_ref().map_or(0, |t| t.labels.len());
            let shape = [
                n,
                data.channels as usize,
                data.height as usize,
                data.width as usize,
            ];
            emit(
                "soma",
                "data::folder::read_folder, u8",
                t,
                dir,
                &shape,
                threads,
            );
        }
    }
    Ok(())
}

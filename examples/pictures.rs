//! Writes MNIST-style IDX images (MNIST, Fashion-MNIST) as a folder of colour pictures, one
//! subfolder per class: what a user brings to `train` or drops into the page, at any size. Each
//! picture gets its own ink and paper colours (from its index, not its class), so the colour
//! carries no label. The page's end-to-end test and its ingest benchmark are made with it.
//!
//! ```sh
//! cargo run --release --example pictures -- --data ../shared/data/mnist --out /tmp/digits \
//!     --count 5000 --size 64 --format jpeg --corrupt 1
//! ```
//!
//! Samples are the training file's `--count` from `--first` on, each written to `OUT/<class>/<index>.<ext>`;
//! `--corrupt N` adds N truncated pictures (named `corrupt-<i>.png`) among them. The last line on
//! stdout is JSON: the folder, the pictures written and their bytes.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Parser, ValueEnum};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::imageops::FilterType;
use image::{ExtendedColorType, ImageEncoder, RgbImage};
use soma::data::{DatasetKind, Inputs, MnistFiles, Targets};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Png,
    Jpeg,
}

/// Write IDX images as a folder of colour pictures, a subfolder per class.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// A folder with the four IDX files (MNIST's or Fashion-MNIST's).
    #[arg(long)]
    data: PathBuf,
    /// The folder to write (created; it must not exist yet, so nothing of the user's is
    /// overwritten).
    #[arg(long)]
    out: PathBuf,
    /// How many training samples to write.
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// The first training sample to write (0-based).
    #[arg(long, default_value_t = 0)]
    first: usize,
    /// Side of the square pictures written (the IDX images are resized, triangle filter).
    #[arg(long, default_value_t = 28)]
    size: u32,
    #[arg(long, value_enum, default_value = "png")]
    format: Format,
    /// Truncated pictures to add (each in the first class's folder).
    #[arg(long, default_value_t = 0)]
    corrupt: usize,
    /// Name the class folders as this dataset names its classes (`fashion`: T-shirt, …).
    #[arg(long, default_value = "mnist")]
    names: String,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// A colour from `seed`'s bits, each channel in `lo..lo + span`.
fn colour(seed: u64, lo: u8, span: u8) -> [u8; 3] {
    let h = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 16;
    [0, 1, 2].map(|k| lo + ((h >> (16 * k)) % span as u64) as u8)
}

fn encode(img: &RgbImage, format: Format) -> Result<Vec<u8>, image::ImageError> {
    let mut out = Vec::new();
    let (w, h) = img.dimensions();
    match format {
        Format::Png => PngEncoder::new(&mut out).write_image(img, w, h, ExtendedColorType::Rgb8)?,
        Format::Jpeg => JpegEncoder::new_with_quality(&mut out, 90).write_image(
            img,
            w,
            h,
            ExtendedColorType::Rgb8,
        )?,
    }
    Ok(out)
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let kind: DatasetKind = args.names.parse()?;
    let names = soma::model::class_names(kind);
    let files = MnistFiles::in_dir(&args.data)
        .map_err(|missing| format!("{}: missing {}", args.data.display(), missing.join(", ")))?;
    let (train, _) = files.load()?;
    let (Inputs::U8(pixels), Targets::Labels { labels, .. }) = (train.inputs(), train.targets())
    else {
        return Err("IDX images are labelled bytes".into());
    };
    if args.out.exists() {
        return Err(format!("{}: already exists; give a new folder", args.out.display()).into());
    }
    if args.size == 0 || args.size > 1024 {
        return Err(format!("--size {}: expected 1 to 1024", args.size).into());
    }
    let side = 28;
    let first = args.first.min(train.len());
    let count = args.count.min(train.len() - first);
    let ext = match args.format {
        Format::Png => "png",
        Format::Jpeg => "jpg",
    };
    // Class names as folder names: a `/` (Fashion's "T-shirt/top") would make a subfolder.
    let folder = |label: usize| args.out.join(names[label].replace('/', "-"));
    let mut bytes = 0usize;
    for i in first..first + count {
        let label = labels[i] as usize;
        let ink = colour(2 * i as u64 + 1, 0, 120);
        let paper = colour(2 * i as u64 + 2, 150, 105);
        let grey = &pixels[i * side * side..(i + 1) * side * side];
        let img = RgbImage::from_fn(side as u32, side as u32, |x, y| {
            let v = grey[y as usize * side + x as usize] as u32;
            image::Rgb(
                [0, 1, 2].map(|k| ((ink[k] as u32 * v + paper[k] as u32 * (255 - v)) / 255) as u8),
            )
        });
        let img = if args.size as usize == side {
            img
        } else {
            image::imageops::resize(&img, args.size, args.size, FilterType::Triangle)
        };
        let dir = folder(label);
        std::fs::create_dir_all(&dir)?;
        let data = encode(&img, args.format)?;
        bytes += data.len();
        write(&dir.join(format!("{i:05}.{ext}")), &data)?;
    }
    for c in 0..args.corrupt {
        let whole = encode(&RgbImage::new(args.size, args.size), Format::Png)?;
        let dir = folder(labels[0] as usize);
        std::fs::create_dir_all(&dir)?;
        write(
            &dir.join(format!("corrupt-{c}.png")),
            &whole[..whole.len() / 2],
        )?;
    }
    println!(
        "{}",
        serde_json::json!({
            "folder": args.out.display().to_string(),
            "pictures": count,
            "corrupt": args.corrupt,
            "bytes": bytes,
        })
    );
    Ok(())
}

fn write(path: &Path, data: &[u8]) -> std::io::Result<()> {
    std::fs::File::create(path)?.write_all(data)
}

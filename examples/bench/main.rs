//! Measures soma on the peers' benchmark: the 784-64-64-10 sigmoid network with softmax +
//! cross-entropy, plain SGD at a constant learning rate, no augmentation, inputs `x/255`, on
//! real MNIST (see `shared/peers/README.md` for the NumPy, PyTorch, JAX, Burn and candle numbers).
//!
//! ```text
//! cargo run --release --example bench -- --backends cpu --batch-sizes 64,256,1024,4096 \
//!     --json /tmp/bench-cpu.json --plot /tmp/bench.png
//! cargo run --release --example bench -- --backends gpu --limit 6000 --epochs 2 --batch-sizes 64,1024
//! ```
//!
//! Every (backend, threads, batch size) configuration runs in its own child process (this
//! binary with the hidden `--child` flag), so that each row's peak memory (`VmHWM`, read by the
//! child just before it exits) is its own. A child loads the data, trains warm-up epochs, then
//! the timed epochs (the training loop only, as the peers time it: order, batches, forward,
//! backward, update, the read-back of the loss), then times `evaluate` over the test set.
//! A configuration that fails (no GPU adapter, say) becomes a row with its error.
//!
//! Only the table (Markdown) goes to stdout, after all runs; progress goes to stderr.
//!
//! `flags` holds the command line, `runner` the parent that starts the children, `child` one
//! measured configuration, `report` the machine description and the table, `plot` the chart.

#[path = "../common/plot.rs"]
mod chart;
mod child;
mod flags;
mod plot;
mod report;
mod runner;

use clap::Parser;
use serde_json::json;

use flags::Args;

fn main() {
    let args = Args::parse();
    if args.child {
        // One JSON line on stdout, whatever happens.
        let row = child::child(&args).unwrap_or_else(|e| json!({ "error": e }));
        println!("{row}");
        return;
    }
    if let Err(e) = runner::parent(&args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// Errors travel as text: a child puts them in its JSON row, the parent prints them.
pub fn s(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The CPU's model name from /proc/cpuinfo (Linux only).
pub fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_string())
}

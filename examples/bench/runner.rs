//! The parent: runs every configuration in a child process (this binary with `--child`),
//! turns each child's JSON line (or its failure) into a row, and hands the rows to the table,
//! the JSON file and the plot.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use soma::data::{DatasetKind, locate};

use crate::flags::{Args, BackendArg};
use crate::report::{machine_info, print_table, thousands};
use crate::{plot, s};

#[derive(Clone, Copy, Debug)]
struct Config {
    backend: BackendArg,
    threads: Option<u64>,
    batch: u64,
}

impl Config {
    fn label(&self) -> String {
        match self.threads {
            Some(t) => format!("{} t={t} batch {}", self.backend.name(), self.batch),
            None => format!("{} batch {}", self.backend.name(), self.batch),
        }
    }
}

/// Measures every configuration `args` asks for, then prints and writes the report.
pub fn parent(args: &Args) -> Result<(), String> {
    let mut backends = args.backends.clone();
    let mut notes = Vec::new();
    if backends.is_empty() {
        backends.push(BackendArg::Cpu);
        match soma::gpu::hardware_adapter() {
            Some(_) => backends.push(BackendArg::Gpu),
            None => notes.push(
                "no hardware GPU adapter: gpu not measured (`--backends gpu` measures a \
                 software adapter too)"
                    .to_string(),
            ),
        }
    }
    backends.dedup();
    let mut configs = Vec::new();
    for &backend in &backends {
        for &batch in &args.batch_sizes {
            match backend {
                BackendArg::Cpu => configs.extend(args.threads.iter().map(|&t| Config {
                    backend,
                    threads: Some(t),
                    batch,
                })),
                BackendArg::Gpu => configs.push(Config {
                    backend,
                    threads: None,
                    batch,
                }),
            }
        }
    }
    let files = locate(DatasetKind::Mnist, args.data.as_deref(), !args.offline).map_err(s)?;
    let exe = std::env::current_exe().map_err(|e| format!("finding this program: {e}"))?;

    let bar = ProgressBar::new(configs.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{pos}/{len}] {prefix}: {wide_msg} ({elapsed})")
            .expect("valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let mut rows = Vec::new();
    for cfg in &configs {
        bar.set_prefix(cfg.label());
        bar.set_message("starting");
        rows.push(run_child(&exe, args, &files.dir, cfg, &bar));
        bar.inc(1);
    }
    bar.finish_and_clear();

    for path in &args.with {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let earlier: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        for row in earlier["rows"].as_array().into_iter().flatten() {
            let mut row = row.clone();
            if row.get("from").is_none() {
                row["from"] = json!(path.display().to_string());
            }
            rows.push(row);
        }
    }

    let machine = machine_info(&rows);
    let settings = json!({
        "network": "784-64-64-10 sigmoid, softmax cross-entropy",
        "optimizer": "sgd",
        "model": args.model,
        "lr": args.lr,
        "schedule": "constant",
        "augment": 0,
        "inputs": "x/255",
        "warmup_epochs": args.warmup,
        "epochs": args.epochs,
        "limit": args.limit,
        "tick": args.tick,
        "eval_repeats": args.eval_repeats,
        "data": files.dir.display().to_string(),
    });
    print_table(&machine, &rows, &notes);
    if let Some(path) = &args.json {
        let doc = json!({ "machine": machine, "settings": settings, "rows": rows });
        let text = serde_json::to_string_pretty(&doc).expect("JSON values serialise");
        std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &args.plot {
        plot::draw(path, &rows).map_err(|e| format!("plotting to {}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Runs `cfg` in a child process; its row, or a row holding the error.
fn run_child(exe: &Path, args: &Args, data: &Path, cfg: &Config, bar: &ProgressBar) -> Value {
    let mut cmd = Command::new(exe);
    cmd.arg("--child")
        .args(["--backends", cfg.backend.name()])
        .args(["--batch-sizes", &cfg.batch.to_string()])
        .args(["--model", &args.model])
        .args(["--threads", &cfg.threads.unwrap_or(1).to_string()])
        .args(["--epochs", &args.epochs.to_string()])
        .args(["--warmup", &args.warmup.to_string()])
        .args(["--lr", &args.lr.to_string()])
        .args(["--seed", &args.seed.to_string()])
        .args(["--tick", &args.tick.to_string()])
        .args(["--eval-repeats", &args.eval_repeats.to_string()])
        .arg("--offline")
        .arg("--data")
        .arg(data);
    if let Some(n) = args.limit {
        cmd.args(["--limit", &n.to_string()]);
    }
    if let Some(a) = &args.adapter {
        cmd.args(["--adapter", a]);
    }
    if let Some(p) = args.step_path {
        cmd.args(["--step-path", &p.to_string()]);
    }
    let base = json!({
        "backend": cfg.backend.name(),
        "threads": cfg.threads,
        "batch": cfg.batch,
    });
    let with_error = |e: String| {
        let mut row = base.clone();
        row["error"] = json!(e);
        row
    };
    let mut proc = match cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(p) => p,
        Err(e) => return with_error(format!("starting {}: {e}", exe.display())),
    };
    let stderr = proc.stderr.take().expect("piped");
    let progress = bar.clone();
    let reader = std::thread::spawn(move || {
        let mut other = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
            if let Some(p) = line.strip_prefix("@progress ") {
                let f: Vec<&str> = p.split(' ').collect();
                if let [epoch, epochs, done, total, sps] = f.as_slice() {
                    progress.set_message(format!(
                        "epoch {epoch}/{epochs} {done}/{total}, {} samples/s",
                        thousands(sps.parse().unwrap_or(f64::NAN))
                    ));
                }
            } else if let Some(p) = line.strip_prefix("@phase ") {
                progress.set_message(p.to_string());
            } else if !line.trim().is_empty() {
                other.push(line);
            }
        }
        other
    });
    let mut out = String::new();
    let read = proc.stdout.take().expect("piped").read_to_string(&mut out);
    let status = proc.wait();
    let other = reader.join().unwrap_or_default();
    let last = out.lines().rev().find(|l| l.trim_start().starts_with('{'));
    match (read, last.map(serde_json::from_str::<Value>)) {
        (Ok(_), Some(Ok(mut row))) => {
            if row.get("error").is_some() {
                for (k, v) in base.as_object().expect("an object") {
                    row[k] = v.clone();
                }
            }
            row
        }
        _ => {
            let tail: Vec<&str> = other
                .iter()
                .rev()
                .take(3)
                .rev()
                .map(|s| s.as_str())
                .collect();
            let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
            with_error(format!("child failed ({status}): {}", tail.join(" / ")))
        }
    }
}

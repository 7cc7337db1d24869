//! What the rows say: the machine they ran on (JSON), and the Markdown table of every row
//! with its per-kernel GPU times, which is all the bench prints to stdout.

use serde_json::{Value, json};

use crate::cpu_model;

/// The machine the rows ran on, and the GPU adapters they name.
pub fn machine_info(rows: &[Value]) -> Value {
    let adapters: Vec<&str> = rows
        .iter()
        .filter(|r| r["backend"] == "gpu")
        .filter_map(|r| r["device"].as_str())
        .collect();
    let mut unique: Vec<&str> = Vec::new();
    for a in adapters {
        if !unique.contains(&a) {
            unique.push(a);
        }
    }
    let mem_total_mib = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some((kib / 1024.0).round() as u64)
    });
    json!({
        "cpu_model": cpu_model(),
        "cores": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "mem_total_mib": mem_total_mib,
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "adapter": unique.first(),
        "adapters": unique,
    })
}

/// `1234567.8` → `1,234,568`.
pub fn thousands(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 { format!("-{out}") } else { out }
}

fn cell_f(v: &Value, digits: usize) -> String {
    v.as_f64().map_or("–".into(), |x| format!("{x:.digits$}"))
}

/// Prints the Markdown table of `rows`, the per-kernel GPU table, and `notes`, to stdout.
pub fn print_table(machine: &Value, rows: &[Value], notes: &[String]) {
    let mut out = String::new();
    out.push_str(&format!(
        "Machine: {} ({} logical CPUs, {} MiB)",
        machine["cpu_model"].as_str().unwrap_or("unknown CPU"),
        machine["cores"],
        machine["mem_total_mib"],
    ));
    if let Some(a) = machine["adapter"].as_str() {
        out.push_str(&format!("; GPU adapter: {a}"));
    }
    out.push_str("\n\n");
    out.push_str(
        "| backend | threads | batch | train samples/s median [min-max] | s/epoch | \
         inference samples/s | test acc | peak RSS MiB | dispatches/epoch | submits/epoch | \
         dispatches/step | step path | CPU recording ms/epoch | GPU time/kernel |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    let mut timestamp_support = None;
    for r in rows {
        let backend = r["backend"].as_str().unwrap_or("?");
        let threads = r["threads"].as_u64().map_or("–".into(), |t| t.to_string());
        let batch = r["batch"].to_string();
        if let Some(e) = r["error"].as_str() {
            let e = e.replace('|', "\\|").replace('\n', " ");
            out.push_str(&format!(
                "| {backend} | {threads} | {batch} | error: {e} | | | | | | | | | | |\n"
            ));
            continue;
        }
        let sps = &r["samples_per_second"];
        let gpu = backend == "gpu";
        if gpu && timestamp_support.is_none() {
            timestamp_support = r["adapter_timestamp_query"].as_bool();
        }
        let gpu_cell = |key: &str, digits: usize| {
            if gpu {
                cell_f(&r[key], digits)
            } else {
                "–".into()
            }
        };
        out.push_str(&format!(
            "| {backend} | {threads} | {batch} | {} [{}-{}] | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            thousands(sps["median"].as_f64().unwrap_or(f64::NAN)),
            thousands(sps["min"].as_f64().unwrap_or(f64::NAN)),
            thousands(sps["max"].as_f64().unwrap_or(f64::NAN)),
            cell_f(&r["epoch_seconds_median"], 3),
            thousands(r["inference_samples_per_second"].as_f64().unwrap_or(f64::NAN)),
            cell_f(&r["test_accuracy"], 4),
            cell_f(&r["peak_rss_mib"], 0),
            gpu_cell("dispatches_per_epoch", 0),
            gpu_cell("submits_per_epoch", 0),
            gpu_cell("dispatches_per_step", 2),
            r["step_path"].as_str().unwrap_or("–"),
            gpu_cell("record_ms_per_epoch", 1),
            if gpu { kernel_total(r) } else { "–".into() },
        ));
    }
    out.push('\n');
    out.push_str(
        "samples/s: median over the timed epochs of train samples / epoch seconds (training loop \
         only), [min-max] over those epochs; inference: `evaluate` over the test set, median of \
         the repeats; peak RSS: VmHWM of the configuration's own process; GPU counters: \
         difference over the run / epochs run.\n",
    );
    if rows
        .iter()
        .any(|r| r["backend"] == "gpu" && r.get("error").is_none())
    {
        out.push_str(&format!(
            "GPU time/kernel: ms per step summed over the step's kernels, from timestamp queries \
             in one extra profiled epoch (the adapter {} them); per kernel below.\n",
            match timestamp_support {
                Some(true) => "supports",
                Some(false) => "does not support",
                None => "may or may not support",
            }
        ));
        kernel_table(&mut out, rows);
    }
    for n in notes {
        out.push_str(&format!("Note: {n}\n"));
    }
    print!("{out}");
    let _ = std::io::Write::flush(&mut std::io::stdout());
}

/// The sum of a GPU row's per-kernel times, or `n/a`.
fn kernel_total(r: &Value) -> String {
    match r["gpu_kernel_ms"].as_array() {
        Some(times) => {
            let total: f64 = times.iter().filter_map(|t| t["ms_per_step"].as_f64()).sum();
            format!("{total:.3} ms/step")
        }
        None => "n/a".into(),
    }
}

/// One row per profiled GPU configuration, one column per labelled kernel (ms per step).
fn kernel_table(out: &mut String, rows: &[Value]) {
    let profiled: Vec<&Value> = rows
        .iter()
        .filter(|r| r["gpu_kernel_ms"].is_array())
        .collect();
    let Some(first) = profiled.first() else {
        return;
    };
    let labels: Vec<String> = first["gpu_kernel_ms"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["kernel"].as_str().map(str::to_string))
        .collect();
    out.push_str(&format!("\n| batch | {} |\n", labels.join(" | ")));
    out.push_str(&format!("|---|{}\n", "---|".repeat(labels.len())));
    for r in profiled {
        let times = r["gpu_kernel_ms"].as_array().expect("filtered above");
        let cells: Vec<String> = labels
            .iter()
            .map(|l| {
                times
                    .iter()
                    .find(|t| t["kernel"].as_str() == Some(l))
                    .and_then(|t| t["ms_per_step"].as_f64())
                    .map_or("–".into(), |v| format!("{v:.3}"))
            })
            .collect();
        out.push_str(&format!("| {} | {} |\n", r["batch"], cells.join(" | ")));
    }
    out.push('\n');
}

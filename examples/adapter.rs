//! Which GPU adapter soma would train on: the one `GpuContext::new` opens (hardware first, or
//! the one `--adapter NAME` names), as one JSON line on stdout, with every adapter wgpu found
//! beside it. `WGPU_BACKEND=vulkan|gl|...` limits the APIs tried, as for the other examples.
//!
//! `cargo run --release --example adapter -- --require-hardware`
//!
//! `benches/real_gpu.sh` runs it first, so that a machine whose driver wgpu cannot see (which
//! then falls back to a software adapter such as lavapipe) fails in a second, not after minutes
//! of measuring the wrong thing.

use std::process::ExitCode;

use clap::Parser;
use serde_json::json;
use soma::gpu::{GpuContext, GpuOptions, all_adapters};

/// Print the GPU adapter soma picks, as JSON.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Pick the adapter whose name contains NAME (case-insensitive), as `mnist --adapter`.
    #[arg(long)]
    adapter: Option<String>,
    /// Exit with status 1 when the adapter picked is a software one (a CPU implementation such
    /// as lavapipe or SwiftShader); its JSON line is printed first all the same.
    #[arg(long)]
    require_hardware: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let seen: Vec<_> = all_adapters()
        .iter()
        .map(|i| {
            json!({
                "name": i.name,
                "backend": format!("{:?}", i.backend),
                "device_type": format!("{:?}", i.device_type),
                "driver": i.driver,
            })
        })
        .collect();
    let ctx = match GpuContext::new(&GpuOptions {
        adapter: args.adapter.clone(),
    }) {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let i = &ctx.info;
    let l = &ctx.limits;
    let line = json!({
        "name": i.name,
        "backend": format!("{:?}", i.backend),
        "device_type": format!("{:?}", i.device_type),
        "driver": i.driver,
        "driver_info": i.driver_info,
        "vendor": format!("{:#06x}", i.vendor),
        "device": format!("{:#06x}", i.device),
        "software": ctx.is_software(),
        "timestamp_query": ctx.device.features().contains(wgpu::Features::TIMESTAMP_QUERY),
        "subgroup_size": [i.subgroup_min_size, i.subgroup_max_size],
        "limits": {
            "max_buffer_size": l.max_buffer_size,
            "max_storage_buffer_binding_size": l.max_storage_buffer_binding_size,
            "max_compute_workgroup_storage_size": l.max_compute_workgroup_storage_size,
        },
        "wgpu_backend_env": std::env::var("WGPU_BACKEND").ok(),
        "adapters_seen": seen,
    });
    println!("{line}");
    eprintln!("adapter: {}", ctx.describe());
    if args.require_hardware && ctx.is_software() {
        eprintln!(
            "error: the adapter picked, {}, is a software adapter ({:?}): its numbers would say \
             nothing about a GPU; make the GPU's driver visible to wgpu (for Vulkan, its ICD: \
             VK_DRIVER_FILES), or allow software adapters",
            i.name, i.device_type
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

//! Every shader and pipeline variant the engine builds (`soma::gpu::kernel_specs`, the list the
//! native naga validation in `tests/wgsl.rs` checks) created in a browser on its WebGPU adapter
//! under error scopes, so that what Chrome's WGSL compiler (Tint) rejects fails here, naming
//! the kernel, with Chrome's message; and the check that such a rejection does surface (a
//! shader Tint rejects although naga accepts it), so that this cannot pass vacuously; and the
//! training step's pipelines compiled in parallel before its data (`prepare_async`, the
//! page's start) are all that training then builds.
//! Run by `web/test.sh`. Without a WebGPU adapter the tests log "SKIPPED: no WebGPU adapter"
//! and pass, unless they were built with `SOMA_STRICT=1`.
#![cfg(target_arch = "wasm32")]

use std::sync::Arc;

use soma::gpu::{GpuBackend, GpuContext, GpuOptions, compile_wgsl_async, kernel_specs};
use soma::ops::gather::InputKind;
use soma::ops::loss::TargetKind;
use soma::{
    Activation, Backend, Dataset, Init, Inputs, Network, Normalize, Optimizer, Output, Params,
    Targets,
};
use wasm_bindgen_test::{console_log, wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// A device on the browser's WebGPU adapter, or `None` after a logged skip.
async fn context() -> Option<GpuContext> {
    match GpuContext::new_async(&GpuOptions::default()).await {
        Ok(ctx) => {
            console_log!("GPU: {}", ctx.describe());
            Some(ctx)
        }
        Err(e) => {
            if option_env!("SOMA_STRICT") == Some("1") {
                panic!("SOMA_STRICT=1 forbids skipping: no WebGPU adapter: {e}");
            }
            console_log!("SKIPPED: no WebGPU adapter: {e}");
            None
        }
    }
}

/// A float literal Tint rejects ("cannot be represented as 'f32'") and naga accepts: its exact
/// value lies beyond f32::MAX, although it rounds to it.
const BEYOND_F32_MAX: &str = "-3.40282347e38";

#[wasm_bindgen_test]
async fn every_kernel_variant_builds_in_the_browser() {
    let Some(ctx) = context().await else { return };
    let specs = kernel_specs();
    assert!(specs.len() >= 10, "{} specs", specs.len());
    let mut failures = Vec::new();
    for spec in &specs {
        match spec.build_async(&ctx).await {
            Ok(kernel) => assert_eq!(kernel.name, spec.name),
            Err(e) => failures.push(e.to_string()),
        }
    }
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    console_log!("{} kernel variants: {}", specs.len(), names.join(", "));
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[wasm_bindgen_test]
async fn a_shader_the_browser_rejects_is_an_error_with_its_message() {
    let Some(ctx) = context().await else { return };
    let src = format!("@compute @workgroup_size(1) fn main() {{ let x: f32 = {BEYOND_F32_MAX}; }}");
    let e = compile_wgsl_async(&ctx, "beyond_f32_max", &src)
        .await
        .expect_err("Tint rejects a literal beyond f32::MAX")
        .to_string();
    console_log!("{e}");
    assert!(e.contains("beyond_f32_max"), "names the shader: {e}");
    assert!(
        e.contains("cannot be represented as 'f32'"),
        "Tint's message: {e}"
    );
    // The same value written so that it is exactly f32::MIN compiles.
    let ok = "@compute @workgroup_size(1) fn main() { let x: f32 = -0x1.fffffep+127f; }";
    compile_wgsl_async(&ctx, "f32_min_hex", ok).await.unwrap();
}

/// The same rejection through the path every kernel takes: one of the engine's own variants,
/// with such a literal added, fails to build, named.
#[wasm_bindgen_test]
async fn a_kernel_variant_the_browser_rejects_fails_to_build_named() {
    let Some(ctx) = context().await else { return };
    let mut spec = kernel_specs()
        .into_iter()
        .find(|s| s.name == "gather")
        .expect("the gather kernel");
    spec.source.push_str(&format!(
        "\nfn beyond() -> f32 {{ return {BEYOND_F32_MAX}; }}\n"
    ));
    let e = spec
        .build_async(&ctx)
        .await
        .expect_err("the variant with the literal is rejected")
        .to_string();
    console_log!("{e}");
    assert!(e.contains("kernel `gather`"), "names the kernel: {e}");
    assert!(
        e.contains("cannot be represented as 'f32'"),
        "Tint's message: {e}"
    );
    // The context is still usable: the unchanged variant builds.
    spec.source = kernel_specs()
        .into_iter()
        .find(|s| s.name == "gather")
        .expect("the gather kernel")
        .source;
    spec.build_async(&ctx).await.unwrap();
}

/// The page's start: the step's pipelines compiled by `createComputePipelineAsync` (none
/// rejected), then built through wgpu; training on the data afterwards builds nothing more, so
/// the plan made without the data named every pipeline training runs. (That the browser's
/// cache then hands wgpu the compiled pipelines shows only in time: the page's first loss
/// came back 1.37 s after its data without it, ~0.8 s with it; BENCHMARKS.md.)
#[wasm_bindgen_test]
async fn the_steps_pipelines_prepared_in_parallel_are_all_that_training_builds() {
    let Some(ctx) = context().await else { return };
    // The backend shares its context as an `Arc` (Send + Sync natively).
    #[allow(clippy::arc_with_non_send_sync)]
    let ctx = Arc::new(ctx);
    let net = Network::new(
        &[784, 64, 64, 10],
        Activation::Sigmoid,
        Output::SoftmaxCrossEntropy,
    )
    .unwrap();
    let params = Params::init(&net, Init::Uniform, 1);
    let mut g = GpuBackend::new(Arc::clone(&ctx), &net, params, Optimizer::momentum()).unwrap();
    g.prepare_async(64, InputKind::U8, TargetKind::Labels)
        .await
        .unwrap();
    let prepared = ctx.kernels.built();
    assert!(prepared >= 5, "{prepared} pipelines prepared");
    let len = 200;
    let pixels = (0..len * 784).map(|i| (i * 7 % 251) as u8).collect();
    let labels = (0..len).map(|i| (i % 10) as u32).collect();
    let data = Dataset::new(
        784,
        Inputs::U8(pixels),
        Targets::Labels {
            labels,
            classes: 10,
        },
        Normalize::UNIT,
    )
    .unwrap();
    g.set_train_data(&data).unwrap();
    let order: Vec<u32> = (0..len as u32).collect();
    g.train_batches(&order, 64, 0.1).unwrap();
    let stats = g.take_stats_async().await.unwrap();
    assert_eq!(stats.samples, len as u64);
    assert!(stats.loss_sum.is_finite() && stats.loss_sum > 0.0);
    assert_eq!(
        ctx.kernels.built(),
        prepared,
        "training built a pipeline prepare missed"
    );
}

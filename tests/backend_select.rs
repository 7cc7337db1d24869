//! `--backend cpu|gpu|auto` and `--adapter`: which backend `select::create` builds.

mod common;

use soma::select::{Options, create};
use soma::{Activation, BackendKind, Error, Init, Network, Optimizer, Output, Params};

fn build(kind: BackendKind, adapter: Option<&str>) -> soma::Result<String> {
    let net = Network::new(&[4, 3, 2], Activation::Sigmoid, Output::SoftmaxCrossEntropy)?;
    let options = Options {
        threads: 1,
        adapter: adapter.map(str::to_string),
    };
    let backend = create(
        kind,
        &net,
        Params::init(&net, Init::Uniform, 0),
        Optimizer::Sgd,
        &options,
    )?;
    Ok(backend.name())
}

#[test]
fn cpu_is_always_available() {
    assert_eq!(build(BackendKind::Cpu, None).unwrap(), "cpu");
}

#[test]
fn auto_takes_a_hardware_gpu_and_otherwise_the_cpu() {
    let name = build(BackendKind::Auto, None).unwrap();
    match soma::gpu::hardware_adapter() {
        Some(info) => assert!(
            name.contains(&info.name),
            "auto chose {name}, not {}",
            info.name
        ),
        // A software adapter (lavapipe) is slower than the CPU backend: auto must not take it.
        None => assert_eq!(name, "cpu"),
    }
}

#[test]
fn gpu_runs_on_any_adapter() {
    match build(BackendKind::Gpu, None) {
        Ok(name) => assert!(name.starts_with("gpu: "), "{name}"),
        Err(Error::NoAdapter(why)) => common::skip(&format!("no GPU adapter: {why}")),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

#[test]
fn an_unknown_adapter_name_is_an_error_that_lists_the_adapters() {
    match build(BackendKind::Gpu, Some("no-such-gpu-1234")) {
        Err(Error::NoAdapter(why)) => {
            assert!(
                why.contains("no-such-gpu-1234") && why.contains("adapters seen"),
                "{why}"
            );
        }
        Ok(name) => panic!("picked {name} for a name no adapter has"),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

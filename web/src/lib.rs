//! soma in a web page: what the page's JavaScript calls (`web/app.js`), compiled to wasm32 with
//! wasm-bindgen. Everything here is glue: training is the library's [`soma::train::Run`] on
//! its GPU backend (WebGPU) or, without WebGPU, its CPU backend, with the same kernels, the
//! same recipe ([`soma::train::Recipe`]) and checkpoints the native tools read.
#![cfg(target_arch = "wasm32")]

mod data;
mod engine;
mod ingest;
mod setup;
mod trainer;

pub use data::UserData;
pub use engine::Engine;
pub use ingest::read_pictures;
pub use setup::Setup;
pub use trainer::{Mnist, Trainer};

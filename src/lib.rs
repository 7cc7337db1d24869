//! # soma
//!
//! A neural-network training engine whose hot path runs as WGSL compute shaders on
//! [wgpu](https://wgpu.rs), with a CPU reference backend on ndarray that every GPU result is
//! held to in the tests.
//!
//! ```
//! use soma::{Activation, Backend, CpuBackend, Dataset, Init, Network, Optimizer, Output, Params};
//!
//! // The XOR exercise: 2-4-1, sigmoid, mean squared error.
//! let net = Network::new(&[2, 4, 1], Activation::Sigmoid, Output::SigmoidMse)?;
//! let data = Dataset::from_rows(
//!     &[vec![0., 0.], vec![0., 1.], vec![1., 0.], vec![1., 1.]],
//!     &[vec![0.], vec![1.], vec![1.], vec![0.]],
//! )?;
//! let params = Params::init(&net, Init::Uniform, 1);
//! let mut cpu = CpuBackend::new(&net, params, Optimizer::momentum())?;
//! cpu.set_train_data(&data)?;
//! for _ in 0..2000 {
//!     cpu.train_batches(&[0, 1, 2, 3], 4, 0.5)?;
//! }
//! assert!(cpu.evaluate(&data)?.mean_loss() < 0.01);
//! # Ok::<(), soma::Error>(())
//! ```
//!
//! The GPU backend is the default feature `gpu`; without it (the fuzz targets' build) the
//! kernels' WGSL sources, which only it compiles, are unused.
#![cfg_attr(not(feature = "gpu"), allow(dead_code))]

pub mod backend;
pub mod checkpoint;
pub mod cpu;
pub mod data;
pub mod digit;
pub mod error;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod layer;
pub mod layers;
pub mod memory;
pub mod model;
mod names;
pub mod net;
pub mod ops;
pub mod optim;
pub mod params;
pub mod select;
pub mod shape;
pub mod train;

pub use backend::{Backend, Stats};
pub use cpu::CpuBackend;
pub use data::{Dataset, Inputs, Normalize, Targets};
pub use error::{Error, Result};
pub use model::ModelInfo;
pub use net::{Activation, Init, Network, Output};
pub use optim::{OptimState, Optimizer};
pub use params::{Params, Weights};
pub use select::BackendKind;

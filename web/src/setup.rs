//! What the page sets up before its data arrives: the options, WebGPU (or the reason for the
//! CPU) and, for MNIST, the engine for its shape, with the browser compiling the training
//! step's pipelines in parallel while the files download and are read and uploaded. For the
//! user's own data the network waits for the data's shape ([`crate::Trainer::create_from`]).

use std::sync::Arc;

use serde::Deserialize;
use soma::gpu::{GpuContext, Preparing, StepPath};
use soma::ops::gather::InputKind;
use soma::ops::loss::TargetKind;
use soma::shape::Chw;
use soma::train::{Recipe, default_cnn_lr, default_lr, default_weight_decay};
use soma::{Error, Network, Optimizer, Params};
use wasm_bindgen::prelude::*;

use crate::engine::Engine;
use crate::trainer::{from_js, js};

/// What the page may change; everything else is the `mnist` example's defaults
/// ([`Recipe::default`]).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub(crate) struct Options {
    /// `auto` (WebGPU if the browser has it, else the CPU), `gpu` or `cpu`.
    pub backend: Option<String>,
    /// `general` or `fused` (the GPU's step; the backend chooses by default).
    pub step_path: Option<String>,
    pub epochs: Option<u64>,
    pub batch_size: Option<usize>,
    pub batches_per_tick: Option<usize>,
    /// Train on the first N training images only.
    pub limit: Option<usize>,
    pub seed: Option<u64>,
    /// `sgd`, `momentum` or `adam`, at its default rate and weight decay.
    pub optimizer: Option<String>,
    /// Random shifts of up to this many pixels (0: none).
    pub augment: Option<u8>,
    /// `mlp` (the default), a preset (`cnn`, `tfjs`, `lenet`, `cnn-bn`) or a layer string, as the
    /// `mnist` example's `--model`; a CNN trains with [`Recipe::cnn`]'s defaults. For the
    /// user's data the default is `train`'s ([`Recipe::for_data`]).
    pub model: Option<String>,
    /// `mnist` (the default: the engine for MNIST is built now) or `own` (the user's data,
    /// whose shape is not known yet).
    pub data: Option<String>,
}

impl Options {
    /// The model's layer string, if it is a CNN (None: the recipe's dense stack).
    fn layers(&self) -> Option<&str> {
        self.model.as_deref().and_then(soma::layers::model_layers)
    }

    /// `defaults` with the options' changes: the optimizer (at its default rate and decay, a
    /// CNN's rate when `cnn`, unless it is the defaults' own), shifts, epochs, batch, tick and
    /// seed.
    pub(crate) fn recipe(&self, defaults: Recipe, cnn: bool) -> Result<Recipe, JsError> {
        let optimizer = match &self.optimizer {
            Some(name) => Optimizer::from_name(name).map_err(js)?,
            None => defaults.optimizer,
        };
        let lr = if optimizer.name() == defaults.optimizer.name() {
            defaults.lr
        } else if cnn {
            default_cnn_lr(&optimizer)
        } else {
            default_lr(&optimizer)
        };
        let optimizer = if optimizer.name() == defaults.optimizer.name() {
            defaults.optimizer
        } else {
            optimizer.with_weight_decay(default_weight_decay(&optimizer))
        };
        Ok(Recipe {
            lr,
            optimizer,
            augment: self.augment.unwrap_or(defaults.augment),
            epochs: self.epochs.unwrap_or(defaults.epochs),
            batch_size: self.batch_size.unwrap_or(defaults.batch_size),
            batches_per_tick: self.batches_per_tick.unwrap_or(defaults.batches_per_tick),
            seed: self.seed.unwrap_or(defaults.seed),
            ..defaults
        })
    }

    /// The network of the model for inputs of `features` values and MNIST's classes: the
    /// recipe's dense stack, or the model's layers on 28×28 grey images.
    pub(crate) fn network(&self, recipe: &Recipe, features: usize) -> Result<Network, JsError> {
        let model = self.model.as_deref().unwrap_or("mlp");
        soma::layers::model_network(
            model,
            MNIST_IMAGE,
            MNIST_CLASSES,
            soma::Output::SoftmaxCrossEntropy,
            || recipe.network(features, MNIST_CLASSES),
        )
        .map_err(js)
    }
}

/// MNIST's images: one channel of 28×28.
const MNIST_IMAGE: Chw = Chw::new(1, 28, 28);

/// MNIST's shape, known before its files arrive: 28×28 pixels stored as bytes, 10 labels.
const MNIST_FEATURES: usize = 28 * 28;
pub(crate) const MNIST_CLASSES: usize = 10;

/// The run's options, where it trains and its engine, ready for the data
/// ([`crate::Trainer::create`]).
#[wasm_bindgen]
pub struct Setup {
    pub(crate) options: Options,
    pub(crate) recipe: Recipe,
    pub(crate) gpu: Option<Arc<GpuContext>>,
    /// Why the CPU trains although WebGPU was asked for or hoped for.
    pub(crate) fallback: Option<String>,
    /// MNIST's engine, made before its files arrive (`None` for the user's data).
    pub(crate) mnist: Option<MnistEngine>,
}

/// The network for MNIST's shape and its engine, with freshly initialised parameters.
pub(crate) struct MnistEngine {
    pub net: Network,
    pub engine: Engine,
    /// The step's pipelines the browser is compiling, on WebGPU.
    pub preparing: Option<Preparing>,
}

#[wasm_bindgen]
impl Setup {
    /// Reads `options` (`{}` for the defaults), opens WebGPU (or falls back to the CPU,
    /// saying why) and builds the engine; on WebGPU the browser starts compiling the training
    /// step's pipelines ([`crate::Trainer::create`] awaits them).
    pub async fn open(options: JsValue) -> Result<Setup, JsError> {
        let options: Options = from_js(options, "Trainer options")?;
        let cnn = options.layers().is_some();
        let defaults = if cnn {
            Recipe::cnn()
        } else {
            Recipe::default()
        };
        let recipe = options.recipe(defaults, cnn)?;
        let (gpu, fallback) = where_to_train(options.backend.as_deref()).await?;
        let mnist = match options.data.as_deref().unwrap_or("mnist") {
            "mnist" => {
                let net = options.network(&recipe, MNIST_FEATURES)?;
                let engine = engine(&gpu, &net, &recipe, options.step_path.as_deref())?;
                let preparing = match &engine {
                    Engine::Gpu(g) => Some(
                        g.start_prepare(recipe.batch_size, InputKind::U8, TargetKind::Labels)
                            .map_err(js)?,
                    ),
                    Engine::Cpu(_) => None,
                };
                Some(MnistEngine {
                    net,
                    engine,
                    preparing,
                })
            }
            "own" => None,
            other => return Err(js(Error::arg("data", "mnist or own", other))),
        };
        Ok(Setup {
            options,
            recipe,
            gpu,
            fallback,
            mnist,
        })
    }
}

/// WebGPU's context, or `None` and why the CPU trains.
async fn where_to_train(
    backend: Option<&str>,
) -> Result<(Option<Arc<GpuContext>>, Option<String>), JsError> {
    // The backend shares its context as an `Arc` (Send + Sync natively); a page has one
    // thread, where the context is neither.
    #[allow(clippy::arc_with_non_send_sync)]
    Ok(match backend.unwrap_or("auto") {
        "cpu" => (None, Some("the CPU was asked for".to_string())),
        "gpu" => (
            Some(Arc::new(Engine::gpu_context().await.map_err(js)?)),
            None,
        ),
        // As natively: a hardware GPU if there is one, else the CPU. A software adapter
        // (SwiftShader, Chrome's fallback) trained ~6× slower than the CPU backend
        // compiled to wasm on the same machine (BENCHMARKS.md, the browser).
        "auto" => match Engine::gpu_context().await {
            Ok(ctx) if ctx.is_software() => (
                None,
                Some(
                    "WebGPU's adapter is a software one, slower than the CPU backend \
                     (?backend=gpu trains on it anyway)"
                        .to_string(),
                ),
            ),
            Ok(ctx) => (Some(Arc::new(ctx)), None),
            Err(e) => (None, Some(e.to_string())),
        },
        other => return Err(js(Error::arg("backend", "auto, gpu or cpu", other))),
    })
}

/// The engine for `net` with the recipe's initial parameters, on `gpu` (on the step path
/// asked for, if any) or the CPU.
pub(crate) fn engine(
    gpu: &Option<Arc<GpuContext>>,
    net: &Network,
    recipe: &Recipe,
    step_path: Option<&str>,
) -> Result<Engine, JsError> {
    let params = Params::init(net, recipe.init, recipe.seed);
    let mut engine = Engine::new(gpu.clone(), net, params, recipe.optimizer).map_err(js)?;
    if let (Some(path), Engine::Gpu(g)) = (step_path, &mut engine) {
        g.use_path(path.parse::<StepPath>().map_err(js)?)
            .map_err(js)?;
    }
    Ok(engine)
}

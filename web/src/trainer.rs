//! The object the page drives: created from the four MNIST files' bytes, it trains one tick per
//! [`Trainer::step`] (the page renders between ticks), reads drawn digits, and saves and loads
//! checkpoints as bytes.

use std::sync::Arc;

use serde::Serialize;
use soma::checkpoint::Checkpoint;
use soma::data::{DatasetKind, idx};
use soma::gpu::GpuContext;
use soma::model::top_k;
use soma::train::{Event, Recipe, Run, default_lr};
use soma::{Dataset, Error, ModelInfo, Network, Stats, digit};
use wasm_bindgen::prelude::*;
use web_time::Instant;

use crate::engine::Engine;
use crate::setup::{MNIST_CLASSES, Setup, engine};

/// A tick's progress, as the page reads it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Progress {
    /// 1-based epoch of this tick.
    epoch: u64,
    epochs: u64,
    done: usize,
    total: usize,
    /// Of the batches whose stats came back with this tick; `None` when none did.
    loss: Option<f64>,
    accuracy: Option<f64>,
    lr: f32,
    samples_per_second: f64,
    /// The epoch this tick ended, evaluated on the test set.
    epoch_end: Option<EpochEnd>,
    finished: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EpochEnd {
    epoch: u64,
    train_loss: f64,
    train_accuracy: f64,
    test_loss: f64,
    test_accuracy: f64,
    seconds: f64,
    samples_per_second: f64,
    /// soma's device buffers alive after the epoch and its evaluation (`None` on the CPU):
    /// what `web/e2e/soak.mjs` checks stays flat over a long run.
    gpu_buffers: Option<GpuBuffers>,
}

/// soma's own count of its device buffers alive ([`GpuContext::buffers_alive`]). Numbers as
/// f64 (exact up to 2^53) so that JavaScript gets plain numbers, not BigInts.
#[derive(Serialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct GpuBuffers {
    buffers: f64,
    bytes: f64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Guess {
    label: usize,
    name: String,
    probability: f32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Prediction {
    /// The three most probable classes, most probable first.
    top: Vec<Guess>,
    /// The 28×28 image the network read (what the drawing became, MNIST-style).
    pixels: Vec<u8>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Info {
    backend: String,
    /// Why the CPU trains although WebGPU was asked for or hoped for.
    fallback: Option<String>,
    step_path: Option<String>,
    network: String,
    parameters: usize,
    optimizer: String,
    lr: f32,
    batch_size: usize,
    epochs: u64,
    epochs_done: u64,
    train_samples: usize,
    test_samples: usize,
    /// From `Trainer.create` being called (the data read, the WebGPU device open) to the first
    /// step handed to the backend, in milliseconds (the upload and the wait for the step's
    /// pipelines included); `None` before it. The page times the rest from the data's arrival.
    first_step_ms: Option<f64>,
}

/// MNIST read from the four files' bytes.
#[wasm_bindgen]
pub struct Mnist {
    train: Dataset,
    test: Dataset,
}

#[wasm_bindgen]
impl Mnist {
    /// Reads the four files (gzip or raw IDX): the page does it while [`Setup::open`]'s
    /// pipelines compile.
    pub fn read(
        train_images: Vec<u8>,
        train_labels: Vec<u8>,
        test_images: Vec<u8>,
        test_labels: Vec<u8>,
    ) -> Result<Mnist, JsError> {
        let read = |i: usize, images: &[u8], labels: &[u8]| {
            idx::load_bytes(FILES[i], images, FILES[i + 1], labels, MNIST_CLASSES).map_err(js)
        };
        Ok(Mnist {
            train: read(0, &train_images, &train_labels)?,
            test: read(2, &test_images, &test_labels)?,
        })
    }
}

/// Training and prediction in the page.
#[wasm_bindgen]
pub struct Trainer {
    gpu: Option<Arc<GpuContext>>,
    fallback: Option<String>,
    engine: Engine,
    recipe: Recipe,
    net: Network,
    model: ModelInfo,
    run: Run,
    train: Dataset,
    test: Dataset,
    created: Instant,
    first_step_ms: Option<f64>,
}

pub(crate) fn js(e: Error) -> JsError {
    JsError::new(&e.to_string())
}

fn to_js(value: &impl Serialize) -> Result<JsValue, JsError> {
    serde_wasm_bindgen::to_value(value).map_err(|e| JsError::new(&e.to_string()))
}

/// The names errors give the four files: the URLs the page fetches them from (the `serve`
/// example answers them with the gzip or raw file it found).
const FILES: [&str; 4] = [
    "data/train-images-idx3-ubyte",
    "data/train-labels-idx1-ubyte",
    "data/t10k-images-idx3-ubyte",
    "data/t10k-labels-idx1-ubyte",
];

#[wasm_bindgen]
impl Trainer {
    /// Prepares the run on `data` with what `setup` opened ([`Setup::open`], which the page
    /// starts before the files arrive).
    pub async fn create(setup: Setup, data: Mnist) -> Result<Trainer, JsError> {
        let created = Instant::now();
        let Mnist {
            mut train,
            mut test,
        } = data;
        let Setup {
            options,
            recipe,
            gpu,
            fallback,
            net: prepared_net,
            engine: prepared,
            preparing,
        } = setup;
        if let Some(n) = options.limit {
            train = train.head(n);
        }
        let normalize = recipe.normalize(&train);
        train.normalize = normalize;
        test.normalize = normalize;
        let model = ModelInfo::for_dataset(DatasetKind::Mnist, normalize);
        let net = options.network(&recipe, train.features())?;
        // Files of another shape than MNIST's get an engine of their own.
        let mut engine = if net == prepared_net {
            prepared
        } else {
            engine(&gpu, &net, &recipe, options.step_path.as_deref())?
        };
        let run = Run::new(engine.backend(), &train, &recipe.train_config(), 0).map_err(js)?;
        let mut trainer = Trainer {
            gpu,
            fallback,
            engine,
            recipe,
            net,
            model,
            run,
            train,
            test,
            created,
            first_step_ms: None,
        };
        trainer.start(0).await.map_err(js)?;
        // The data is on the device; the first step needs the pipelines compiled meanwhile.
        if let (Some(preparing), Some(ctx)) = (preparing, &trainer.gpu) {
            preparing.finish(ctx).await.map_err(js)?;
        }
        Ok(trainer)
    }

    /// Hands the training set to the backend and (re)starts the run after `epochs_done`.
    async fn start(&mut self, epochs_done: u64) -> soma::Result<()> {
        let mut cfg = self.recipe.train_config();
        // A loaded checkpoint may bring another optimizer: train it at that one's rate.
        let optimizer = self.engine.backend().optimizer();
        if optimizer.name() != self.recipe.optimizer.name() {
            cfg.lr = default_lr(&optimizer);
        }
        self.run = Run::new(self.engine.backend(), &self.train, &cfg, epochs_done)?;
        self.engine.backend().set_train_data(&self.train)?;
        self.engine.take_stats().await?;
        Ok(())
    }

    /// What trains, where, and how: `{backend, fallback, stepPath, network, …}`.
    pub fn info(&mut self) -> Result<JsValue, JsError> {
        let step_path = match &self.engine {
            Engine::Gpu(g) => Some(g.step_path().to_string()),
            Engine::Cpu(_) => None,
        };
        let cfg = self.run.config().clone();
        let backend = self.engine.backend();
        to_js(&Info {
            backend: backend.details(),
            fallback: self.fallback.clone(),
            step_path,
            network: self.net.to_string(),
            parameters: self.net.parameter_count(),
            optimizer: backend.optimizer().to_string(),
            lr: cfg.lr,
            batch_size: cfg.batch_size,
            epochs: cfg.epochs,
            epochs_done: self.run.epochs_done(),
            train_samples: self.train.len(),
            test_samples: self.test.len(),
            first_step_ms: self.first_step_ms,
        })
    }

    /// soma's device buffers alive now, `{buffers, bytes}`, or `undefined` when training on the
    /// CPU: two atomic loads, cheap enough to read every epoch (each epoch's end also carries
    /// it, as `epochEnd.gpuBuffers`).
    #[wasm_bindgen(js_name = gpuBuffers)]
    pub fn gpu_buffers_js(&self) -> Result<JsValue, JsError> {
        to_js(&self.gpu_buffers())
    }

    fn gpu_buffers(&self) -> Option<GpuBuffers> {
        // The engine's context, not `self.gpu`: a page that fell back to the CPU may still
        // hold an open device.
        match &self.engine {
            Engine::Gpu(g) => {
                let live = g.context().buffers_alive();
                Some(GpuBuffers {
                    buffers: live.buffers as f64,
                    bytes: live.bytes as f64,
                })
            }
            _ => None,
        }
    }

    /// Whether every epoch is done (then [`Trainer::step`] does nothing).
    pub fn finished(&self) -> bool {
        self.run.is_finished()
    }

    /// Trains one tick (`batchesPerTick` batches) and returns its progress; a tick that ends
    /// an epoch also evaluates the test set (`epochEnd`).
    pub async fn step(&mut self) -> Result<JsValue, JsError> {
        let Some(tick) = self.run.next_tick() else {
            return to_js(&self.idle_progress());
        };
        let batch = self.run.config().batch_size;
        let stats = self
            .engine
            .train(self.run.samples(&tick), batch, &tick)
            .await
            .map_err(js)?;
        self.first_step_ms
            .get_or_insert_with(|| self.created.elapsed().as_secs_f64() * 1e3);
        let Event::Progress {
            epoch,
            done,
            total,
            stats,
            lr,
            samples_per_second,
        } = self.run.record(&tick, stats).map_err(js)?
        else {
            unreachable!("Run::record reports progress");
        };
        let epoch_end = if tick.last {
            let test = self.engine.evaluate(&self.test).await.map_err(js)?;
            let e = self.run.finish_epoch(Some(test));
            Some(EpochEnd {
                epoch: e.epoch,
                train_loss: e.train.mean_loss(),
                train_accuracy: e.train.accuracy(),
                test_loss: test.mean_loss(),
                test_accuracy: test.accuracy(),
                seconds: e.seconds,
                samples_per_second: self.train.len() as f64 / e.seconds,
                gpu_buffers: self.gpu_buffers(),
            })
        } else {
            None
        };
        let (loss, accuracy) = means(&stats);
        to_js(&Progress {
            epoch,
            epochs: self.run.config().epochs,
            done,
            total,
            loss,
            accuracy,
            lr,
            samples_per_second,
            epoch_end,
            finished: self.run.is_finished(),
        })
    }

    fn idle_progress(&self) -> Progress {
        Progress {
            epoch: self.run.epochs_done(),
            epochs: self.run.config().epochs,
            done: self.train.len(),
            total: self.train.len(),
            loss: None,
            accuracy: None,
            lr: 0.0,
            samples_per_second: 0.0,
            epoch_end: None,
            finished: true,
        }
    }

    /// Reads the digit in an RGBA picture (a canvas's `getImageData`): `{top: [{label, name,
    /// probability}] × 3, pixels}` where `pixels` is the 28×28 image the network saw. A
    /// picture with no ink is an error.
    pub async fn predict(
        &mut self,
        rgba: Vec<u8>,
        width: usize,
        height: usize,
    ) -> Result<JsValue, JsError> {
        let grey = digit::grey_from_rgba(&rgba).map_err(js)?;
        let pixels = digit::mnist_like(&grey, width, height).map_err(js)?;
        let inputs = self.model.inputs(&pixels, self.net.inputs()).map_err(js)?;
        let probs = self.engine.predict(inputs.view()).await.map_err(js)?;
        let row: Vec<f32> = probs.row(0).to_vec();
        let top = top_k(&row, 3)
            .into_iter()
            .map(|(label, probability)| Guess {
                label,
                name: self.model.class_name(label),
                probability,
            })
            .collect();
        to_js(&Prediction { top, pixels })
    }

    /// The trained network as checkpoint bytes (format 2, with the normalisation), the file
    /// the native `predict` and `mnist --load` read.
    pub async fn checkpoint(&mut self) -> Result<Vec<u8>, JsError> {
        let ckpt = Checkpoint {
            network: self.net.clone(),
            params: self.engine.params().await.map_err(js)?,
            optimizer: self.engine.backend().optimizer(),
            state: self.engine.optim_state().await.map_err(js)?,
            epoch: self.run.epochs_done(),
            model: Some(self.model.clone()),
        };
        ckpt.to_bytes().map_err(js)
    }

    /// Replaces the network with a checkpoint's (saved natively or by this page): its
    /// parameters, optimizer state and normalisation; training resumes after its epochs, if
    /// the run has any left. `name` is what errors name.
    #[wasm_bindgen(js_name = loadCheckpoint)]
    pub async fn load_checkpoint(&mut self, name: String, bytes: Vec<u8>) -> Result<(), JsError> {
        let ckpt = Checkpoint::from_bytes(&name, &bytes).map_err(js)?;
        let model = ckpt.model.clone().unwrap_or_else(|| self.model.clone());
        if ckpt.network.inputs() != digit::SIDE * digit::SIDE
            || model.image != Some(soma::shape::Chw::new(1, 28, 28))
        {
            return Err(js(Error::Checkpoint {
                path: name.into(),
                reason: format!(
                    "the page reads 28×28 digits; this network takes {} inputs",
                    ckpt.network.inputs()
                ),
            }));
        }
        model.check(&ckpt.network).map_err(js)?;
        let mut engine = Engine::new(self.gpu.clone(), &ckpt.network, ckpt.params, ckpt.optimizer)
            .map_err(js)?;
        engine.backend().set_optim_state(&ckpt.state).map_err(js)?;
        self.engine = engine;
        self.net = ckpt.network;
        self.train.normalize = model.normalize;
        self.test.normalize = model.normalize;
        self.model = model;
        self.start(ckpt.epoch).await.map_err(js)
    }
}

/// Mean loss and accuracy, or `None` for stats of no samples.
fn means(stats: &Stats) -> (Option<f64>, Option<f64>) {
    if stats.samples == 0 {
        (None, None)
    } else {
        (Some(stats.mean_loss()), Some(stats.accuracy()))
    }
}

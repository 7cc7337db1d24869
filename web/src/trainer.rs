//! The object the page drives: created from the four MNIST files' bytes or from the user's own
//! data ([`UserData`]), it trains one tick per [`Trainer::step`] (the page renders between
//! ticks), reads drawn digits, dropped pictures and table rows, gives the test set's confusion
//! matrix, and saves and loads checkpoints as bytes.

use std::sync::Arc;

use serde::Serialize;
use soma::checkpoint::Checkpoint;
use soma::data::csv;
use soma::data::intake;
use soma::data::{DatasetKind, idx};
use soma::gpu::{GpuContext, Preparing};
use soma::model::top_k;
use soma::ops::gather::InputKind;
use soma::ops::gather::gather_inputs;
use soma::ops::loss::TargetKind;
use soma::shape::Chw;
use soma::train::{Event, Recipe, Run, default_lr};
use soma::{Dataset, Error, ModelInfo, Network, Output, Stats, Targets, digit};
use wasm_bindgen::prelude::*;
use web_time::Instant;

use crate::data::UserData;
use crate::engine::Engine;
use crate::setup::{MNIST_CLASSES, MnistEngine, Setup, engine};

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
    /// The image the network read: a drawing's 28×28 grey bytes (MNIST-style), a picture
    /// file's RGBA at the network's input size.
    pixels: Vec<u8>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RowGuess {
    line: u64,
    top: Vec<Guess>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Confusion {
    classes: Vec<String>,
    matrix: Vec<Vec<u64>>,
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
    /// Class names, in output order.
    classes: Vec<String>,
    /// `[channels, height, width]` of the network's input pictures (`null`: vectors).
    image: Option<[usize; 3]>,
    /// Whether drawn digits can be read: the network takes 28×28 grey pictures.
    digits: bool,
    /// A loaded checkpoint that does not fit the page's data: it predicts only.
    predict_only: bool,
    /// The layer table (`soma::layers::summary`).
    summary: String,
    /// The memory training needs on the backend (parameters, optimizer state, workspaces,
    /// the data), in bytes, and the same in words with its parts.
    memory_bytes: f64,
    memory: String,
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
    /// How the page's data was prepared (its maps and classes), which a loaded checkpoint must
    /// share to train on it.
    data_model: ModelInfo,
    /// A loaded checkpoint that does not fit the page's data, with its epochs: it predicts,
    /// and does not train.
    predict_only: Option<u64>,
}

pub(crate) fn js(e: Error) -> JsError {
    JsError::new(&e.to_string())
}

/// Options the page passes as an object (`undefined` or `null`: the defaults); `what` names
/// them in the error.
pub(crate) fn from_js<T: serde::de::DeserializeOwned + Default>(
    options: JsValue,
    what: &str,
) -> Result<T, JsError> {
    if options.is_undefined() || options.is_null() {
        return Ok(T::default());
    }
    serde_wasm_bindgen::from_value(options).map_err(|e| JsError::new(&format!("{what}: {e}")))
}

/// The bytes a dataset's inputs take in memory.
pub(crate) fn input_bytes(d: &Dataset) -> usize {
    match d.inputs() {
        soma::Inputs::U8(v) => v.len(),
        soma::Inputs::F32(v) => 4 * v.len(),
    }
}

/// One `C×H×W` picture (planar bytes) as RGBA: grey repeated, a third channel and beyond
/// dropped, a second channel standing in for blue.
pub(crate) fn rgba(sample: &[u8], image: Chw) -> impl Iterator<Item = u8> + '_ {
    let plane = image.h * image.w;
    (0..plane).flat_map(move |p| {
        let channel = |c: usize| sample[c.min(image.c - 1) * plane + p];
        [channel(0), channel(1), channel(2), 255]
    })
}

pub(crate) fn to_js(value: &impl Serialize) -> Result<JsValue, JsError> {
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
            mnist,
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
        let (engine, preparing) = match mnist {
            Some(MnistEngine {
                net: prepared_net,
                engine,
                preparing,
            }) if prepared_net == net => (engine, preparing),
            _ => (
                engine(&gpu, &net, &recipe, options.step_path.as_deref())?,
                None,
            ),
        };
        let parts = Parts {
            gpu,
            fallback,
            engine,
            recipe,
            net,
            model,
            train,
            test,
        };
        Trainer::begin(parts, created, preparing).await
    }

    /// Prepares the run on the user's data with what `setup` opened (`{data: "own"}`): the
    /// model and recipe native `train` would choose for it ([`Recipe::for_data`], changed by
    /// the page's options), a softmax output per class.
    #[wasm_bindgen(js_name = createFrom)]
    pub async fn create_from(setup: Setup, data: UserData) -> Result<Trainer, JsError> {
        let created = Instant::now();
        let Setup {
            options,
            gpu,
            fallback,
            ..
        } = setup;
        let prepared = data.prepared;
        let image = prepared.train.image;
        let (name, defaults) = Recipe::for_data(image, options.model.as_deref());
        let cnn = soma::layers::model_layers(&name).is_some();
        let mut recipe = options.recipe(defaults, cnn)?;
        if image.is_none() {
            recipe.augment = 0;
        }
        let classes = prepared.model.classes.len();
        let net = recipe
            .network_for(
                &name,
                image,
                prepared.train.features(),
                classes,
                Output::SoftmaxCrossEntropy,
            )
            .map_err(js)?;
        let mut train = prepared.train;
        if let Some(n) = options.limit {
            train = train.head(n);
        }
        let engine = engine(&gpu, &net, &recipe, options.step_path.as_deref())?;
        let parts = Parts {
            gpu,
            fallback,
            engine,
            recipe,
            net,
            model: prepared.model,
            train,
            test: prepared.test,
        };
        Trainer::begin(parts, created, None).await
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
        let memory =
            soma::memory::Footprint::training(&self.net, &backend.optimizer(), cfg.batch_size, 1);
        let data = (input_bytes(&self.train) + input_bytes(&self.test)) as u128;
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
            classes: self.model.classes.clone(),
            image: self.model.image.map(|c| [c.c, c.h, c.w]),
            digits: self.reads_digits(),
            predict_only: self.predict_only.is_some(),
            summary: soma::layers::summary(&self.net),
            memory_bytes: (memory.total() + data) as f64,
            memory: format!(
                "{}: {} for training and {} of data",
                soma::memory::bytes(memory.total() + data),
                memory.describe(),
                soma::memory::bytes(data)
            ),
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
        self.predict_only.is_some() || self.run.is_finished()
    }

    /// Trains one tick (`batchesPerTick` batches) and returns its progress; a tick that ends
    /// an epoch also evaluates the test set (`epochEnd`).
    pub async fn step(&mut self) -> Result<JsValue, JsError> {
        let tick = if self.predict_only.is_some() {
            None
        } else {
            self.run.next_tick()
        };
        let Some(tick) = tick else {
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
        if !self.reads_digits() {
            return Err(JsError::new(
                "this network does not read drawn digits (it takes no 28×28 grey pictures)",
            ));
        }
        let grey = digit::grey_from_rgba(&rgba).map_err(js)?;
        let pixels = digit::mnist_like(&grey, width, height).map_err(js)?;
        let inputs = self.model.inputs(&pixels, self.net.inputs()).map_err(js)?;
        let top = self.top3(inputs.view()).await?.remove(0);
        to_js(&Prediction { top, pixels })
    }

    /// Reads a picture file (`name`'s `bytes`) as the network's training pictures were read:
    /// decoded, resized and made grey or RGB as they were. Returns `{top, pixels}`, `pixels`
    /// the RGBA of what the network saw (its input's height × width).
    #[wasm_bindgen(js_name = predictPicture)]
    pub async fn predict_picture(
        &mut self,
        name: String,
        bytes: Vec<u8>,
    ) -> Result<JsValue, JsError> {
        let pixels = intake::picture_sample(&self.model, &name, &bytes).map_err(js)?;
        let inputs = self.model.inputs(&pixels, self.net.inputs()).map_err(js)?;
        let top = self.top3(inputs.view()).await?.remove(0);
        let image = self
            .model
            .image
            .expect("picture_sample checked the image shape");
        let pixels = rgba(&pixels, image).collect();
        to_js(&Prediction { top, pixels })
    }

    /// Reads each row of a CSV file (`name`'s `bytes`) for a table model: its columns found by
    /// name as native `predict` finds them (a label column, if present, is ignored). Returns
    /// `[{line, top}]`.
    #[wasm_bindgen(js_name = predictRows)]
    pub async fn predict_rows(&mut self, name: String, bytes: Vec<u8>) -> Result<JsValue, JsError> {
        let Some((schema, label)) = intake::table_schema(&self.model) else {
            return Err(JsError::new(&format!(
                "{name}: this network reads {}, not table rows",
                if self.model.image.is_some() {
                    "pictures"
                } else {
                    "arrays"
                }
            )));
        };
        let path = std::path::Path::new(&name);
        let (values, lines) =
            csv::parse_rows_with(path, &bytes, &schema, Some(label), false).map_err(js)?;
        let inputs = self
            .model
            .inputs_f32(&values, self.net.inputs())
            .map_err(js)?;
        let tops = self.top3(inputs.view()).await?;
        let rows: Vec<RowGuess> = lines
            .into_iter()
            .zip(tops)
            .map(|(line, top)| RowGuess { line, top })
            .collect();
        to_js(&rows)
    }

    /// The test set's confusion matrix, `{classes, matrix}` with `matrix[label][prediction]`
    /// counts, from the network as it is now.
    pub async fn confusion(&mut self) -> Result<JsValue, JsError> {
        let Targets::Labels { labels, classes } = self.test.targets().clone() else {
            return Err(JsError::new("the test set has no classes"));
        };
        let mut matrix = vec![vec![0u64; classes]; classes];
        let f = self.test.features();
        for start in (0..self.test.len()).step_by(CONFUSION_CHUNK) {
            let end = (start + CONFUSION_CHUNK).min(self.test.len());
            let order: Vec<u32> = (start as u32..end as u32).collect();
            let mut x = ndarray::Array2::zeros((order.len(), f));
            gather_inputs(&self.test, &order, x.view_mut());
            let probs = self.engine.predict(x.view()).await.map_err(js)?;
            for (i, row) in probs.rows().into_iter().enumerate() {
                let row: Vec<f32> = row.to_vec();
                matrix[labels[start + i] as usize][top_k(&row, 1)[0].0] += 1;
            }
        }
        to_js(&Confusion {
            classes: (0..classes).map(|c| self.model.class_name(c)).collect(),
            matrix,
        })
    }

    /// The trained network as checkpoint bytes (format 2, with the normalisation), the file
    /// the native `predict` and `mnist --load` read.
    pub async fn checkpoint(&mut self) -> Result<Vec<u8>, JsError> {
        let ckpt = Checkpoint {
            network: self.net.clone(),
            params: self.engine.params().await.map_err(js)?,
            optimizer: self.engine.backend().optimizer(),
            state: self.engine.optim_state().await.map_err(js)?,
            epoch: self.predict_only.unwrap_or_else(|| self.run.epochs_done()),
            model: Some(self.model.clone()),
        };
        ckpt.to_bytes().map_err(js)
    }

    /// Replaces the network with a checkpoint's (saved natively or by this page): its
    /// parameters, optimizer state, maps and classes. If it fits the page's data, training
    /// resumes after its epochs (if the run has any left); otherwise it only predicts
    /// (`info().predictOnly`). `name` is what errors name.
    #[wasm_bindgen(js_name = loadCheckpoint)]
    pub async fn load_checkpoint(&mut self, name: String, bytes: Vec<u8>) -> Result<(), JsError> {
        let ckpt = Checkpoint::from_bytes(&name, &bytes).map_err(js)?;
        let model = ckpt.model.clone().unwrap_or_else(|| self.model.clone());
        model.check(&ckpt.network).map_err(js)?;
        // Training goes on when the network fits the data the page holds: the same inputs
        // and classes, and (tables and arrays, whose values are stored mapped) the same maps.
        let resumes = ckpt.network.inputs() == self.train.features()
            && ckpt.network.outputs() == self.data_model.classes.len()
            && model.feature_maps == self.data_model.feature_maps;
        let mut engine = Engine::new(self.gpu.clone(), &ckpt.network, ckpt.params, ckpt.optimizer)
            .map_err(js)?;
        engine.backend().set_optim_state(&ckpt.state).map_err(js)?;
        self.engine = engine;
        self.net = ckpt.network;
        self.model = model;
        if !resumes {
            // Another model: it answers pictures or rows; the page's data stays for the next
            // run.
            self.predict_only = Some(ckpt.epoch);
            return Ok(());
        }
        self.predict_only = None;
        for d in [&mut self.train, &mut self.test] {
            d.normalize = self.model.normalize;
            if d.is_image() {
                d.set_channel_maps(self.model.channel_maps.clone())
                    .map_err(js)?;
            }
        }
        self.start(ckpt.epoch).await.map_err(js)
    }
}

/// What a run is made of, whichever data it trains on.
struct Parts {
    gpu: Option<Arc<GpuContext>>,
    fallback: Option<String>,
    engine: Engine,
    recipe: Recipe,
    net: Network,
    model: ModelInfo,
    train: Dataset,
    test: Dataset,
}

/// MNIST's pictures, the shape drawn digits are read in.
const DIGIT_IMAGE: Chw = Chw::new(1, digit::SIDE, digit::SIDE);

/// Test samples per prediction call of the confusion matrix (bounding the inputs' memory).
const CONFUSION_CHUNK: usize = 2048;

impl Trainer {
    /// Uploads the data, starts the run and, on WebGPU, has the step's pipelines compiled
    /// (or awaits those `preparing` started).
    async fn begin(
        parts: Parts,
        created: Instant,
        preparing: Option<Preparing>,
    ) -> Result<Trainer, JsError> {
        let Parts {
            gpu,
            fallback,
            mut engine,
            recipe,
            net,
            model,
            train,
            test,
        } = parts;
        let run = Run::new(engine.backend(), &train, &recipe.train_config(), 0).map_err(js)?;
        let preparing = match (preparing, &engine) {
            (Some(p), _) => Some(p),
            (None, Engine::Gpu(g)) => Some(
                g.start_prepare(
                    recipe.batch_size,
                    match train.inputs() {
                        soma::Inputs::U8(_) => InputKind::U8,
                        soma::Inputs::F32(_) => InputKind::F32,
                    },
                    TargetKind::Labels,
                )
                .map_err(js)?,
            ),
            (None, Engine::Cpu(_)) => None,
        };
        let mut trainer = Trainer {
            gpu,
            fallback,
            engine,
            recipe,
            net,
            data_model: model.clone(),
            model,
            run,
            train,
            test,
            created,
            first_step_ms: None,
            predict_only: None,
        };
        trainer.start(0).await.map_err(js)?;
        // The data is on the device; the first step needs the pipelines compiled meanwhile.
        if let (Some(preparing), Some(ctx)) = (preparing, &trainer.gpu) {
            preparing.finish(ctx).await.map_err(js)?;
        }
        Ok(trainer)
    }

    /// Whether drawn digits can be read: the network takes 28×28 grey pictures.
    fn reads_digits(&self) -> bool {
        self.model.image == Some(DIGIT_IMAGE)
    }

    /// The top three classes of each row of `inputs`, most probable first.
    async fn top3(
        &mut self,
        inputs: ndarray::ArrayView2<'_, f32>,
    ) -> Result<Vec<Vec<Guess>>, JsError> {
        let probs = self.engine.predict(inputs).await.map_err(js)?;
        Ok(probs
            .rows()
            .into_iter()
            .map(|row| {
                let row: Vec<f32> = row.to_vec();
                top_k(&row, 3)
                    .into_iter()
                    .map(|(label, probability)| Guess {
                        label,
                        name: self.model.class_name(label),
                        probability,
                    })
                    .collect()
            })
            .collect())
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

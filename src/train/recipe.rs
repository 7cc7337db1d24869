//! The settings of the showcase run, 784-64-64-10 on MNIST, in one place: the `mnist`
//! example's defaults and the browser page's run are both this.

use super::{Schedule, TrainConfig};
use crate::data::{Dataset, Inputs, Normalize};
use crate::error::{Error, Result};
use crate::layers;
use crate::net::{Activation, Init, Network, Output};
use crate::optim::Optimizer;
use crate::shape::Chw;

/// What a run of the showcase trains and how.
#[derive(Clone, Debug, PartialEq)]
pub struct Recipe {
    pub hidden: Vec<usize>,
    pub activation: Activation,
    pub init: Init,
    /// With its weight decay.
    pub optimizer: Optimizer,
    pub lr: f32,
    pub schedule: Schedule,
    pub epochs: u64,
    pub batch_size: usize,
    /// Random shifts of up to this many pixels (see [`TrainConfig::augment`]).
    pub augment: u8,
    /// Seeds the initial parameters and every epoch's order.
    pub seed: u64,
    /// Zero mean and unit variance over the training set; otherwise x / 255.
    pub standardize: bool,
    pub batches_per_tick: usize,
}

impl Default for Recipe {
    /// 784-64-64-10 with sigmoid hidden layers, momentum 0.9 at lr 0.1 with weight decay 1e-4
    /// on a cosine schedule, batch 64, 10 epochs, ±1-pixel shifts, standardised inputs (the
    /// README's results say what it reaches and why each piece is there).
    fn default() -> Self {
        let optimizer = Optimizer::momentum();
        Recipe {
            hidden: vec![64, 64],
            activation: Activation::Sigmoid,
            init: Init::Uniform,
            lr: default_lr(&optimizer),
            optimizer: optimizer.with_weight_decay(default_weight_decay(&optimizer)),
            schedule: Schedule::Cosine { floor: 0.0 },
            epochs: 10,
            batch_size: 64,
            augment: 1,
            seed: 0,
            standardize: true,
            batches_per_tick: 50,
        }
    }
}

/// The learning rate each optimizer trains a convolutional network with by default: lower
/// than a dense stack's, since a filter's gradient sums over every pixel it slides across
/// (momentum at the dense 0.1 fell from 95% to 93% over the epochs on the `cnn` preset; Adam
/// at 0.001 reached 99.33%).
pub fn default_cnn_lr(optimizer: &Optimizer) -> f32 {
    match optimizer {
        Optimizer::Adam { .. } => 0.001,
        Optimizer::Sgd | Optimizer::Momentum { .. } => 0.01,
    }
}

/// The learning rate each optimizer trains the showcase network well at.
pub fn default_lr(optimizer: &Optimizer) -> f32 {
    match optimizer {
        Optimizer::Adam { .. } => 0.002,
        Optimizer::Sgd | Optimizer::Momentum { .. } => 0.1,
    }
}

/// Momentum trains with a little L2 decay; the others without.
pub fn default_weight_decay(optimizer: &Optimizer) -> f32 {
    match optimizer {
        Optimizer::Momentum { .. } => 1e-4,
        Optimizer::Sgd | Optimizer::Adam { .. } => 0.0,
    }
}

impl Recipe {
    /// The recipe for a convolutional network (the `mnist` example's default when `--model`
    /// is one): [`Recipe::default`]'s schedule, batch, epochs and scaling, with Adam at
    /// [`default_cnn_lr`], no weight decay, and shifts of up to two pixels (the `cnn` preset,
    /// seed 0: 99.39% after 10 epochs, against 99.32% with one-pixel shifts). The dense fields
    /// are unused.
    pub fn cnn() -> Self {
        let optimizer = Optimizer::adam();
        Recipe {
            lr: default_cnn_lr(&optimizer),
            optimizer: optimizer.with_weight_decay(default_weight_decay(&optimizer)),
            augment: 2,
            ..Recipe::default()
        }
    }

    /// The recipe for tables and other vectors, scikit-learn's `MLPClassifier` and
    /// `MLPRegressor` defaults: one hidden layer of 100 ReLUs (Glorot-uniform init), Adam at a
    /// constant 0.001, batches of 200, 200 epochs, no augmentation (scikit-learn stops earlier
    /// when its training loss stalls; soma runs them all). Against the He init, cosine schedule
    /// and batch 32 of the image recipes, it matched scikit-learn's test scores on its bundled
    /// tables and Friedman's function, where those had fallen short on the regressions
    /// (BENCHMARKS.md).
    pub fn tabular() -> Self {
        Recipe {
            hidden: vec![100],
            activation: Activation::Relu,
            init: Init::Xavier,
            optimizer: Optimizer::adam(),
            lr: 0.001,
            schedule: Schedule::Constant,
            epochs: 200,
            batch_size: 200,
            augment: 0,
            ..Recipe::default()
        }
    }

    /// What trains on a user's data by default (the `train` example, the page): the model
    /// name (`cnn` for images, whose layer string fits any C×H×W whose sides divide by 4;
    /// `mlp` for vectors) unless `model` names one, and the recipe's defaults for it (a
    /// CNN's, the showcase's for a dense stack on images, the tabular one for vectors).
    pub fn for_data(image: Option<Chw>, model: Option<&str>) -> (String, Recipe) {
        let name = model
            .unwrap_or(if image.is_some() { "cnn" } else { "mlp" })
            .to_string();
        let recipe = match (layers::model_layers(&name).is_some(), image) {
            (true, _) => Recipe::cnn(),
            (false, Some(_)) => Recipe::default(),
            (false, None) => Recipe::tabular(),
        };
        (name, recipe)
    }

    /// The network `model` names (a preset, a layer string, or `mlp`: this recipe's dense
    /// stack) for samples of `image`'s shape (`None`: vectors of `features` values) and
    /// `outputs` outputs of kind `output`. A convolutional model on vectors is an error.
    pub fn network_for(
        &self,
        model: &str,
        image: Option<Chw>,
        features: usize,
        outputs: usize,
        output: Output,
    ) -> Result<Network> {
        let dense = || self.network_with(features, outputs, output);
        match image {
            Some(chw) => layers::model_network(model, chw, outputs, output, dense),
            None if layers::model_layers(model).is_some() => Err(Error::Network(format!(
                "--model {model} is convolutional, but the data are vectors of {features} \
                 values (not pictures): use mlp or a layer string of dense layers"
            ))),
            None => layers::model_network(model, Chw::new(features, 1, 1), outputs, output, dense),
        }
    }

    /// `features` inputs, the hidden layers, `classes` softmax outputs.
    pub fn network(&self, features: usize, classes: usize) -> Result<Network> {
        self.network_with(features, classes, Output::SoftmaxCrossEntropy)
    }

    /// `features` inputs, the hidden layers, `outputs` outputs of kind `output`.
    pub fn network_with(&self, features: usize, outputs: usize, output: Output) -> Result<Network> {
        let mut sizes = vec![features];
        sizes.extend(&self.hidden);
        sizes.push(outputs);
        Network::new(&sizes, self.activation, output)
    }

    /// The normalisation the run trains with, from the training set (pixels only; other
    /// inputs are used as they are).
    pub fn normalize(&self, train: &Dataset) -> Normalize {
        match (self.standardize, train.inputs()) {
            (true, Inputs::U8(pixels)) => Normalize::standardize(pixels),
            _ => Normalize::UNIT,
        }
    }

    pub fn train_config(&self) -> TrainConfig {
        TrainConfig {
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            schedule: self.schedule,
            seed: self.seed,
            batches_per_tick: self.batches_per_tick,
            augment: self.augment,
        }
    }
}

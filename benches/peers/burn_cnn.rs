//! TensorFlow.js's tutorial CNN on MNIST in Burn (conv 8 5×5 valid relu → max-pool 2 →
//! conv 16 5×5 valid relu → max-pool 2 → dense 10), plain SGD, Burn's default initialisation,
//! the same hand-written loop and timing as the MLP peer (main.rs): a peer for soma's `tfjs`
//! preset. Batches gathered on the host and uploaded (lavapipe's 128 MiB binding limit).

#[path = "../common.rs"]
#[allow(dead_code)]
mod common;

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, DeviceKind, Int, Tensor, TensorData};
use serde_json::json;

const CARGO_LOCK: &str = include_str!("../../Cargo.lock");

#[derive(Module, Debug)]
struct Cnn {
    c1: Conv2d,
    c2: Conv2d,
    pool: MaxPool2d,
    fc: Linear,
}

impl Cnn {
    fn new(device: &Device) -> Cnn {
        Cnn {
            c1: Conv2dConfig::new([1, 8], [5, 5]).init(device),
            c2: Conv2dConfig::new([8, 16], [5, 5]).init(device),
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            fc: LinearConfig::new(256, 10).init(device),
        }
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let b = x.dims()[0];
        let x = x.reshape([b, 1, 28, 28]);
        let h = self.pool.forward(relu(self.c1.forward(x)));
        let h = self.pool.forward(relu(self.c2.forward(h)));
        self.fc.forward(h.reshape([b, 256]))
    }
}

fn main() {
    let args = common::parse_args("burn-cnn", &["ndarray", "wgpu"], "wgpu");
    let raw = match args.backend.as_str() {
        #[allow(deprecated)]
        "ndarray" => Device::ndarray(),
        _ => Device::wgpu(DeviceKind::DefaultDevice),
    };
    let device = raw.clone().autodiff();
    let data = common::load_mnist(&args.data, args.limit);
    let (n, b, lr) = (data.n_train, args.batch_size, args.lr);
    let batch = |idx: &[u32]| -> (Tensor<2>, Tensor<1, Int>) {
        let (xb, yb) = common::gather_rows(&data.x_train, &data.y_train, 784, idx);
        let y: Vec<i32> = yb.iter().map(|&c| c as i32).collect();
        (
            Tensor::from_data(TensorData::new(xb, [idx.len(), 784]), &device),
            Tensor::from_data(TensorData::new(y, [idx.len()]), &device),
        )
    };
    let ce = CrossEntropyLossConfig::new().init(&device);
    let sgd = SgdConfig::new();
    let mut model = Cnn::new(&device);
    let mut optim = sgd.init();
    let step = |model: Cnn,
                optim: &mut burn::optim::ModuleOptimizer,
                (xb, yb): (Tensor<2>, Tensor<1, Int>)| {
        let loss = ce.forward(model.forward(xb), yb);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        (optim.step(lr, model, grads), loss)
    };
    // Warm-up: one step per batch shape (fusion and autotune compile here).
    let t_warm = common::now();
    for bs in common::batch_shapes(n, b) {
        let idx: Vec<u32> = (0..bs as u32).collect();
        let (m, loss) = step(model, &mut optim, batch(&idx));
        let _: f32 = loss.into_scalar();
        model = m;
    }
    device.sync().expect("sync");
    model = Cnn::new(&device);
    optim = sgd.init();
    common::log(&format!("[burn-cnn-{}] warm-up {:.2}s", args.backend, t_warm.elapsed().as_secs_f64()));

    let mut shuffler = common::Shuffler::new(args.seed, n);
    let mut epoch_seconds = Vec::new();
    for epoch in 0..args.epochs {
        let t0 = common::now();
        let perm = shuffler.epoch();
        let mut last = None;
        for i in (0..n).step_by(b) {
            let len = b.min(n - i);
            let (m, loss) = step(model, &mut optim, batch(&perm[i..i + len]));
            model = m;
            last = Some(loss);
        }
        let _: f32 = last.expect("a batch").into_scalar();
        device.sync().expect("sync");
        let dt = t0.elapsed().as_secs_f64();
        epoch_seconds.push(dt);
        common::log(&format!(
            "[burn-cnn-{}] epoch {}: {dt:.3}s  {:.0} samples/s",
            args.backend,
            epoch + 1,
            n as f64 / dt
        ));
    }
    let mut extra = serde_json::Map::new();
    extra.insert("backend".into(), json!(args.backend));
    extra.insert("network".into(), json!("tfjs: conv8k5,relu,pool,conv16k5,relu,pool,dense10"));
    let version = common::locked_version(CARGO_LOCK, "burn");
    common::emit("burn-cnn", &version, &args, &epoch_seconds, n, f64::NAN, f64::NAN, extra);
}

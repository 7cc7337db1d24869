//! The layer string (`mnist --model`, a checkpoint's `layers` key): `layers::from_string` on an
//! image shape taken from the first three bytes, with the rest as the text. Every input must
//! give `Ok` or an `Error`; a network that builds must print its summary and count its
//! parameters and FLOPs without overflowing, and its own layer string must build it again,
//! identically.
#![no_main]

use libfuzzer_sys::fuzz_target;
use soma::shape::Chw;
use soma::{Output, layers};

fuzz_target!(|data: &[u8]| {
    let [c, h, w, text @ ..] = data else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    // 1-16 channels, 1-256 pixels a side: MNIST's 1×28×28, colour pictures, and the edges
    // (a 1×1 image, odd sizes) where shape inference can go wrong.
    let input = Chw::new(
        usize::from(*c % 16) + 1,
        usize::from(*h) + 1,
        usize::from(*w) + 1,
    );
    let output = if c & 0x80 == 0 {
        Output::SoftmaxCrossEntropy
    } else {
        Output::SigmoidMse
    };
    let Ok(net) = layers::from_string(input, text, output) else {
        return;
    };
    let table = layers::summary(&net);
    assert!(table.contains(&net.parameter_count().to_string()));
    let _ = net.train_flops_per_sample();
    let again = layers::from_string(input, &layers::layer_string(&net), output)
        .expect("a network's own layer string builds");
    assert_eq!(again, net);
});

//! How much memory a training run needs, checked before anything is allocated: a network too
//! large for the machine is an error giving the sizes and the limit, not an abort of the
//! process halfway through allocating it.

use crate::error::{Error, Result};
use crate::net::Network;
use crate::optim::Optimizer;

/// Rows the backends use when evaluating or predicting, whatever the batch size (the CPU
/// backend's evaluation chunk).
const EVAL_ROWS: usize = 1024;

/// Bytes of host memory a training run holds, by part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footprint {
    /// Weights and biases.
    pub params: u128,
    /// The optimizer's state tensors (none, one or two parameter-sized copies).
    pub optimizer_state: u128,
    /// Per-thread gradients, and activations, deltas and targets of a batch.
    pub workspaces: u128,
}

impl Footprint {
    /// The footprint of training `net` with `optimizer` in batches of `batch_size` rows on
    /// `threads` threads (each thread keeps its own gradients).
    pub fn training(
        net: &Network,
        optimizer: &Optimizer,
        batch_size: usize,
        threads: usize,
    ) -> Self {
        let f32s = |n: u128| n * 4;
        let params = net.parameter_count_u128();
        let rows = batch_size.max(EVAL_ROWS) as u128;
        // The input, each layer's output and delta and what it keeps for its backward pass
        // (a pool's arg-maxes, u32s like the f32s), and one row of targets per sample.
        let layers: u128 = net
            .nodes()
            .iter()
            .map(|n| 2 * n.op().output().len() as u128 + n.op().keep_per_row() as u128)
            .sum();
        let per_row: u128 = net.inputs() as u128 + layers + net.outputs() as u128;
        // Each thread's two scratch buffers (the largest layer's).
        let scratch: u128 = net
            .nodes()
            .iter()
            .map(|n| 2 * n.op().scratch_len(batch_size) as u128)
            .max()
            .unwrap_or(0);
        let threads = threads.max(1) as u128;
        Footprint {
            params: f32s(params),
            optimizer_state: f32s(params * optimizer.slots() as u128),
            workspaces: f32s((params + scratch) * threads + rows * per_row),
        }
    }

    /// All parts together.
    pub fn total(&self) -> u128 {
        self.params + self.optimizer_state + self.workspaces
    }

    /// `1.3 GB (parameters 300.0 MB + optimizer state 300.0 MB + workspaces 700.0 MB)`; parts
    /// of zero bytes are left out.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = [
            ("parameters", self.params),
            ("optimizer state", self.optimizer_state),
            ("workspaces", self.workspaces),
        ]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(what, n)| format!("{what} {}", bytes(*n)))
        .collect();
        format!("{} ({})", bytes(self.total()), parts.join(" + "))
    }
}

impl Network {
    /// [`Network::parameter_count`] without overflow, for size checks on networks that may be
    /// far too large to build.
    fn parameter_count_u128(&self) -> u128 {
        self.weight_shapes()
            .map(|s| s.rows as u128 * s.cols as u128 + s.bias as u128)
            .sum()
    }
}

/// Bytes as a decimal size with one decimal (`313.6 GB`).
pub fn bytes(n: u128) -> String {
    const UNITS: [&str; 6] = ["bytes", "kB", "MB", "GB", "TB", "PB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The memory the kernel says can be allocated without swapping (`MemAvailable` in
/// `/proc/meminfo`), where that file exists and is readable. `None` in a browser, which does not
/// say: there the `try_reserve` check below is the limit.
pub fn available() -> Option<u128> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        let text = std::fs::read_to_string("/proc/meminfo").ok()?;
        parse_mem_available(&text)
    }
    #[cfg(target_arch = "wasm32")]
    None
}

#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
fn parse_mem_available(meminfo: &str) -> Option<u128> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let mut fields = line["MemAvailable:".len()..].split_whitespace();
    let value: u128 = fields.next()?.parse().ok()?;
    match fields.next() {
        Some("kB") => Some(value * 1024),
        None => Some(value),
        Some(_) => None,
    }
}

/// Checks that training `net` (see [`Footprint::training`]) fits in memory, before anything
/// is allocated for it.
///
/// The limit is `MemAvailable` where the kernel reports it. Where it does not, the check asks
/// the allocator for the total up front (`try_reserve`) and gives it back, which refuses at
/// least what the address space or the allocator cannot hold.
pub fn check_training(
    net: &Network,
    optimizer: &Optimizer,
    batch_size: usize,
    threads: usize,
) -> Result<Footprint> {
    let need = Footprint::training(net, optimizer, batch_size, threads);
    check(
        &format!("training network {} in batches of {batch_size}", sizes(net)),
        need,
    )
}

/// Checks that the workspaces of training `net` in batches of `batch_size` on one thread
/// still fit, for a backend that already holds the parameters and optimizer state (which the
/// available memory then no longer includes).
pub fn check_workspaces(net: &Network, batch_size: usize) -> Result<Footprint> {
    let need = Footprint {
        params: 0,
        optimizer_state: 0,
        ..Footprint::training(net, &Optimizer::Sgd, batch_size, 1)
    };
    check(
        &format!(
            "the workspaces of network {} in batches of {batch_size}",
            sizes(net)
        ),
        need,
    )
}

/// Checks `need` (for `what`) against the available memory; see [`check_training`].
pub fn check(what: &str, need: Footprint) -> Result<Footprint> {
    let what = || what.to_string();
    match available() {
        Some(avail) if need.total() > avail => Err(Error::TooLarge {
            what: what(),
            needed: need.describe(),
            limit: format!(
                "the {} of memory available (MemAvailable in /proc/meminfo)",
                bytes(avail)
            ),
        }),
        Some(_) => Ok(need),
        None => {
            let fits = usize::try_from(need.total())
                .ok()
                .is_some_and(|n| Vec::<u8>::new().try_reserve_exact(n).is_ok());
            if fits {
                Ok(need)
            } else {
                Err(Error::TooLarge {
                    what: what(),
                    needed: need.describe(),
                    limit: "what the allocator can reserve".into(),
                })
            }
        }
    }
}

fn sizes(net: &Network) -> String {
    match net.dense_stack() {
        Some((sizes, _)) => sizes
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join("-"),
        None => crate::layers::layer_string(net),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{Activation, Output};

    #[test]
    fn footprint_counts_every_part() {
        let net = Network::new(&[784, 64, 64, 10], Activation::Sigmoid, Output::default()).unwrap();
        let p = net.parameter_count() as u128;
        let f = Footprint::training(&net, &Optimizer::adam(), 64, 2);
        assert_eq!(f.params, 4 * p);
        assert_eq!(f.optimizer_state, 8 * p);
        // Evaluation's 1024 rows exceed the batch of 64: 1024 · (2·922 − 784 + 10) floats.
        assert_eq!(f.workspaces, 4 * (2 * p + 1024 * 1070));
    }

    #[test]
    fn a_cnn_footprint_counts_the_image_and_each_spatial_layer_once() {
        // `tfjs`, whose flattened width (256) is less than its image (784): the dense formula
        // `2·Σsizes − inputs` went below zero for it (a panic with overflow checks, found by
        // the checkpoint fuzz target) and counted the flattened row twice.
        let net = crate::layers::from_string(
            crate::shape::Chw::new(1, 28, 28),
            "conv8k5,relu,pool,conv16k5,relu,pool,dense10",
            Output::SoftmaxCrossEntropy,
        )
        .unwrap();
        let p = net.parameter_count() as u128;
        let f = Footprint::training(&net, &Optimizer::Sgd, 64, 1);
        // Per row: the image, each conv's output and delta, each pool's output, delta and
        // arg-max, the dense output and its delta, the targets.
        let per_row =
            784 + 2 * 8 * 24 * 24 + 3 * 8 * 12 * 12 + 2 * 16 * 8 * 8 + 3 * 16 * 4 * 4 + 2 * 10 + 10;
        // The larger conv scratch, twice: the first layer's 25 × 576 × a group of 9.
        let scratch = 2 * 25 * 576 * 9;
        assert_eq!(f.workspaces, 4 * (p + scratch + 1024 * per_row));
    }

    #[test]
    fn the_issue_network_is_refused_with_sizes() {
        // `--hidden 100000000`: 79.5 billion parameters, 318.0 GB of them alone.
        let net = Network::new(
            &[784, 100_000_000, 10],
            Activation::Sigmoid,
            Output::default(),
        )
        .unwrap();
        let f = Footprint::training(&net, &Optimizer::momentum(), 64, 1);
        assert_eq!(bytes(f.params), "318.0 GB");
        if let Some(avail) = available() {
            assert!(avail < f.total(), "this machine has {avail} bytes");
            let e = check_training(&net, &Optimizer::momentum(), 64, 1).unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.contains("318.0 GB") && msg.contains("MemAvailable"),
                "{msg}"
            );
        }
    }

    #[test]
    fn meminfo_is_parsed_in_kilobytes() {
        let text = "MemTotal:       24000000 kB\nMemAvailable:   2000 kB\n";
        assert_eq!(parse_mem_available(text), Some(2_048_000));
        assert_eq!(parse_mem_available("MemTotal: 5 kB\n"), None);
        assert_eq!(parse_mem_available("MemAvailable: x kB\n"), None);
    }

    #[test]
    fn bytes_are_decimal_units() {
        assert_eq!(bytes(999), "999 bytes");
        assert_eq!(bytes(313_600_000_000), "313.6 GB");
        assert_eq!(bytes(1_500), "1.5 kB");
    }
}

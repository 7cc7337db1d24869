#!/usr/bin/env python3
"""soma's `cnn-bn` preset in PyTorch (eager), the yardstick for the batch-norm and dropout layers.

conv 32 3x3 (same) -> BatchNorm2d -> relu -> conv 32 3x3 (same) -> BatchNorm2d -> relu -> maxpool 2
-> conv 64 3x3 (same) -> BatchNorm2d -> relu -> maxpool 2 -> flatten (64*7*7) -> dense 128
-> BatchNorm1d -> relu -> dropout 0.25 -> dense 10: `conv32k3same,bn,relu,conv32k3same,bn,relu,pool,
conv64k3same,bn,relu,pool,dense128,bn,relu,dropout0.25,dense10`.
Softmax + cross-entropy (mean over the batch); --optimizer sgd|adam (default sgd, as soma's
`bench`) at --lr. Written like the shared peers'
`cnn_torch.py` (whose `peer_common` it uses: flags, threads, IDX loading, permutations, the result
line): pixels x/255, NCHW float32 in memory, one permutation per epoch, no DataLoader, PyTorch's
default initialisation under torch.manual_seed(--seed); only the training loop is timed. --data
takes any directory of the four IDX files (Fashion-MNIST's too).
"""
import os
import sys

sys.path.insert(0, os.environ.get(
    "PEERS", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "peers")))

import peer_common as pc  # noqa: E402

optimizer = "sgd"
if "--optimizer" in sys.argv:
    i = sys.argv.index("--optimizer")
    optimizer = sys.argv[i + 1]
    del sys.argv[i:i + 2]

args = pc.parse_args("torch")  # sets OMP/MKL threads before torch is imported

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402


def build():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Dropout(0.25),
        nn.Linear(128, 10),
    )


@torch.no_grad()
def evaluate(model, x, y, chunk=2000):
    loss, correct = 0.0, 0
    for i in range(0, x.shape[0], chunk):
        z = model(x[i:i + chunk])
        loss += nn.functional.cross_entropy(z, y[i:i + chunk], reduction="sum").item()
        correct += (z.argmax(dim=1) == y[i:i + chunk]).sum().item()
    return loss / x.shape[0], correct / x.shape[0]


def main():
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    xtr_np, ytr_np, xte_np, yte_np = pc.load_mnist(args.data, args.limit)
    as_images = lambda a: torch.from_numpy(a.reshape(-1, 1, 28, 28))
    xtr, ytr = as_images(xtr_np), torch.from_numpy(ytr_np)
    xte, yte = as_images(xte_np), torch.from_numpy(yte_np)
    n, B = xtr.shape[0], args.batch_size

    model = build()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    n_params = sum(p.numel() for p in model.parameters())
    loss_fn = nn.CrossEntropyLoss()
    make_opt = {"sgd": lambda: torch.optim.SGD(model.parameters(), lr=args.lr),
                "adam": lambda: torch.optim.Adam(model.parameters(), lr=args.lr)}[optimizer]
    opt = make_opt()

    def step(xb, yb):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()

    # Warm-up: one step per distinct batch shape (a last batch of one row is dropped, as
    # BatchNorm1d cannot train on it), then back to the initial parameters.
    model.train()
    for bs in pc.batch_shapes(n, B):
        if bs > 1:
            step(xtr[:bs], ytr[:bs])
    model.load_state_dict(init)
    opt = make_opt()

    shuffler = pc.Shuffler(args.seed, n)
    epoch_seconds, losses, accs = [], [], []
    for epoch in range(args.epochs):
        model.train()
        t0 = pc.now()
        perm = torch.from_numpy(shuffler.epoch())
        for i in range(0, n, B):
            idx = perm[i:i + B]
            if len(idx) > 1:
                step(xtr[idx], ytr[idx])
        dt = pc.now() - t0
        epoch_seconds.append(dt)
        model.eval()
        loss, _ = evaluate(model, xtr, ytr)        # outside the timed region
        _, acc = evaluate(model, xte, yte)
        losses.append(round(loss, 5))
        accs.append(round(acc, 4))
        pc.log(f"[torch cnn-bn] epoch {epoch + 1}: {dt:.3f}s  {n / dt:.0f} samples/s  "
               f"train_loss {loss:.4f}  test_acc {acc:.4f}")

    pc.emit("torch-cnn-bn", torch.__version__, args, epoch_seconds, n, accs[-1], losses[-1],
            {"optimizer": optimizer, "parameters": n_params, "train_loss_per_epoch": losses,
             "test_accuracy_per_epoch": accs, "torch_num_threads": torch.get_num_threads(),
             "numpy_version": np.__version__})


if __name__ == "__main__":
    main()

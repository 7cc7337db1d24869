"""Fashion-MNIST through every door `train` has: the IDX files as they are, a Keras-style .npz
(x_train, y_train, x_test, y_test), a folder of PNGs with train/ and test/ subfolders, and a CSV
(70,000 rows of 784 pixel columns and a label; `train` draws its own stratified split from it).

    python3 benches/doors.py OUT_DIR [--fashion DIR]

Writes OUT_DIR/fashion.npz, OUT_DIR/png/{train,test}/<class>/<index>.png and
OUT_DIR/fashion.csv. Needs numpy and pillow. benches/doors.sh trains on each.
"""
import argparse, gzip, os, struct

import numpy as np
from PIL import Image


def idx(path):
    with gzip.open(path) as f:
        d = f.read()
    nd = d[3]
    dims = struct.unpack(">" + "I" * nd, d[4:4 + 4 * nd])
    return np.frombuffer(d[4 + 4 * nd:], np.uint8).reshape(dims)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--fashion", default="/usr/share/datasets/fashion-mnist")
    a = p.parse_args()
    f = lambda n: os.path.join(a.fashion, n)
    xtr, ytr = idx(f("train-images-idx3-ubyte.gz")), idx(f("train-labels-idx1-ubyte.gz"))
    xte, yte = idx(f("t10k-images-idx3-ubyte.gz")), idx(f("t10k-labels-idx1-ubyte.gz"))
    os.makedirs(a.out, exist_ok=True)
    np.savez(os.path.join(a.out, "fashion.npz"), x_train=xtr, y_train=ytr.astype(np.int64),
             x_test=xte, y_test=yte.astype(np.int64))
    for part, x, y in [("train", xtr, ytr), ("test", xte, yte)]:
        for i in range(len(x)):
            d = os.path.join(a.out, "png", part, str(int(y[i])))
            os.makedirs(d, exist_ok=True)
            Image.fromarray(x[i], "L").save(os.path.join(d, f"{i:05d}.png"))
    x = np.concatenate([xtr, xte]).reshape(70000, -1)
    y = np.concatenate([ytr, yte])
    with open(os.path.join(a.out, "fashion.csv"), "w") as out:
        out.write(",".join(f"pixel{i}" for i in range(784)) + ",label\n")
        for row, lab in zip(x, y):
            out.write(",".join(map(str, row.tolist())) + f",{lab}\n")
    print(f"{a.out}: fashion.npz, png/train, png/test, fashion.csv")


if __name__ == "__main__":
    main()

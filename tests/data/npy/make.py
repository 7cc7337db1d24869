"""Writes the small NumPy fixtures that soma's npy reader tests (src/data/npy.rs) read.

Run from anywhere, with NumPy installed (`pip install numpy`):

    python3 tests/data/npy/make.py

It rewrites, beside itself, exactly these files, the same bytes on every run (fixed seed):
x_u8.npy, y_i64.npy, x_f64_fortran.npy, x_f4_be.npy, keras.npz, xy_compressed.npz and
object.npy. It prints the values the tests hard-code. The .npz files hold a time stamp per
member (zipfile's), so their bytes depend on the run's date but not their contents.
"""

import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def path(name):
    return os.path.join(HERE, name)


def main():
    rng = np.random.default_rng(1234)

    x_u8 = rng.integers(0, 256, size=(6, 2, 3), dtype=np.uint8)
    np.save(path("x_u8.npy"), x_u8)

    y_i64 = rng.integers(-1000, 1000, size=(6,), dtype=np.int64)
    np.save(path("y_i64.npy"), y_i64)

    # Values exact in f32 and f64 alike (quarters), so the test compares exactly.
    x_f64 = np.asfortranarray(rng.integers(-400, 400, size=(3, 4)).astype(np.float64) / 4)
    assert x_f64.flags.f_contiguous and not x_f64.flags.c_contiguous
    np.save(path("x_f64_fortran.npy"), x_f64)

    x_f4_be = (rng.integers(-400, 400, size=(2, 3)).astype(np.float32) / 8).astype(">f4")
    np.save(path("x_f4_be.npy"), x_f4_be)

    x_train = rng.integers(0, 256, size=(8, 4, 4), dtype=np.uint8)
    y_train = rng.integers(0, 10, size=(8,), dtype=np.int64)
    x_test = rng.integers(0, 256, size=(3, 4, 4), dtype=np.uint8)
    y_test = rng.integers(0, 10, size=(3,), dtype=np.int64)
    np.savez(path("keras.npz"), x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)

    x = (rng.integers(-100, 100, size=(10, 3)) / 16).astype(np.float32)
    labels = rng.integers(0, 2, size=(10,))
    y = np.eye(2, dtype=np.float32)[labels]
    np.savez_compressed(path("xy_compressed.npz"), x=x, y=y)

    obj = np.array([1, "two", None], dtype=object)
    np.save(path("object.npy"), obj, allow_pickle=True)

    np.set_printoptions(threshold=10000)
    for name, a in [
        ("x_u8", x_u8),
        ("y_i64", y_i64),
        ("x_f64_fortran", x_f64),
        ("x_f4_be", x_f4_be),
        ("keras x_train", x_train),
        ("keras y_train", y_train),
        ("keras x_test", x_test),
        ("keras y_test", y_test),
        ("xy_compressed x", x),
        ("xy_compressed y", y),
    ]:
        flat = a.ravel(order="C").tolist()
        print(f"{name} {a.dtype.str} {a.shape}: sum {sum(flat)}\n  {flat}")


if __name__ == "__main__":
    main()

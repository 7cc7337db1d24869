"""soma's tabular defaults against scikit-learn's MLPClassifier on scikit-learn's bundled tables.

Each data set is written as a CSV with its text class names (`load_breast_cancer`, `load_wine`,
`load_digits`), then, for seeds 0..N-1, scikit-learn trains `MLPClassifier()` (its defaults:
one hidden layer of 100 ReLUs, Adam at 0.001, up to 200 iterations) on standardised inputs of a
stratified 80/20 split (`train_test_split(stratify=y, test_size=0.2, random_state=seed)`), and
soma's `train` example runs on the CSV with its defaults (`--split-seed seed --seed seed`:
soma's own stratified 20% split). The two splits differ; each side's mean test accuracy over
the seeds is the number compared. One JSON line per data set.

    python3 benches/tabular.py [--seeds 5] [--work DIR] [--train target/release/examples/train]

Needs scikit-learn (pip). Build the example first: cargo build --release --example train.
"""
import argparse, csv, json, os, subprocess, sys, warnings

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler


def write_csv(path, data):
    names = [str(n).replace(",", " ") for n in getattr(data, "feature_names", range(data.data.shape[1]))]
    labels = [str(data.target_names[t]) for t in data.target]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(names + ["label"])
        for row, lab in zip(data.data, labels):
            w.writerow([repr(float(v)) for v in row] + [lab])


def sklearn_acc(data, seed):
    x_tr, x_te, y_tr, y_te = train_test_split(data.data, data.target, test_size=0.2, stratify=data.target, random_state=seed)
    sc = StandardScaler().fit(x_tr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m = MLPClassifier(random_state=seed).fit(sc.transform(x_tr), y_tr)
    return m.score(sc.transform(x_te), y_te)


def soma_acc(train, path, seed):
    out = subprocess.run([train, path, "--backend", "cpu", "--split-seed", str(seed), "--seed", str(seed)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["test_accuracy"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--work", default="/tmp/soma-tabular")
    p.add_argument("--train", default="target/release/examples/train")
    a = p.parse_args()
    os.makedirs(a.work, exist_ok=True)
    for name, load in [("breast_cancer", load_breast_cancer), ("wine", load_wine), ("digits", load_digits)]:
        data = load()
        path = os.path.join(a.work, f"{name}.csv")
        write_csv(path, data)
        sk = [sklearn_acc(data, s) for s in range(a.seeds)]
        so = [soma_acc(a.train, path, s) for s in range(a.seeds)]
        print(json.dumps({"data": name, "rows": len(data.target), "features": data.data.shape[1],
                          "classes": len(data.target_names), "seeds": a.seeds,
                          "sklearn_mlp": round(float(np.mean(sk)), 4), "soma": round(float(np.mean(so)), 4),
                          "sklearn_each": [round(v, 4) for v in sk], "soma_each": [round(v, 4) for v in so]}), flush=True)


if __name__ == "__main__":
    sys.exit(main())

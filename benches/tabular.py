"""soma's tabular defaults against scikit-learn's MLPClassifier and MLPRegressor on the same
splits of scikit-learn's bundled tables.

For each table and seed, the 80/20 split is scikit-learn's (`train_test_split(test_size=0.2,
random_state=seed)`, stratified for classes), written as two CSV files (classes by their text
names, a `target` column for regression). scikit-learn trains its MLP with its defaults (one
hidden layer of 100 ReLUs, Adam at 0.001, batch 200, up to 200 iterations) on inputs
standardised on the training part; for regression its target is standardised too
(`TransformedTargetRegressor` with a `StandardScaler`, as soma does: on raw targets it stops far
from a fit within its 200 iterations). soma's `train` example runs with its defaults on the
same two files (`train.csv --test test.csv --seed seed`, `--task regression` for the
regressions). Both test on the same rows; the number compared is the mean test accuracy (or R²)
over the seeds. One JSON line per table.

Classification: `load_breast_cancer`, `load_wine`, `load_digits`. Regression: `load_diabetes`
(442 rows, 10 features) and `make_friedman1` (2,000 rows of Friedman's nonlinear function of 5
of 10 uniform features, noise 1, seeded by 0).

    python3 benches/tabular.py [--seeds 5] [--work DIR] [--train target/release/examples/train]

Needs scikit-learn (pip). Build the example first: cargo build --release --example train.
"""
import argparse, csv, json, os, subprocess, sys, warnings

import numpy as np
from sklearn.compose import TransformedTargetRegressor
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_wine, make_friedman1
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.preprocessing import StandardScaler


def write_csv(path, names, x, y):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(names)
        for row, t in zip(x, y):
            w.writerow([repr(float(v)) for v in row] + [t if isinstance(t, str) else repr(float(t))])


def fit(model, x_tr, y_tr, x_te, y_te):
    sc = StandardScaler().fit(x_tr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(sc.transform(x_tr), y_tr)
    return model.score(sc.transform(x_te), y_te)


def soma(train, tr, te, seed, extra, key):
    out = subprocess.run([train, tr, "--test", te, "--backend", "cpu", "--seed", str(seed), *extra],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])[key]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--work", default="/tmp/soma-tabular")
    p.add_argument("--train", default="target/release/examples/train")
    a = p.parse_args()
    os.makedirs(a.work, exist_ok=True)
    tables = []
    for name, load in [("breast_cancer", load_breast_cancer), ("wine", load_wine), ("digits", load_digits)]:
        d = load()
        names = [str(n).replace(",", " ") for n in getattr(d, "feature_names", range(d.data.shape[1]))]
        tables.append((name, d.data, d.target, names + ["label"], np.array([str(d.target_names[t]) for t in d.target]), False))
    diabetes = load_diabetes()
    friedman_x, friedman_y = make_friedman1(n_samples=2000, noise=1.0, random_state=0)
    for name, x, y in [("diabetes", diabetes.data, diabetes.target), ("friedman1", friedman_x, friedman_y)]:
        tables.append((name, x, y, [f"x{j}" for j in range(x.shape[1])] + ["target"], y, True))
    for name, x, y, header, written, regression in tables:
        sk, so = [], []
        for seed in range(a.seeds):
            idx = np.arange(len(y))
            tr_i, te_i = train_test_split(idx, test_size=0.2, random_state=seed, stratify=None if regression else y)
            tr, te = os.path.join(a.work, f"{name}-train.csv"), os.path.join(a.work, f"{name}-test.csv")
            write_csv(tr, header, x[tr_i], written[tr_i])
            write_csv(te, header, x[te_i], written[te_i])
            if regression:
                model = TransformedTargetRegressor(MLPRegressor(random_state=seed), transformer=StandardScaler())
                extra, key = ["--task", "regression"], "test_r2"
            else:
                model, extra, key = MLPClassifier(random_state=seed), [], "test_accuracy"
            sk.append(fit(model, x[tr_i], y[tr_i], x[te_i], y[te_i]))
            so.append(soma(a.train, tr, te, seed, extra, key))
        print(json.dumps({"data": name, "rows": len(y), "features": x.shape[1],
                          "task": "regression" if regression else "classification",
                          "metric": "r2" if regression else "accuracy", "seeds": a.seeds,
                          "sklearn_mlp": round(float(np.mean(sk)), 4), "soma": round(float(np.mean(so)), 4),
                          "sklearn_each": [round(v, 4) for v in sk], "soma_each": [round(v, 4) for v in so]}), flush=True)


if __name__ == "__main__":
    sys.exit(main())

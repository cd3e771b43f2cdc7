"""How close to the oracle can a gate that sees only x get? The ceiling of issue 21's target.

The oracle gate routes each point to its true class's expert, so its test MSE is the noise
floor (``regression.noise``^2 on the standardised targets). Every other gate sees only x. A
point routed to a wrong expert costs that expert's error, far above the floor when the
class maps differ, so a gate's MSE is about floor + (1 - ACC) x the cost of one wrong route.
This script measures, with the oracle's own experts (ridge least squares per true class,
``moe.oracle.ridge``) held fixed:

- the oracle gate (the floor);
- gates trained *with the labels* on x, stronger than any label-free gate: k-nearest
  neighbours and a multilayer perceptron (scikit-learn), soft (their class probabilities)
  and hard (argmax);
- the cost of one wrong route (the mean squared error at a uniformly drawn wrong expert),
  and from it the gate ACC that 1.5x the oracle's MSE would need;
- beside them, the label-free ``dvmoe`` of the committed report (``reports/metrics``).

    python bench/moe_ceiling.py --raw data/raw

Data as the quick profile prepares it (MNIST dev split capped at 8000 train / 2000 test;
spiral at its defaults), data seed ``seed`` of params.yaml.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier

from vaemix.config import validate
from vaemix.data import load_prepared, prepare_dataset
from vaemix.io import write_json, write_text
from vaemix.moe.model import fit_affine, one_hot, reference_predict

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 1.5  # issue 21: dvmoe within 1.5x of the oracle's MSE


def gate_rows(data, ridge: float, seed: int) -> tuple[list[dict], float, float]:
    """The rows of one dataset, the floor (oracle MSE) and the cost of one wrong route."""
    k = data.n_classes
    t_train = data.t_train.astype(np.float64)
    t_test = data.t_test.astype(np.float64).reshape(len(data.t_test), -1)
    experts = fit_affine(data.x_train, t_train, data.y_train, k, ridge=ridge)
    x_train = data.x_train.reshape(len(data.x_train), -1)
    x_test = data.x_test.reshape(len(data.x_test), -1)

    def mse(gate: np.ndarray) -> float:
        out = reference_predict(experts, data.x_test, t_test, gate)
        return float(((out["t_hat"] - t_test) ** 2).sum(-1).mean())

    floor = mse(one_hot(data.y_test, k))
    means = experts.means(data.x_test)  # [N, K, M]
    err = ((means - t_test[:, None, :]) ** 2).sum(-1)  # [N, K]
    wrong = ~one_hot(data.y_test, k).astype(bool)
    wrong_route = float((err * wrong).sum(1).mean() / (k - 1))
    rows = [{"gate": "oracle (true class)", "acc": 1.0, "mse": floor}]
    classifiers = {
        "k-NN (15), labels": KNeighborsClassifier(n_neighbors=15),
        "MLP (256), labels": MLPClassifier(hidden_layer_sizes=(256,), max_iter=300,
                                           early_stopping=True, random_state=seed),
    }
    for name, clf in classifiers.items():
        start = time.perf_counter()
        clf.fit(x_train, data.y_train)
        proba = np.zeros((len(x_test), k))
        proba[:, clf.classes_] = clf.predict_proba(x_test)
        acc = float((proba.argmax(1) == data.y_test).mean())
        rows.append({"gate": f"{name}, soft", "acc": acc, "mse": mse(proba),
                     "seconds": time.perf_counter() - start})
        rows.append({"gate": f"{name}, hard", "acc": acc, "mse": mse(one_hot(proba.argmax(1), k))})
    for r in rows:
        r["mse_over_oracle"] = r["mse"] / floor
        # the first-order model: floor + (1 - acc) x the cost of one wrong route
        r["predicted_mse"] = floor + (1.0 - r["acc"]) * (wrong_route - floor)
    return rows, floor, wrong_route


def committed(dataset: str, run: str) -> dict | None:
    path = ROOT / "reports" / "metrics" / dataset / f"{run}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", type=Path, default=ROOT / "data" / "raw")
    ap.add_argument("--datasets", nargs="+", default=["mnist", "spiral"])
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks")
    ap.add_argument("--name", default="moe_ceiling")
    args = ap.parse_args()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["datasets"] = list(args.datasets)
    params["latent_sweep"]["latent_dims"] = []
    params["budget"].update(max_train=8000, max_test=2000)  # the quick profile's caps
    params["data"]["mnist"].update(root=str(args.raw.resolve()), download=False)
    validate(params)
    seed = int(params["seed"])
    ridge = float(params["moe"]["oracle"]["ridge"])
    lines = [
        "# The ceiling of a gate that sees only x (mixture-of-experts regression)\n",
        f"Command: `python bench/moe_ceiling.py --datasets {' '.join(args.datasets)}`  ",
        f"Machine: {platform.processor() or platform.machine()}. Experts: the oracle's (ridge "
        f"{ridge} least squares per true class), held fixed; only the gate changes. Data: the "
        "quick profile's (MNIST dev split, 8000 train / 2000 test; spiral defaults), "
        f"regression noise std {params['regression']['noise']}.\n",
        "predicted MSE = floor + (1 − ACC) × (cost of one wrong route − floor). "
        f"ACC for {TARGET_RATIO}× = the gate ACC at which that model reaches "
        f"{TARGET_RATIO} × the floor.\n",
    ]
    raw = {}
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="vaemix-ceiling-") as scratch:
        os.chdir(scratch)
        try:
            for ds in args.datasets:
                prepare_dataset(ds, params, Path("data/prepared") / ds)
                rows, floor, wrong_route = gate_rows(load_prepared(ds), ridge, seed)
                dv = committed(ds, "moe_dvmoe_z2")
                deep = committed(ds, "moe_deepmoe_z0")
                for name, m in (("dvmoe z2 (committed quick report, label-free)", dv),
                                ("deepmoe (committed quick report)", deep)):
                    if m:
                        rows.append({"gate": name, "acc": m.get("acc"), "mse": m["test_mse"],
                                     "mse_over_oracle": m["test_mse"] / floor,
                                     "predicted_mse": floor + (1.0 - m["acc"])
                                     * (wrong_route - floor) if m.get("acc") else None})
                need = 1.0 - (TARGET_RATIO - 1.0) * floor / (wrong_route - floor)
                raw[ds] = {"floor": floor, "wrong_route": wrong_route, "acc_needed": need,
                           "rows": rows}
                lines += [f"## {ds}\n",
                          f"floor (oracle MSE) {floor:.4f}; cost of one wrong route "
                          f"{wrong_route:.3f}; gate ACC needed for {TARGET_RATIO}× the "
                          f"oracle: **{need:.4f}**\n",
                          "| gate | ACC | test MSE | ÷ oracle | predicted MSE |",
                          "|---|---:|---:|---:|---:|"]
                for r in rows:
                    acc = "" if r.get("acc") is None else f"{r['acc']:.4f}"
                    pred = "" if r.get("predicted_mse") is None else f"{r['predicted_mse']:.4f}"
                    lines.append(f"| {r['gate']} | {acc} | {r['mse']:.4f} | "
                                 f"{r['mse_over_oracle']:.1f}× | {pred} |")
                lines.append("")
                print("\n".join(lines[-len(rows) - 5:]), flush=True)
        finally:
            os.chdir(cwd)
    write_text(args.out / f"{args.name}.md", "\n".join(lines) + "\n")
    write_json(args.out / f"{args.name}.json", raw)


if __name__ == "__main__":
    main()

"""Does agreement between autoencoders pick the better N2D start? A label-free probe.

Pretrains the spiral autoencoder (or another dataset's) from several seeds on one data set,
fits N2D (UMAP + GMM, vaemix.baselines) on each one's codes, and scores every partition by its
mean NMI to the others (the "most agreeing" partition of Strehl & Ghosh 2002,
``vaemix.models.init.most_agreeing``). Labels only score the result afterwards.

    OMP_NUM_THREADS=2 python bench/ae_agreement.py --profile quick --dataset spiral \\
        --ae-seeds 0 1 2 3 4 5 --out reports/benchmarks/ae_agreement_spiral.json
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from vaemix import profiles
from vaemix.baselines import run_baseline
from vaemix.config import validate
from vaemix.data import load_prepared, prepare_dataset
from vaemix.errors import VaemixError
from vaemix.io import write_json
from vaemix.metrics import cluster_accuracy
from vaemix.models.init import most_agreeing
from vaemix.regress import describe, machine
from vaemix.runs import ARTIFACTS, train_and_export

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from quality import bench_params  # noqa: E402


def probe_params(profile: str | None, dataset: str, data_seed: int) -> dict:
    """params.yaml (and the profile) with one dataset, no methods, the plain AE's baselines."""
    params = bench_params(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if profile:
        params = profiles.apply(params, profiles.load_profile(profile, ROOT / "profiles"),
                                profile)
    params.update(seed=data_seed, seeds=[data_seed], datasets=[dataset], methods=[],
                  baseline_encoders=["ae"], paper_starts=[])
    params["latent_sweep"].update(runs=[], baseline_encoders=[])
    validate(params)
    return params


def n2d_partitions(params: dict, dataset: str, ae_seeds: list[int]) -> tuple[list, np.ndarray]:
    """N2D's training-split partition of each seed's autoencoder, and the labels."""
    prepare_dataset(dataset, params, Path("data/prepared") / dataset)
    data = load_prepared(dataset)
    preds = []
    for seed in ae_seeds:
        params.update(seed=seed, seeds=[seed])   # the data stay those prepared above
        train_and_export("ae", dataset, data, params, "pretrain")
        run_baseline(params, dataset, "ae", "umap_gmm")
        pred = np.load(ARTIFACTS / dataset / "ae+umap_gmm" / "pred.npz")
        preds.append(pred["pred_train"])
        labels = pred["y_train"]
    return preds, labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile")
    ap.add_argument("--dataset", default="spiral")
    ap.add_argument("--data-seed", type=int, default=0)
    ap.add_argument("--ae-seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    if len(args.ae_seeds) < 2:
        raise SystemExit("error: --ae-seeds needs at least two seeds to compare")
    out = args.out.resolve()
    try:
        params = probe_params(args.profile, args.dataset, args.data_seed)
    except VaemixError as err:
        raise SystemExit(f"error: {err}") from None
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="vaemix-agree-") as scratch:
        os.chdir(scratch)
        try:
            preds, labels = n2d_partitions(params, args.dataset, args.ae_seeds)
        finally:
            os.chdir(cwd)
    best, score = most_agreeing(preds)
    rows = [{"ae_seed": s, "transductive_acc": float(cluster_accuracy(labels, p)),
             "mean_nmi_to_others": float(a)}
            for s, p, a in zip(args.ae_seeds, preds, score, strict=True)]
    chosen = rows[best]
    for r in rows:
        print(r)
    print("most agreeing:", chosen)
    write_json(out, {"args": vars(args) | {"out": str(args.out)}, "cpu": describe(machine()),
                     "rows": rows, "most_agreeing": chosen})


if __name__ == "__main__":
    main()

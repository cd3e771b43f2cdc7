"""How the spectral start depends on its k-NN graph, and what ``spectral_consensus`` picks.

The ``spectral`` start (``init_clusters``, see ``vaemix.models.init``) clusters a k-NN graph
of the autoencoder's codes with k = 10. This script pretrains the autoencoder on the MNIST
dev split once per seed (the same library call as ``pretrain@mnist-ae``), clusters its
training codes with each k of ``CONSENSUS_NEIGHBOURS``, and reports, per k: the ACC of the
spectral labels on the training codes, the test ACC of the diagonal mixture built from them
(each test code to its most probable component: the start a model gets), and the mean NMI
to the other k's partitions, the label-free score by which ``spectral_consensus`` picks one.
Labels are used only to score. Writes ``reports/benchmarks/spectral_starts.{md,json}``.

    python bench/spectral_starts.py --raw data/raw --seeds 0 1 2 \
        --set model.mnist.net=conv 'model.mnist.hidden=[512]'

``--workdir DIR`` keeps each seed's autoencoder in ``DIR/s<seed>`` and reuses one already
there (delete it after changing the params).
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from quality import (  # bench/ is on sys.path when run as a script
    ROOT,
    add_run_args,
    apply_overrides,
    bench_params,
)

from vaemix.baselines import load_latents
from vaemix.config import validate
from vaemix.data import load_prepared, prepare_dataset
from vaemix.distributions import log_normal_diag
from vaemix.io import write_json, write_text
from vaemix.metrics import cluster_accuracy
from vaemix.models.init import (
    CONSENSUS_NEIGHBOURS,
    SPECTRAL_NEIGHBOURS,
    mixture_from_labels,
    most_agreeing,
    spectral_labels,
)
from vaemix.runs import ARTIFACTS, train_and_export


def autoencoder_latents(params: dict, raw: Path, seed: int, workdir: Path) -> dict:
    """The ``ae`` latents of the MNIST dev split for ``seed``, trained in ``workdir`` unless
    already there."""
    params = copy.deepcopy(params)
    params.update(seed=seed, seeds=[seed], datasets=["mnist"], encoders=["ae"],
                  baseline_encoders=["ae"])
    params["data"]["mnist"].update(root=str(raw.resolve()), download=False)
    validate(params)
    path = workdir / ARTIFACTS / "mnist" / "ae" / "latents.npz"
    if not path.is_file():
        workdir.mkdir(parents=True, exist_ok=True)
        cwd = os.getcwd()
        os.chdir(workdir)
        try:
            prepare_dataset("mnist", params, Path("data/prepared/mnist"))
            train_and_export("ae", "mnist", load_prepared("mnist"), params, "pretrain")
        finally:
            os.chdir(cwd)
    return load_latents(path)


def mixture_predict(means: np.ndarray, variances: np.ndarray, weights: np.ndarray,
                    z: np.ndarray) -> np.ndarray:
    """The most probable component of a diagonal mixture for each row of z."""
    log_joint = log_normal_diag(torch.as_tensor(z)[:, None, :], torch.as_tensor(means),
                                torch.as_tensor(variances).log()) + torch.as_tensor(weights).log()
    return log_joint.argmax(1).numpy()


def run_seed(latents: dict, n_clusters: int, seed: int) -> list[dict]:
    z = latents["z_train"].astype(np.float64)
    partitions = [spectral_labels(z, n_clusters, seed, k) for k in CONSENSUS_NEIGHBOURS]
    pick, mean_nmi = most_agreeing([labels for _, labels in partitions])
    rows = []
    for i, (k, (points, labels)) in enumerate(zip(CONSENSUS_NEIGHBOURS, partitions,
                                                   strict=True)):
        if len(points) != len(z):
            raise SystemExit("spectral_starts: the training split is above the spectral "
                             "subset cap; the train ACC would not line up with its labels")
        mix = mixture_from_labels(points, labels, n_clusters)
        test_pred = mixture_predict(mix.means.astype(np.float64),
                                    mix.variances.astype(np.float64),
                                    mix.weights.astype(np.float64), latents["z_test"])
        rows.append({"seed": seed, "k": k, "train_acc": cluster_accuracy(latents["y_train"],
                                                                         labels),
                     "test_acc": cluster_accuracy(latents["y_test"], test_pred),
                     "mean_nmi": float(mean_nmi[i]), "picked": i == pick})
        print(rows[-1], flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| seed | k | train ACC of the spectral labels | test ACC of their mixture | "
             "mean NMI to the other k | |", "|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        notes = [n for n, on in (("spectral_consensus picks it", r["picked"]),
                                 ("`spectral` (default k)", r["k"] == SPECTRAL_NEIGHBOURS))
                 if on]
        lines.append(f"| {r['seed']} | {r['k']} | {r['train_acc']:.3f} | {r['test_acc']:.3f} "
                     f"| {r['mean_nmi']:.3f} | {'; '.join(notes)} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", type=Path, default=ROOT / "data" / "raw")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=YAML",
                    help="params overrides, e.g. model.mnist.net=conv")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="keep (and reuse) each seed's autoencoder here")
    add_run_args(ap, "spectral_starts")
    args = ap.parse_args()
    params = bench_params(args.threads)
    apply_overrides(params, args.set)
    start = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="vaemix-starts-") as scratch:
        for seed in args.seeds:
            workdir = (args.workdir or Path(scratch)) / f"s{seed}"
            latents = autoencoder_latents(params, args.raw, seed, workdir.resolve())
            rows += run_seed(latents, params["model"]["mnist"]["n_clusters"], seed)
    total = (time.perf_counter() - start) / 60
    command = ("python bench/spectral_starts.py --seeds " + " ".join(map(str, args.seeds))
               + f" --threads {args.threads}"
               + (f" --workdir {args.workdir}" if args.workdir else "")
               + "".join(f" --set {s}" for s in args.set))
    reused = (" Autoencoders reused from --workdir where already there; the minutes count "
              "only this run." if args.workdir else "")
    header = (f"# The spectral start per k-NN graph size, and the consensus pick\n\n"
              f"Command: `{command}`  \nMachine: {platform.processor() or platform.machine()}, "
              f"{args.threads} threads, torch {torch.__version__}; total {total:.1f} min.  \n"
              f"MNIST dev split (8000 train, 2000 test); labels only score.{reused}\n\n")
    write_text(args.out / f"{args.name}.md", header + table(rows) + "\n")
    write_json(args.out / f"{args.name}.json", {"command": command, "rows": rows})
    print(table(rows))


if __name__ == "__main__":
    main()

"""How the DP-GMM's priors set its effective number of components, on real latents.

The DP-GMM baselines (and the refits of ``gmvae_dpgmm``) use scikit-learn's
``BayesianGaussianMixture``. Two priors could decide how many of the T = 30 components keep
weight: the Dirichlet-process concentration (``weight_concentration_prior``, default 1/T)
and the Wishart pseudo-count on the covariances (``degrees_of_freedom_prior``, default the
latent dim). This script trains the autoencoder and the VAE on the MNIST dev split, once
per seed, fits the DP-GMM baseline on their latents over a grid of both priors, and
writes the effective K (components above ``min_weight``), ACC and NMI on the test split to
``reports/benchmarks/dpgmm_prior.md`` (raw numbers in ``dpgmm_prior.json``).

    python bench/dpgmm_prior.py --raw data/raw --seeds 0 1 2

``--raw`` holds the MNIST files in the torchvision layout, e.g. the dev split made by
``python scripts/make_mnist_split.py ../shared/data/mnist-t10k data/raw``.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
from quality import (  # bench/ is on sys.path when run as a script
    ROOT,
    add_run_args,
    bench_params,
    fmt,
)

from vaemix.baselines import evaluate_baseline, load_latents
from vaemix.config import validate
from vaemix.data import load_prepared, prepare_dataset
from vaemix.io import write_json, write_text
from vaemix.runs import ARTIFACTS, train_and_export

# (weight_concentration_prior, degrees_of_freedom_prior); None = scikit-learn's default
GRID = [(None, None), (1e-3, None), (None, 50.0), (None, 100.0), (None, 150.0),
        (None, 200.0), (None, 300.0)]


def run_seed(params: dict, encoders: list[str], raw: Path, seed: int) -> list[dict]:
    params = copy.deepcopy(params)
    params.update(seed=seed, seeds=[seed], datasets=["mnist"], encoders=list(encoders))
    params["data"]["mnist"].update(root=str(raw.resolve()), download=False)
    validate(params)
    k = params["model"]["mnist"]["n_clusters"]
    rows = []
    with tempfile.TemporaryDirectory(prefix=f"vaemix-dpprior-{seed}-") as scratch:
        cwd = os.getcwd()
        os.chdir(scratch)
        try:
            prepare_dataset("mnist", params, Path("data/prepared/mnist"))
            data = load_prepared("mnist")
            for enc in encoders:
                train_and_export(enc, "mnist", data, params, "pretrain")
                latents = load_latents(ARTIFACTS / "mnist" / enc / "latents.npz")
                for alpha, dof in GRID:
                    settings = {**params["baseline"]["dpgmm"],
                                "weight_concentration_prior": alpha,
                                "degrees_of_freedom_prior": dof}
                    m, _ = evaluate_baseline("dpgmm", latents, k, settings, seed)
                    rows.append({"encoder": enc, "alpha": alpha, "dof": dof, "seed": seed,
                                 **{key: m[key] for key in ("n_components_effective",
                                                            "acc", "nmi", "train_seconds")}})
                    print(rows[-1], flush=True)
        finally:
            os.chdir(cwd)
    return rows


def table(rows: list[dict], latent_dim: int, truncation: int) -> str:
    lines = ["| encoder | weight_concentration_prior | degrees_of_freedom_prior | effective K "
             "| effective K per seed | acc | nmi | fit seconds |",
             "|---|---:|---:|---:|---|---:|---:|---:|"]
    for enc in dict.fromkeys(r["encoder"] for r in rows):
        for alpha, dof in GRID:
            group = [r for r in rows if r["encoder"] == enc and r["alpha"] == alpha
                     and r["dof"] == dof]
            if not group:
                continue
            ks = [r["n_components_effective"] for r in group]
            lines.append(
                f"| {enc} | {alpha if alpha is not None else f'1/T = {1 / truncation:.3f}'} "
                f"| {dof if dof is not None else f'd = {latent_dim}'} | {fmt(ks)} | {ks} "
                f"| {fmt([r['acc'] for r in group])} | {fmt([r['nmi'] for r in group])} "
                f"| {fmt([r['train_seconds'] for r in group])} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", type=Path, default=ROOT / "data" / "raw")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--encoders", nargs="+", default=["ae", "vae"], choices=["ae", "vae"])
    add_run_args(ap, "dpgmm_prior")
    args = ap.parse_args()
    params = bench_params(args.threads)
    params["baseline_encoders"] = list(args.encoders)
    start = time.perf_counter()
    rows = [r for seed in args.seeds for r in run_seed(params, args.encoders, args.raw, seed)]
    total = (time.perf_counter() - start) / 60
    d = params["model"]["mnist"]["latent_dim"]
    truncation = round(params["baseline"]["dpgmm"]["truncation_factor"]
                       * params["model"]["mnist"]["n_clusters"])
    command = (f"python bench/dpgmm_prior.py --seeds {' '.join(map(str, args.seeds))} "
               f"--encoders {' '.join(args.encoders)}")
    header = (
        "# DP-GMM: which prior sets the effective number of components (MNIST dev split)\n\n"
        f"Command: `{command}`  \nMachine: {platform.processor() or platform.machine()}, "
        f"{args.threads} threads, torch {torch.__version__}; total {total:.1f} min.  \n"
        f"The baseline DP-GMM of params.yaml (diagonal covariances, truncation T = "
        f"{truncation}, a component counts above weight "
        f"{params['baseline']['dpgmm']['min_weight']}) on the standardised latents of each "
        f"encoder (latent dim d = {d}), 10 true classes; acc and nmi on the test split.\n\n"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / f"{args.name}.md", header + table(rows, d, truncation) + "\n")
    write_json(args.out / f"{args.name}.json", {"command": command, "rows": rows})
    print(table(rows, d, truncation))


if __name__ == "__main__":
    main()

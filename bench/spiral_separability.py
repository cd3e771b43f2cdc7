"""Can the spiral's arms be found at all, and where do the mixture models lose them?

For each noise level of the 5-arm spiral (``data.spiral.noise``) this script measures, on
the training split:

- ``cross_edges``: the fraction of the edges of a 10-nearest-neighbour graph of the raw 2-D
  points that join two arms (how much the arms touch);
- ``spectral_raw``: ACC of spectral clustering of the raw points (the graph clustering that
  ``init_clusters: spectral`` uses);

then trains the pipeline's autoencoder on that spiral (params.yaml, one seed) and measures

- ``spectral_latent``: ACC of spectral clustering of its 2-D latents (training split);
- ``mixture_latent``: test ACC of the diagonal Gaussian mixture built from those clusters'
  weights, means and variances, i.e. the start of VaDE and DMVAE with
  ``init_clusters: spectral``, labelling by the most probable component.

The table goes to ``reports/benchmarks/spiral_separability.md`` (raw numbers in
``spiral_separability.json``).

    python bench/spiral_separability.py --noise 0.04 0.03 0.02
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
from quality import add_run_args, bench_params  # bench/ is on sys.path when run as a script
from sklearn.neighbors import kneighbors_graph

from vaemix.baselines import load_latents
from vaemix.config import validate
from vaemix.data import load_prepared, prepare_dataset
from vaemix.distributions import log_normal_diag
from vaemix.io import write_json, write_text
from vaemix.metrics import cluster_accuracy
from vaemix.models.init import SPECTRAL_NEIGHBOURS, mixture_from_labels, spectral_labels
from vaemix.runs import ARTIFACTS, train_and_export


def mixture_predict(mix, z: np.ndarray) -> np.ndarray:
    """argmax_k ln w_k + ln N(z; mu_k, diag var_k), batched over the K components."""
    z_t = torch.as_tensor(z, dtype=torch.float32)[:, None, :]
    log_p = log_normal_diag(z_t, torch.as_tensor(mix.means),
                            torch.as_tensor(np.log(mix.variances)))
    return (log_p + torch.as_tensor(np.log(mix.weights))).argmax(1).numpy()


def measure(params: dict, noise: float, seed: int) -> dict:
    params = copy.deepcopy(params)
    params["data"]["spiral"]["noise"] = noise
    params.update(seed=seed, seeds=[seed], datasets=["spiral"], encoders=["ae"],
                  baseline_encoders=["ae"])
    validate(params)
    k = params["model"]["spiral"]["n_clusters"]
    with tempfile.TemporaryDirectory(prefix="vaemix-spiral-") as scratch:
        cwd = os.getcwd()
        os.chdir(scratch)
        try:
            prepare_dataset("spiral", params, Path("data/prepared/spiral"))
            data = load_prepared("spiral")
            x, y = data.x_train, data.y_train
            graph = kneighbors_graph(x, SPECTRAL_NEIGHBOURS).tocoo()
            row = {"noise": noise, "seed": seed,
                   "cross_edges": float(np.mean(y[graph.row] != y[graph.col])),
                   "spectral_raw": cluster_accuracy(y, spectral_labels(x, k, seed)[1])}
            train_and_export("ae", "spiral", data, params, "pretrain")
            lat = load_latents(ARTIFACTS / "spiral" / "ae" / "latents.npz")
            z, labels = spectral_labels(lat["z_train"], k, seed, max_points=len(x))
            mix = mixture_from_labels(z, labels, k)
            row["spectral_latent"] = cluster_accuracy(lat["y_train"], labels)
            row["mixture_latent"] = cluster_accuracy(lat["y_test"],
                                                     mixture_predict(mix, lat["z_test"]))
        finally:
            os.chdir(cwd)
    print(row, flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--noise", type=float, nargs="+", default=[0.04, 0.03, 0.02])
    ap.add_argument("--seed", type=int, default=0)
    add_run_args(ap, "spiral_separability")
    args = ap.parse_args()
    params = bench_params(args.threads)
    start = time.perf_counter()
    rows = [measure(params, noise, args.seed) for noise in args.noise]
    total = (time.perf_counter() - start) / 60
    command = (f"python bench/spiral_separability.py --noise {' '.join(map(str, args.noise))} "
               f"--seed {args.seed}")
    lines = ["| noise | 10-NN edges joining two arms | spectral ACC, raw points "
             "| spectral ACC, AE latents | Gaussian mixture of those clusters, test ACC |",
             "|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['noise']} | {100 * r['cross_edges']:.2f} % | {r['spectral_raw']:.3f} "
              f"| {r['spectral_latent']:.3f} | {r['mixture_latent']:.3f} |" for r in rows]
    header = (
        "# Spiral: do the arms separate, and does a Gaussian per arm hold them?\n\n"
        f"Command: `{command}`  \nMachine: {platform.processor() or platform.machine()}, "
        f"{args.threads} threads, torch {torch.__version__}; total {total:.1f} min.  \n"
        "Spiral of params.yaml (5 arms, training split) at each noise; the autoencoder is "
        "pretrain.ae of params.yaml (2-D latents), one seed.\n\n"
    )
    write_text(args.out / f"{args.name}.md", header + "\n".join(lines) + "\n")
    write_json(args.out / f"{args.name}.json", {"command": command, "rows": rows})
    print("\n".join(lines))


if __name__ == "__main__":
    main()

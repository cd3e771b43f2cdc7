"""N2D's partition of one set of codes under several UMAP seeds and GMM restart counts: each
partition's ACC, the GMM's mean log-likelihood of the embedding, and the normalised cut of
UMAP's neighbourhood graph (the label-free score that ``init_clusters: umap_or_spectral`` and
the start's guard choose by), and the spectral partition's. Answers whether a start varies
with UMAP's seed or with the GMM's local optimum (``baseline.umap_gmm.n_init``).

    python bench/umap_seeds.py artifacts/spiral/ae/latents.npz --clusters 5 \\
        --seeds 0 1 2 3 4 5 6 7 8 9 --n-init 5 50
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from vaemix.metrics import cluster_accuracy  # noqa: E402
from vaemix.models.init import SPECTRAL_NEIGHBOURS, normalized_cut, spectral_labels  # noqa: E402
from vaemix.umap_gmm import DEFAULTS, fit_gmm, fit_umap_gmm, umap_graph  # noqa: E402


def summary(rows: list[dict], n_init: int) -> dict:
    """Mean, min and max ACC over the UMAP seeds at one restart count."""
    accs = [r["acc"] for r in rows if r.get("n_init") == n_init]
    return {"n_init": n_init, "runs": len(accs), "mean_acc": float(np.mean(accs)),
            "min_acc": float(np.min(accs)), "max_acc": float(np.max(accs))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("latents", help="a latents.npz with z_train and y_train")
    parser.add_argument("--clusters", type=int, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--n-init", type=int, nargs="+", default=[DEFAULTS["n_init"]],
                        help="GMM restart counts, each fitted on every seed's embedding")
    parser.add_argument("--n-neighbors", type=int, default=DEFAULTS["n_neighbors"])
    parser.add_argument("--out", help="write the rows here as JSON")
    args = parser.parse_args()

    data = np.load(args.latents)
    z, y = data["z_train"], data["y_train"]
    graph = umap_graph(z, args.n_neighbors, seed=0)
    settings = {"n_neighbors": args.n_neighbors}
    rows = []
    for seed in args.seeds:
        model, _, _ = fit_umap_gmm(z, args.clusters, seed, {**settings, "n_init": 1})
        embedding = np.asarray(model.embedding.embedding_, dtype=np.float64)
        for n_init in args.n_init:
            gmm = fit_gmm(embedding, args.clusters, seed, {**settings, "n_init": n_init})
            labels = gmm.predict(embedding)
            rows.append({"partition": f"umap seed {seed}", "n_init": n_init,
                         "acc": cluster_accuracy(y, labels),
                         "log_likelihood": float(gmm.score(embedding)),
                         "cut": normalized_cut(graph, labels)})
            print(rows[-1], flush=True)
    _, spectral = spectral_labels(z, args.clusters, 0, SPECTRAL_NEIGHBOURS, len(z))
    spectral = np.asarray(spectral)
    rows.append({"partition": "spectral", "acc": cluster_accuracy(y, spectral),
                 "cut": normalized_cut(graph, spectral)})
    print(rows[-1])
    summaries = [summary(rows, n) for n in args.n_init]
    for line in summaries:
        print(line)
    if args.out:
        Path(args.out).write_text(json.dumps({"rows": rows, "summary": summaries}, indent=1))


if __name__ == "__main__":
    main()

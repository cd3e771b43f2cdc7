"""N2D's partition of one set of codes under several UMAP seeds: each partition's ACC and
its normalised cut of UMAP's neighbourhood graph (the label-free score that
``init_clusters: umap_or_spectral`` and the start's guard choose by), and the spectral
partition's. Answers whether a start could pick the best of several UMAP runs by its cut.

    python bench/umap_seeds.py artifacts/spiral/ae/latents.npz --clusters 5 --seeds 0 1 2 3
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
from vaemix.umap_gmm import DEFAULTS, fit_umap_gmm, umap_graph  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("latents", help="a latents.npz with z_train and y_train")
    parser.add_argument("--clusters", type=int, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--n-neighbors", type=int, default=DEFAULTS["n_neighbors"])
    parser.add_argument("--out", help="write the rows here as JSON")
    args = parser.parse_args()

    data = np.load(args.latents)
    z, y = data["z_train"], data["y_train"]
    graph = umap_graph(z, args.n_neighbors, seed=0)
    rows = []
    for seed in args.seeds:
        _, labels, _ = fit_umap_gmm(z, args.clusters, seed, {"n_neighbors": args.n_neighbors})
        rows.append({"partition": f"umap seed {seed}", "acc": cluster_accuracy(y, labels),
                     "cut": normalized_cut(graph, labels)})
        print(rows[-1], flush=True)
    _, spectral = spectral_labels(z, args.clusters, 0, SPECTRAL_NEIGHBOURS, len(z))
    spectral = np.asarray(spectral)
    rows.append({"partition": "spectral", "acc": cluster_accuracy(y, spectral),
                 "cut": normalized_cut(graph, spectral)})
    print(rows[-1])
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

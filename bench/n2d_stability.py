"""Does clustering stability pick UMAP's neighbourhood size for N2D? A label-free probe.

For each data set (raw 5-arm spirals of several data seeds, or the codes of a latents.npz),
runs vaemix's start on non-image data (``vaemix.start.stable_n2d``): N2D (UMAP + GMM) fitted
from ``--restarts`` seeds at each ``--neighbours`` size, each size's stability (mean pairwise
NMI of its partitions) and the size kept. Labels only score the partitions afterwards (ACC on
the training points, transductive).

    OMP_NUM_THREADS=1 python bench/n2d_stability.py --spiral-seeds 0 1 2 3 \\
        --neighbours 20 50 100 --out reports/benchmarks/n2d_stability_spiral_raw.json
    OMP_NUM_THREADS=1 python bench/n2d_stability.py --latents artifacts/spiral/ae/latents.npz \\
        --clusters 5 --neighbours 20 50 100 --out n2d_stability_codes.json
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from vaemix.data import spiral  # noqa: E402
from vaemix.io import write_json  # noqa: E402
from vaemix.metrics import cluster_accuracy  # noqa: E402
from vaemix.regress import describe, machine  # noqa: E402
from vaemix.start import stable_n2d  # noqa: E402


def spirals(seeds: list[int]) -> Iterator[tuple[str, np.ndarray, np.ndarray, int]]:
    """params.yaml's spiral (data.spiral) for each data seed: its training split, raw, as
    the prepare stage makes it (vaemix.data.spiral.load)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for seed in seeds:
        arrays = spiral.load({**params, "seed": seed})["arrays"]
        yield (f"raw spiral, data seed {seed}", arrays["x_train"], arrays["y_train"],
               params["data"]["spiral"]["arms"])


def latents(path: Path, clusters: int) -> Iterator[tuple[str, np.ndarray, np.ndarray, int]]:
    with np.load(path) as f:
        yield str(path), f["z_train"], f["y_train"], clusters


def probe(name: str, z: np.ndarray, y: np.ndarray, k: int, neighbours: list[int],
          restarts: int) -> dict:
    """One data set's row: each size's stability and ACCs, the size kept and its ACC."""
    choice = stable_n2d(z, k, None, 0, neighbours, restarts, log=name)
    sizes = {n: {"stability": choice.stability[n],
                 "acc": [cluster_accuracy(y, p) for p in choice.partitions[n]]}
             for n in neighbours}
    row = {"data": name, "sizes": sizes, "kept": choice.n_neighbors,
           "kept_acc": cluster_accuracy(y, choice.labels)}
    print(f"{name}: kept {row['kept']} neighbours, ACC {row['kept_acc']:.4f}; " + "; ".join(
        f"{n}: stability {s['stability']:.3f}, ACC {min(s['acc']):.3f}-{max(s['acc']):.3f}"
        for n, s in sizes.items()), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spiral-seeds", type=int, nargs="+", default=[])
    ap.add_argument("--latents", type=Path, help="a latents.npz with z_train and y_train")
    ap.add_argument("--clusters", type=int, help="K for --latents")
    ap.add_argument("--neighbours", type=int, nargs="+", default=[20, 50, 100])
    ap.add_argument("--restarts", type=int, default=3)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    if args.latents and (not args.latents.is_file() or not args.clusters):
        raise SystemExit(f"error: --latents {args.latents}: needs an existing file and --clusters")
    if not args.spiral_seeds and not args.latents:
        raise SystemExit("error: give --spiral-seeds or --latents")
    if args.restarts < 2:
        raise SystemExit(f"error: --restarts {args.restarts}: stability needs at least 2")
    sets = list(spirals(args.spiral_seeds))
    if args.latents:
        sets += list(latents(args.latents, args.clusters))
    rows = [probe(*s, args.neighbours, args.restarts) for s in sets]
    write_json(args.out, {"command": "python " + " ".join(sys.argv),
                          "cpu": describe(machine()), "rows": rows})


if __name__ == "__main__":
    main()

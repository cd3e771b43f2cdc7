"""Which start ``init_clusters: umap_or_spectral`` picks, and whether it picks the better one.

For each autoencoder's latents (``artifacts/<dataset>/ae/latents.npz`` of a ``dvc repro``
or of a ``bench/quality.py`` scratch directory), fits both candidate partitions of the
training latents — the N2D one (UMAP + GMM; read from ``ae+umap_gmm/pred.npz`` beside it
when present, as the pipeline does) and the spectral one — and writes each one's normalised
cut of UMAP's graph (the label-free score the choice uses) next to its ACC against the
true classes (which the choice never sees), to ``reports/benchmarks/<name>.md``:

    python bench/start_choice.py --latents LABEL=PATH[,SEED] [LABEL=PATH[,SEED] ...]

SEED (default ``--seed``) seeds UMAP, the GMM and spectral clustering, as the training seed
of the run that starts from those latents does.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
import yaml

from vaemix.baselines import load_latents
from vaemix.io import write_text
from vaemix.metrics import cluster_accuracy
from vaemix.models.init import choose_by_cut

ROOT = Path(__file__).resolve().parents[1]


def row(label: str, path: Path, seed: int, umap_settings: dict) -> str:
    latents = load_latents(path)
    z, y = latents["z_train"], latents["y_train"]
    k = len(set(y.tolist()))
    pred = path.parent.parent / f"{path.parent.name}+umap_gmm" / "pred.npz"
    start = {"umap": umap_settings, "file": pred if pred.is_file() else None}
    choice = choose_by_cut(z, k, seed, start)
    acc = {name: cluster_accuracy(y, labels) for name, labels in choice.partitions.items()}
    best = max(acc, key=acc.get)
    return (f"| {label} | {len(z)} | {k} | {choice.cuts['umap']:.4f} | {acc['umap']:.4f} | "
            f"{choice.cuts['spectral']:.4f} | {acc['spectral']:.4f} | {choice.chosen} | "
            f"{'yes' if choice.chosen == best else 'no'} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latents", nargs="+", required=True, metavar="LABEL=PATH[,SEED]")
    ap.add_argument("--seed", type=int, default=0, help="SEED where a --latents has none")
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml",
                    help="whose baseline.umap_gmm settings the N2D partition uses")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks")
    ap.add_argument("--name", default="start_choice")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("NUMBA_NUM_THREADS", str(args.threads))
    umap_settings = yaml.safe_load(args.params.read_text())["baseline"]["umap_gmm"]
    lines = [
        "# The start init_clusters: umap_or_spectral picks",
        "",
        "`python bench/start_choice.py --latents "
        + " ".join(args.latents) + "`",
        "",
        "Normalised cut (Shi & Malik 2000) of UMAP's neighbourhood graph of the training "
        "latents for the N2D (UMAP + GMM) and the spectral partition; the start keeps the "
        "smaller cut. ACC (training split) is shown only to judge the choice.",
        "",
        "| latents | points | K | cut umap | ACC umap | cut spectral | ACC spectral | chosen "
        "| chose the better |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for item in args.latents:
        label, _, path = item.partition("=")
        path, _, seed = path.partition(",")
        lines.append(row(label, Path(path), int(seed or args.seed), umap_settings))
        print(lines[-1], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / f"{args.name}.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

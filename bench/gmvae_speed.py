"""Time per training epoch of GMVAE (y summed out, K passes) against Concrete GMVAE (one
Concrete sample, one pass) as K grows, on the MNIST dev split (Collier & Urdiales 2019,
sec. 2: "approximately 4X and 8X faster ... for K=10 and K=20").

Both models use the MNIST networks of ``params.yaml`` (shared encoder, q(y|x) and q(z|x,y)
heads, decoder) from a random start (``init: none``: the start does not change the cost
of a step). The bare autoencoder's epoch on the same networks is timed too, as the floor.
Each model trains ``--epochs`` epochs; the first is a warm-up and is not counted.

    python bench/gmvae_speed.py --raw data/raw --ks 5 10 20 50 --epochs 3

writes ``reports/benchmarks/gmvae_speed.md`` and ``gmvae_speed.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import yaml

from vaemix.config import training_settings, validate
from vaemix.data import load_prepared, prepare_dataset
from vaemix.io import write_json, write_text
from vaemix.models import build_model, spec_from_params
from vaemix.training import TrainConfig, fit, seed_everything, to_tensor

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", type=Path, default=ROOT / "data" / "raw")
    ap.add_argument("--ks", type=int, nargs="+", default=[5, 10, 20, 50])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--max-train", type=int, default=None,
                    help="time on the first N training images only (time per epoch scales "
                         "linearly in N; the ratios do not depend on it)")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks")
    args = ap.parse_args()
    if args.epochs < 2:
        ap.error("--epochs must be at least 2 (the first is a warm-up)")

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["mnist"].update(root=str(args.raw.resolve()), download=False)
    validate(params)
    with tempfile.TemporaryDirectory(prefix="vaemix-speed-") as scratch:
        cwd = os.getcwd()
        os.chdir(scratch)
        try:
            prepare_dataset("mnist", params, Path("data/prepared/mnist"))
            x = to_tensor(load_prepared("mnist").x_train[: args.max_train], torch.device("cpu"))
        finally:
            os.chdir(cwd)

    rows = []
    ae = timed_epochs("ae", 10, params, x, args.epochs)
    for k in args.ks:
        g = timed_epochs("gmvae", k, params, x, args.epochs)
        c = timed_epochs("concrete_gmvae", k, params, x, args.epochs)
        rows.append({"K": k, "gmvae_s": g, "concrete_s": c, "ratio": g / c,
                     "ratio_over_K": g / c / k, "gmvae_over_K_ae": g / (k * ae),
                     "concrete_over_ae": c / ae})
        print(rows[-1], flush=True)

    meta = {
        "command": "python bench/gmvae_speed.py --raw data/raw --ks "
                   + " ".join(map(str, args.ks)) + f" --epochs {args.epochs}"
                   + (f" --max-train {args.max_train}" if args.max_train else ""),
        "n_train": int(len(x)),
        "ae_seconds_per_epoch": ae,
        "torch_threads": torch.get_num_threads(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "date": time.strftime("%Y-%m-%d"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "gmvae_speed.json", {"meta": meta, "rows": rows})
    lines = [
        "# GMVAE vs Concrete GMVAE: seconds per training epoch as K grows",
        "",
        f"MNIST dev split, {meta['n_train']} training images, the `params.yaml` MNIST networks, "
        f"CPU ({meta['machine']}, {meta['torch_threads']} torch threads), median of "
        f"{args.epochs - 1} epochs after a warm-up epoch. Bare `ae` epoch on the same "
        f"networks: {ae:.2f} s.",
        "",
        "| K | GMVAE s/epoch | Concrete s/epoch | speed-up | speed-up / K | target ≥ 0.8·K "
        "| GMVAE / (K · ae) | Concrete / ae |",
        "|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in rows:
        ok = "yes" if r["ratio_over_K"] >= 0.8 else "no"
        lines.append(f"| {r['K']} | {r['gmvae_s']:.2f} | {r['concrete_s']:.2f} | "
                     f"{r['ratio']:.1f}× | {r['ratio_over_K']:.2f} | {ok} | "
                     f"{r['gmvae_over_K_ae']:.2f} | {r['concrete_over_ae']:.2f} |")
    lines += ["", f"Command: `{meta['command']}` ({meta['date']})."]
    write_text(args.out / "gmvae_speed.md", "\n".join(lines) + "\n")


def timed_epochs(method: str, k: int, params: dict, x: torch.Tensor, epochs: int) -> float:
    """Median seconds per epoch after the warm-up epoch."""
    seed_everything(0)
    params = yaml.safe_load(yaml.safe_dump(params))
    params["model"]["mnist"]["n_clusters"] = k
    section = "pretrain" if method == "ae" else "train"
    settings = training_settings(params, section, method, "mnist")
    if method != "ae":
        settings["init"] = "none"
    spec = spec_from_params(params, "mnist", tuple(x.shape[1:]), **settings)
    model = build_model(method, spec)
    times = []
    config = TrainConfig.from_settings(settings, 1, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    for _ in range(epochs):
        start = time.perf_counter()
        fit(model, x, config, desc=f"{method} K={k}", optimizer=opt)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


if __name__ == "__main__":
    main()

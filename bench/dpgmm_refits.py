"""What the DP-GMM refits of GMVAE + DP-GMM do under its paper protocol, refit by refit.

Trains ``gmvae_dpgmm`` as Nagpal et al. 2019 train it (vaemix.protocols; random networks)
on the MNIST dev split at ``--epoch-scale`` of its 100 epochs, with any paper setting
replaced by ``--paper KEY=YAML``, and prints one line per refit: the spread of the
encoder's means over the data, the DP-GMM's weights and mean variance, and how q(y|x)'s
argmax spreads over the components. Used to find why the recipe collapsed
(reports/benchmarks/paper_full_gmvae_dpgmm_collapse.md):

    python bench/dpgmm_refits.py --raw data/raw --epoch-scale 0.1 \\
        --paper refit_on=mean dp_warm_start=true
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from quality import override_paper  # bench/ is on sys.path when run as a script

from vaemix.config import load_params, validate
from vaemix.data import load_prepared, prepare_dataset
from vaemix.models import gmvae_dpgmm
from vaemix.runs import train_and_export
from vaemix.training import batched

ROOT = Path(__file__).resolve().parents[1]


def logged_refit(refit):
    """``GMVAEDPGMM.refit`` that prints the state of the latents and of the fit."""

    def wrapper(model: gmvae_dpgmm.GMVAEDPGMM) -> int:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            z = batched(model.encode, model._refit_data)
            y = batched(lambda x: model.q_y_logits(model.trunk(x)), model._refit_data)
        model.train(was_training)
        n_eff = refit(model)
        print(json.dumps({
            "refit": len(model.refits), "step": int(model.step),
            "latent_spread": round(float(z.std(0).mean()), 4),
            "dp_weights": np.round(model.prior_log_weights.exp().double().numpy(), 3).tolist(),
            "dp_variance": round(float(model.prior_logvar.exp().mean()), 4),
            "q_y_argmax": np.bincount(y.argmax(-1).numpy(),
                                      minlength=model.n_components).tolist(),
            "n_components_effective": n_eff}), flush=True)
        return n_eff

    return wrapper


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", type=Path, default=ROOT / "data" / "raw")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epoch-scale", type=float, default=0.1)
    ap.add_argument("--paper", nargs="*", default=[], metavar="KEY=YAML")
    args = ap.parse_args()
    override_paper([f"gmvae_dpgmm.{item}" for item in args.paper])
    params = load_params(ROOT / "params.yaml")
    params.update(seed=args.seed, seeds=[args.seed])
    params["data"]["mnist"].update(root=str(args.raw.resolve()), download=False)
    params["budget"].update(epoch_scale=args.epoch_scale, paper_epoch_scale=args.epoch_scale)
    validate(params)
    gmvae_dpgmm.GMVAEDPGMM.refit = logged_refit(gmvae_dpgmm.GMVAEDPGMM.refit)
    with tempfile.TemporaryDirectory(prefix="vaemix-dpgmm-") as scratch:
        os.chdir(scratch)
        prepare_dataset("mnist", params, Path("data/prepared/mnist"))
        m = train_and_export("gmvae_dpgmm", "mnist", load_prepared("mnist"), params, "train",
                             init={}, protocol="paper")
    print(json.dumps({k: m.get(k) for k in ("acc", "nmi", "train_acc",
                                             "n_components_effective")}))


if __name__ == "__main__":
    main()

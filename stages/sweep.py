"""DVC stages of the latent-dimension sweep (Nagpal et al. 2019, Tables 1-2).

The same models as the main stages, with ``model.<dataset>.latent_dim`` replaced by d and
every output named ``<run>_z<d>`` (``reports/metrics/<dataset>/<run>_z<d>.json``,
``artifacts/<dataset>/<run>_z<d>/``):

  python stages/sweep.py pretrain <dataset> <encoder> <d>     pretrain_z@: ae_z<d>, vae_z<d>
  python stages/sweep.py train <dataset> <run> <d>            train_z@: e.g. gmvae_z<d>,
                                                              gmvae_dpgmm_hard_z<d>
  python stages/sweep.py from_gmvae <dataset> gmvae_dpgmm <d> from_gmvae_z@: the alternating
                          network started from gmvae_z<d> (their third experiment)
  python stages/sweep.py baselines <dataset> <encoder> <baseline> <d>
                                                              baselines_z@: vae_z<d>+gmm, ...

A run of ``latent_sweep.runs`` is a method of ``methods`` trained as its paper trains it
(the ``paper`` protocol, vaemix.protocols: the sweep reproduces Nagpal et al.'s tables, so
it runs their recipe, not vaemix's start), or one of the two Gumbel variants of the
alternating network, ``gmvae_dpgmm_soft`` / ``gmvae_dpgmm_hard`` (its recipe with ``hard``
false / true). Nagpal et al. train every network of those tables from random weights (sec.
4.4), so the sweep pretrains no autoencoder for its runs: a recipe that starts from one
(VaDE's, DEC's) is refused before any work. ``latent_sweep.encoders`` (the VAE) are
pretrained at each d for the baselines alone. Every run goes over every seed of ``seeds``.
The sweep runs on every dataset of ``datasets``.
"""

from __future__ import annotations

import copy
from typing import Any

from vaemix.cli import run_stage

USAGE = ("usage: python stages/sweep.py pretrain <dataset> <encoder> <d> | train <dataset> "
         "<run> <d> | from_gmvae <dataset> gmvae_dpgmm <d> | baselines <dataset> <encoder> "
         "<baseline> <d>")


def _at_latent_dim(params: dict[str, Any], dataset: str, d: int) -> dict[str, Any]:
    out = copy.deepcopy(params)
    out["model"][dataset]["latent_dim"] = d
    return out


def main(argv: list[str]) -> None:
    from vaemix.config import SWEEP_VARIANTS, load_params, require_listed
    from vaemix.errors import ParamError
    from vaemix.run_ids import run_name

    if not argv or argv[0] not in ("pretrain", "train", "from_gmvae", "baselines"):
        raise ParamError(USAGE)
    kind, args = argv[0], argv[1:]
    sizes = {"pretrain": 3, "train": 3, "from_gmvae": 3, "baselines": 4}
    if len(args) != sizes[kind] or not args[-1].isdigit():
        raise ParamError(USAGE)
    dataset, d = args[0], int(args[-1])
    params = load_params()
    require_listed(params, "datasets", dataset)
    if d not in params["latent_sweep"]["latent_dims"]:
        raise ParamError(f"params.yaml: 'latent_sweep.latent_dims' does not list {d} "
                         f"(it has {params['latent_sweep']['latent_dims']})")
    swept = _at_latent_dim(params, dataset, d)

    from vaemix.data import load_prepared
    from vaemix.runs import ARTIFACTS, train_and_export

    if kind == "pretrain":
        encoder = args[1]
        require_listed(params, "latent_sweep.encoders", encoder)
        train_and_export(encoder, dataset, load_prepared(dataset), swept, "pretrain",
                         name=run_name(encoder, d))
    elif kind in ("train", "from_gmvae"):
        if kind == "train":
            run = args[1]
            require_listed(params, "latent_sweep.runs", run)
            method, overrides = SWEEP_VARIANTS.get(run, (run, {}))
            _require_random_start(run, method, dataset, overrides)
            init: dict[str, Any] = {}   # the model's own start from random networks
        else:
            method, overrides = args[1], {"init": "gmvae"}
            require_listed(params, "latent_sweep.from_gmvae", method)
            run = f"{method}_from_gmvae"
            init = {"gmvae_checkpoint": ARTIFACTS / dataset / run_name("gmvae", d) / "model.pt"}
        train_and_export(method, dataset, load_prepared(dataset), swept, "train", init=init,
                         name=run_name(run, d), protocol="paper", overrides=overrides)
    else:
        _baselines(params, dataset, args[1], args[2], d)


def _require_random_start(run: str, method: str, dataset: str,
                          overrides: dict[str, Any]) -> None:
    """Refuse a sweep run whose paper recipe starts from a pretrained autoencoder: the
    sweep's DAG pretrains none for its runs (``train_z@`` depends on no ``ae_z<d>``)."""
    from vaemix.errors import ParamError
    from vaemix.models import model_class
    from vaemix.protocols import paper_settings

    cls = model_class(method)
    if cls.paper is not None:
        settings = paper_settings(method, cls.paper, dataset)
    else:   # a method without a cited recipe: its declared option defaults
        settings = {k: spec.default for k, spec in cls.options.items()}
    if {**settings, **overrides}.get("init") == "ae":
        raise ParamError(f"params.yaml: 'latent_sweep.runs' has {run!r}, whose paper recipe "
                         "starts from a pretrained autoencoder; the sweep runs recipes that "
                         "start from random networks (Nagpal et al. 2019, sec. 4.4)")


def _baselines(params: dict[str, Any], dataset: str, encoder: str, baseline: str,
               d: int) -> None:
    from vaemix.baselines import run_baseline
    from vaemix.config import require_listed
    from vaemix.run_ids import run_name

    require_listed(params, "latent_sweep.baseline_encoders", encoder)
    require_listed(params, "baselines", baseline)
    run_baseline(params, dataset, run_name(encoder, d), baseline)


if __name__ == "__main__":
    run_stage(main)

"""The method registry: every trainable model by its id in params.yaml.

A new method adds one module here and one entry in ``MODELS`` (and its id in
``vaemix.config.METHODS``); the stages, training loop and metrics pick it up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vaemix.config import TRAINING_KEYS, refuse_unknown, training_settings
from vaemix.models.ae import VAE, AutoEncoder
from vaemix.models.base import Model, ModelSpec
from vaemix.models.concrete_gmvae import ConcreteGMVAE
from vaemix.models.dmvae import DMVAE
from vaemix.models.gmvae import GMVAE
from vaemix.models.gmvae_dpgmm import GMVAEDPGMM
from vaemix.models.movae import MoVAE
from vaemix.models.vade import VaDE

MODELS: dict[str, type[Model]] = {
    "ae": AutoEncoder,
    "vae": VAE,
    "dmvae": DMVAE,
    "movae": MoVAE,
    "vade": VaDE,
    "gmvae": GMVAE,
    "concrete_gmvae": ConcreteGMVAE,
    "gmvae_dpgmm": GMVAEDPGMM,
}


def spec_from_params(
    params: Mapping[str, Any], dataset: str, input_shape: tuple[int, ...], **options: Any
) -> ModelSpec:
    """Build the ModelSpec of ``dataset`` from its ``model.<dataset>`` params section."""
    m = params["model"][dataset]
    return ModelSpec(
        input_shape=tuple(int(s) for s in input_shape),
        latent_dim=int(m["latent_dim"]),
        n_clusters=int(m["n_clusters"]),
        net=str(m["net"]),
        hidden=tuple(int(h) for h in m["hidden"]),
        likelihood=str(m["likelihood"]),
        options=dict(options),
    )


def check_options(name: str, settings: Mapping[str, Any],
                  where: str | None = None) -> dict[str, Any]:
    """The options of the model ``name`` in ``settings`` (its params section, per-dataset
    overrides merged), checked before any work: a key neither the model (its ``options``)
    nor the training loop (vaemix.config.TRAINING) declares stops here with the closest
    one ("'train.vade.lrr': unknown key; did you mean 'lr'?"), a bad value with its key
    (under ``where``, default the model's section)."""
    model = MODELS[name]
    refuse_unknown(where or model.section, settings, TRAINING_KEYS | set(model.options))
    return model.parse_options(settings, where)


def check_model_sections(params: Mapping[str, Any]) -> None:
    """:func:`check_options` for every pretrain.<encoder> and train.<method> that
    ``params`` runs, and for each of their ``per_dataset`` overrides (named as such)."""
    for section, names in (("pretrain", params["encoders"]), ("train", params["methods"])):
        for name in names:
            base = params[section][name]
            check_options(name, {k: v for k, v in base.items() if k != "per_dataset"})
            for ds, over in (base.get("per_dataset") or {}).items():
                where = f"{section}.{name}.per_dataset.{ds}"
                refuse_unknown(where, over, TRAINING_KEYS | set(MODELS[name].options))
                check_options(name, training_settings(params, section, name, ds), where)


def build_model(name: str, spec: ModelSpec) -> Model:
    if name not in MODELS:
        raise KeyError(f"unknown method {name!r} (known: {', '.join(sorted(MODELS))})")
    check_options(name, spec.options)
    return MODELS[name](spec)


__all__ = ["MODELS", "Model", "ModelSpec", "build_model", "check_model_sections", "check_options",
           "spec_from_params"]

"""The method registry: every trainable model by its id in params.yaml.

A new method adds one module here and one entry in ``MODELS`` (and its id in
``vaemix.config.METHODS``); the stages, training loop and metrics pick it up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vaemix.config import ENCODERS, TRAINING_KEYS, refuse_unknown
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


def check_option_keys(name: str, options: Mapping[str, Any]) -> None:
    """An option neither the model ``name`` (its ``option_keys``) nor the training loop
    (vaemix.config.TRAINING_KEYS) knows stops here, named as its params key with the
    closest known one ("'train.vade.lrr': unknown key; did you mean 'lr'?")."""
    section = f"{'pretrain' if name in ENCODERS else 'train'}.{name}"
    refuse_unknown(section, options, TRAINING_KEYS | MODELS[name].option_keys)


def build_model(name: str, spec: ModelSpec) -> Model:
    if name not in MODELS:
        raise KeyError(f"unknown method {name!r} (known: {', '.join(sorted(MODELS))})")
    check_option_keys(name, spec.options)
    return MODELS[name](spec)


__all__ = ["MODELS", "Model", "ModelSpec", "build_model", "check_option_keys",
           "spec_from_params"]

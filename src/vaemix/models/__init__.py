"""The method registry: every trainable model by its id in params.yaml, imported by name.

A method is one module of this package that sets ``METHOD`` to its :class:`Model` subclass
(``vaemix.registry`` finds it; ``vaemix/models/foo.py`` is the method ``foo``). The class
declares everything the pipeline needs (:class:`vaemix.models.base.Model`): its params
section and a default for every key (``options``, ``defaults``), its start hooks
(``initialise``, ``start_labels``), whether it learns its K (``learns_k``) and its paper's
recipe (``paper``). Naming it in ``methods`` of params.yaml is the only other step; a
``train.<id>`` section there overrides the declared defaults. A module is imported when its
method is first built or checked, so a stage that trains VaDE imports no other model.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any

from vaemix.config import TRAINING_KEYS, refuse_unknown, training_settings
from vaemix.errors import ParamError
from vaemix.models.base import Model, ModelSpec
from vaemix.registry import method_names

# The autoencoders of the pretrain@ stages live together in vaemix.models.ae; ae_da is the
# same autoencoder under DEC-DA's pretraining settings (pretrain.ae_da, vaemix.start).
ENCODER_CLASSES = {"ae": "AutoEncoder", "ae_da": "AutoEncoder", "vae": "VAE"}


def model_class(name: str) -> type[Model]:
    """The class of method or encoder ``name``, its module imported on first use."""
    if name in ENCODER_CLASSES:
        module, attr = "ae", ENCODER_CLASSES[name]
    elif name in method_names():
        module, attr = name, "METHOD"
    else:
        known = ", ".join((*ENCODER_CLASSES, *method_names()))
        raise KeyError(f"unknown method {name!r} (known: {known})")
    cls = getattr(importlib.import_module(f"vaemix.models.{module}"), attr)
    if not (isinstance(cls, type) and issubclass(cls, Model)):
        raise TypeError(f"vaemix/models/{module}.py: {attr} must be a Model subclass")
    return cls


class _Registry(Mapping[str, type[Model]]):
    """``MODELS[name]``: :func:`model_class`; iterating lists every name without imports."""

    def __getitem__(self, name: str) -> type[Model]:
        try:
            return model_class(name)
        except KeyError as err:
            raise KeyError(name) from err

    def __iter__(self) -> Iterator[str]:
        return iter((*ENCODER_CLASSES, *method_names()))

    def __len__(self) -> int:
        return len(ENCODER_CLASSES) + len(method_names())


MODELS: Mapping[str, type[Model]] = _Registry()


def spec_from_params(
    params: Mapping[str, Any], dataset: str, input_shape: tuple[int, ...], **options: Any
) -> ModelSpec:
    """Build the ModelSpec of ``dataset`` from its ``model.<dataset>`` params section; a
    run's own ``net`` option (vaemix.config.TRAINING) replaces the section's network."""
    m = params["model"][dataset]
    net = str(options.get("net") or m["net"])
    if net != "mlp" and len(input_shape) != 3:
        key = ("the 'net' of this run's section" if options.get("net")
               else f"'model.{dataset}.net'")
        raise ParamError(f"params.yaml: {key} is {net!r}, a network for images [C, H, W], but "
                         f"{dataset}'s inputs have shape {tuple(input_shape)}")
    return ModelSpec(
        input_shape=tuple(int(s) for s in input_shape),
        latent_dim=int(m["latent_dim"]),
        n_clusters=int(m["n_clusters"]),
        net=net,
        hidden=tuple(int(h) for h in m["hidden"]),
        likelihood=str(m["likelihood"]),
        options=dict(options),
    )


def method_settings(params: Mapping[str, Any], section: str, name: str,
                    dataset: str | None) -> dict[str, Any]:
    """The settings of ``name`` on ``dataset``: the class's declared ``defaults`` under its
    ``<section>.<name>`` params section (absent: the defaults alone) and that section's
    ``per_dataset`` overrides."""
    settings = {**model_class(name).defaults,
                **training_settings(params, section, name, dataset)}
    for key in ("epochs", "batch_size", "lr"):   # the training loop's keys without a default
        if key not in settings:
            raise ParamError(f"params.yaml: missing key '{section}.{name}.{key}' (the model "
                             f"class {model_class(name).__name__} declares no default)")
    return settings


def check_options(name: str, settings: Mapping[str, Any],
                  where: str | None = None) -> dict[str, Any]:
    """The options of the model ``name`` in ``settings`` (its params section, per-dataset
    overrides merged), checked before any work: a key neither the model (its ``options``)
    nor the training loop (vaemix.config.TRAINING) declares stops here with the closest
    one ("'train.vade.lrr': unknown key; did you mean 'lr'?"), a bad value with its key
    (under ``where``, default the model's section)."""
    model = model_class(name)
    refuse_unknown(where or model.section, settings, TRAINING_KEYS | set(model.options))
    return model.parse_options(settings, where)


def check_model_sections(params: Mapping[str, Any], only: str | None = None) -> None:
    """:func:`check_options` for every pretrain.<encoder> and train.<method> that
    ``params`` runs (``only``: that one alone, so that a stage imports its own model only),
    and for each of their ``per_dataset`` overrides (named as such)."""
    for section, names in (("pretrain", params["encoders"]), ("train", params["methods"])):
        for name in names:
            if only is not None and name != only:
                continue
            check_options(name, method_settings(params, section, name, None), f"{section}.{name}")
            raw = (params.get(section) or {}).get(name) or {}
            for ds, over in (raw.get("per_dataset") or {}).items():
                where = f"{section}.{name}.per_dataset.{ds}"
                refuse_unknown(where, over, TRAINING_KEYS | set(model_class(name).options))
                check_options(name, method_settings(params, section, name, ds), where)


def build_model(name: str, spec: ModelSpec) -> Model:
    check_options(name, spec.options)
    return model_class(name)(spec)


__all__ = ["MODELS", "Model", "ModelSpec", "build_model", "check_model_sections", "check_options",
           "method_names", "method_settings", "model_class", "spec_from_params"]

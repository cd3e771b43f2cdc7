"""The two protocols every mixture model runs under.

- ``paper`` (runs named ``<method>_paper``): the method exactly as its paper trains it:
  its start, optimiser, learning rate and schedules, batch size and epochs (scaled by
  ``budget.epoch_scale`` like every run, or by ``budget.paper_epoch_scale`` when that is
  set: :func:`paper_budget`; the CPU profile shortens the paper runs alone that way).
  Where the paper is silent, its authors' public code. The model class declares these
  settings in its ``paper`` attribute, a :class:`Recipe` of :class:`Cited` values, each
  with its source; params.yaml does not change them. The paper protocol has no N2D start,
  no warm-up on a start's partition and no anchor: :func:`paper_settings` refuses a recipe
  that has any of them.
- The gradient-trained mixture-of-experts gates (``moe_<gate>_paper_z<d>``) keep their
  ``moe.<gate>`` training keys, where Singh et al. 2018 give none, and take the start of
  their sec. 8.2: random networks, no warm-up, no anchor (:data:`MOE_PAPER_START`).
- ``vaemix`` (runs named ``<method>``): the ``train.<method>`` section of params.yaml,
  vaemix's start (the N2D partition, the warm-up on it, the anchor).

Every "does it hold?" verdict on a paper's claim is computed from the ``paper`` runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PROTOCOLS = ("vaemix", "paper")
PAPER_SUFFIX = "_paper"
OTHER_START_SUFFIX = "_other_start"   # the recipe from the other start (ae <-> none)

# What only vaemix's protocol has, and the value a paper recipe must give it.
VAEMIX_START = {"self_train_epochs": 0, "anchor_weight": 0.0, "augment_shift": 0.0,
                "augment_rotate": 0.0, "self_paced": False, "relabel": False}
# The MoE gates' paper start (Singh et al. 2018, sec. 8.2: DVMoE and DeepMoE are trained
# from random networks on the joint objective of sec. 7; vaemix.moe.run.start_settings).
MOE_PAPER_START = {"init": "none", "self_train_epochs": 0, "anchor_weight": 0.0}
# Starts that are clusterings of vaemix's (the N2D partition and its relatives).
VAEMIX_PARTITIONS = ("umap", "umap_or_spectral", "spectral", "spectral_consensus")


@dataclass(frozen=True)
class Cited:
    """One setting of a paper's recipe and where it comes from."""

    value: Any
    source: str


@dataclass(frozen=True)
class Published:
    """A score a paper reports for its method, transductive (fitted and scored on the same
    images): ``on`` says which images, ``source`` where the number is printed."""

    acc: float
    nmi: float | None
    on: str
    source: str

    def metrics(self) -> dict[str, Any]:
        """As the paper run's metrics file carries it (the report quotes it beside ours)."""
        return {"published_acc": self.acc, "published_nmi": self.nmi,
                "published_on": self.on, "published_source": self.source}


@dataclass(frozen=True)
class Recipe:
    """A method's settings as its paper trains it: the keys of its params section (the
    training loop's and the method's own), each :class:`Cited`; ``per_dataset`` replaces
    some of them on one dataset, as ``per_dataset`` does in params.yaml. ``published``:
    the paper's own scores, by dataset."""

    settings: Mapping[str, Cited]
    per_dataset: Mapping[str, Mapping[str, Cited]] = field(default_factory=dict)
    published: Mapping[str, Published] = field(default_factory=dict)

    def cited(self, dataset: str | None) -> dict[str, Cited]:
        """The recipe on ``dataset``: its settings with that dataset's replacements."""
        out = dict(self.settings)
        if dataset is not None:
            out.update(self.per_dataset.get(dataset, {}))
        return out

    def values(self, dataset: str | None) -> dict[str, Any]:
        return {k: c.value for k, c in self.cited(dataset).items()}


def paper_run(method: str) -> str:
    """The run name of ``method`` under the paper protocol (``vade`` -> ``vade_paper``)."""
    return method + PAPER_SUFFIX


def split_run(name: str) -> tuple[str, str]:
    """(method, protocol) of a run name: ``vade_paper`` and ``vade_paper_other_start`` ->
    (``vade``, ``paper``); ``vade`` -> (``vade``, ``vaemix``)."""
    for suffix in (PAPER_SUFFIX + OTHER_START_SUFFIX, PAPER_SUFFIX):
        if name.endswith(suffix):
            return name[: -len(suffix)], "paper"
    return name, "vaemix"


def paper_settings(method: str, recipe: Recipe | None, dataset: str | None) -> dict[str, Any]:
    """The settings of ``method``'s paper run on ``dataset``, checked to hold none of
    vaemix's start (a ValueError names the key: that is a bug in the recipe)."""
    if recipe is None:
        raise ValueError(f"{method}: the model declares no paper recipe")
    values = recipe.values(dataset)
    for key, value in VAEMIX_START.items():
        if values.get(key, value) != value:
            raise ValueError(f"{method}: the paper recipe sets {key}={values[key]!r}; the "
                             f"paper protocol has no warm-up, no anchor and no augmentation "
                             f"({key}: {value})")
        values[key] = value
    if values.get("init_clusters") in VAEMIX_PARTITIONS:
        raise ValueError(f"{method}: the paper recipe starts from vaemix's partition "
                         f"{values['init_clusters']!r}")
    return values


def sources(recipe: Recipe, dataset: str | None) -> dict[str, str]:
    """Each setting's source on ``dataset`` (for the metrics file and the report)."""
    return {k: c.source for k, c in recipe.cited(dataset).items()}


def other_start_run(method: str) -> str:
    """The paper recipe of ``method`` from the other start (pretrained <-> random), for
    Singh et al.'s claim on robustness to the start (``vade_paper_other_start``)."""
    return paper_run(method) + OTHER_START_SUFFIX


def other_start(recipe: Recipe, dataset: str | None) -> dict[str, str]:
    """The override that flips a recipe's start: ``init`` ae <-> none."""
    return {"init": "none" if recipe.values(dataset).get("init", "none") != "none" else "ae"}


def paper_budget(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` as a paper run sees them: ``budget.epoch_scale`` replaced by
    ``budget.paper_epoch_scale`` when that is set (not null)."""
    budget = dict(params["budget"])
    scale = budget.get("paper_epoch_scale")
    if scale is not None:
        budget["epoch_scale"] = scale
    return {**params, "budget": budget}


def moe_paper_run(gate: str) -> str:
    """The gate name of a MoE gate's paper run (``dvmoe_paper``: ``moe_dvmoe_paper_z2``)."""
    return gate + PAPER_SUFFIX

"""Loading and validating ``params.yaml``.

Every key is declared once, with its type, range and default, in :data:`SCHEMA` (the
models declare their own options in their modules; :mod:`vaemix.schema`). Every stage
calls :func:`load_params` first: an unknown key is refused with the closest declared one,
a bad value raises :class:`ParamError` whose message names the key and what was expected;
the stage runner turns it into one line on stderr and a non-zero exit before anything is
written. Stages read values through :func:`read`, which checks them against the schema.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from vaemix.errors import ParamError
from vaemix.protocols import paper_run, split_run
from vaemix.registry import method_names
from vaemix.schema import (
    REQUIRED,
    Any_,
    Bool,
    Int,
    IntList,
    Key,
    Names,
    Number,
    OneOf,
    Section,
    Text,
    fail,
    is_int,
    parse_section,
)
from vaemix.schema import refuse_unknown as schema_refuse_unknown

DATASETS = ("mnist", "spiral", "cifar100", "npz")
ENCODERS = ("ae", "ae_da", "vae")   # ae_da: DEC-DA's pretraining, vaemix's start on images
# Mixture models trained by train@<dataset>-<method>: every module of vaemix.models that
# declares a METHOD (vaemix.registry); its train.<method> section of params.yaml is optional
# (the model class declares a default for every key).
METHODS: tuple[str, ...] = method_names()
# The same methods as their papers train them (vaemix.protocols): train_paper@ stages
PAPER_METHODS: tuple[str, ...] = tuple(paper_run(m) for m in METHODS)
BASELINES = ("kmeans", "gmm", "dpgmm", "umap_gmm")
# Mixture-of-experts gates (vaemix.moe.model). Those with a latent space are swept over
# moe.latent_dims (stage moe@<dataset>-<gate>-<d>); the others run once (moe_plain@).
LATENT_GATES = ("dvmoe", "vade_moe")
PLAIN_GATES = ("deepmoe", "gmm_moe", "linear", "oracle")
GATES: tuple[str, ...] = LATENT_GATES + PLAIN_GATES
# Runs of the latent-dimension sweep (latent_sweep.runs; stages/sweep.py) beyond METHODS:
# the two Gumbel variants of the alternating network of Nagpal et al. 2019.
SWEEP_VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "gmvae_dpgmm_soft": ("gmvae_dpgmm", {"hard": False}),
    "gmvae_dpgmm_hard": ("gmvae_dpgmm", {"hard": True}),
}
NETS = ("mlp", "conv", "cae")   # vaemix.networks
LIKELIHOODS = ("bernoulli", "gaussian")
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
PRECISIONS = ("fp32", "bf16")  # bf16: forward passes under torch.autocast (training only)

Params = dict[str, Any]

# --- the schema: every key of params.yaml, declared once (vaemix.schema) ---------------
# The options of pretrain.<encoder> and train.<method> are the models' own (their module's
# ``options``, checked by vaemix.models.check_options before a stage does any work) beside
# the training loop's, TRAINING.
POSITIVE, NONNEG = Number(), Number(strict=False)
FRACTION = Number(high=1.0)
FRACTION_OR_0 = Number(high=1.0, strict=False)
COVARIANCES = OneOf(("full", "tied", "diag", "spherical"))
TRAINING: Section = {   # the training loop (vaemix.training.TrainConfig)
    "epochs": Key(Int()),
    "batch_size": Key(Int()),
    "lr": Key(POSITIVE),
    "weight_decay": Key(NONNEG, 0.0),
    "eval_every": Key(Int(), 5),
    "lr_decay": Key(POSITIVE, 1.0),        # the learning rate times this ...
    "lr_decay_every": Key(Int(), 10),      # ... every this many epochs ...
    "lr_min": Key(NONNEG, 0.0),            # ... never below this
    "optimizer": Key(OneOf(("adam", "sgd")), "adam"),   # sgd: DEC's (Xie et al. 2016)
    "momentum": Key(FRACTION_OR_0, 0.0),   # SGD's momentum
    "adam_eps": Key(POSITIVE, 1e-8),       # Adam's epsilon
    "grad_clip": Key(Number(nullable=True), None),   # max gradient norm; null = none
    "checkpoint_every": Key(Int(0), 5),    # epochs between checkpoints; 0 = none
    "max_loss_growth": Key(Number(nullable=True), 1e4),  # divergence guard; null = off
    "anchor_weight": Key(NONNEG, 0.0),     # the start's cross-entropy kept (training.Anchor)
    # images: the warm-up's and the anchor's cross-entropy on a copy shifted by up to this
    # fraction of the side and rotated by up to this many degrees (vaemix.augment) ...
    "augment_shift": Key(Number(strict=False, high=0.5, high_open=False), 0.0),
    "augment_rotate": Key(Number(strict=False, high=180.0, high_open=False), 0.0),
    "self_paced": Key(Bool(), False),      # ... on the confident samples first (ASPC-DA)
    "relabel": Key(Bool(), False),         # the anchor's labels: the model's own, each epoch
    "per_dataset": Key(Any_(), None),      # {dataset: {key: value}} overrides
    "net": Key(OneOf(NETS, nullable=True), None),   # this run's network; null = model.<dataset>'s
}
TRAINING_KEYS = frozenset(TRAINING)
GATE_START: Section = {   # the start of the trained MoE gates (vaemix.moe.run.start_settings)
    "hidden": Key(IntList(nullable=True), None),
    "init": Key(OneOf(("start", "none")), "start"),
    "self_train_epochs": Key(Int(0), 30),
    "self_train_weight": Key(POSITIVE, 10.0),
    "start_ridge": Key(NONNEG, 1e-3),
}
DVMOE: Section = {
    "vae_weight": Key(NONNEG), "tau_start": Key(POSITIVE), "tau_end": Key(POSITIVE),
    "tau_anneal_epochs": Key(Int(0)), "hard": Key(Bool()),
    "prior": Key(OneOf(("uniform", "learned"))),
}
VADE_MOE: Section = {"vae_weight": Key(NONNEG), "mc_samples": Key(Int())}
UMAP_GMM: Section = {   # N2D: UMAP of the latents, then a GMM (vaemix.umap_gmm)
    "n_neighbors": Key(Int(2)),
    "n_components": Key(Int(nullable=True), None),
    "min_dist": Key(NONNEG),
    "covariance_type": Key(COVARIANCES),
    "n_init": Key(Int()),
    "max_points": Key(Int(nullable=True), None),
}
_NESTED = Key(Any_())
SCHEMA: dict[str, Section] = {
    "": {
        "profile": Key(Text(), "full"),
        "seed": Key(Int(0)),
        "seeds": Key(Any_(), None),   # seed_list below
        "device": Key(Any_()),        # _DEVICE_RE below
        "precision": Key(OneOf(PRECISIONS)),
        "datasets": Key(Names(DATASETS)),
        "encoders": Key(Names(ENCODERS)),
        "methods": Key(Names(METHODS)),
        "baselines": Key(Names(BASELINES)),
        "baseline_encoders": Key(Names(ENCODERS + METHODS + PAPER_METHODS)),
        # methods also trained by their paper's recipe from the other start (pretrained <->
        # random; Singh et al. 2018, sec. 8.1): runs <method>_paper_other_start
        "paper_starts": Key(Names(METHODS), []),
        "collapse_fraction": Key(FRACTION, 0.5),
        **{k: _NESTED for k in ("distributed", "budget", "data", "regression", "model",
                                "pretrain", "train", "baseline", "moe", "start")},
        "latent_sweep": Key(Any_(), None),
    },
    "distributed": {"nproc_per_node": Key(Int()),
                    "backend": Key(OneOf(("auto", "gloo", "nccl")))},
    "budget": {"epoch_scale": Key(POSITIVE),
               "paper_epoch_scale": Key(Number(nullable=True), None),  # vaemix.protocols
               "max_train": Key(Int(nullable=True)),
               "max_test": Key(Int(nullable=True))},
    "data": {ds: Key(Any_(), None) for ds in DATASETS},
    "data.mnist": {"root": Key(Text()), "download": Key(Bool())},
    "data.cifar100": {"root": Key(Text()), "download": Key(Bool())},
    "data.spiral": {"arms": Key(Int()), "points_per_arm": Key(Int()), "turns": Key(POSITIVE),
                    "noise": Key(NONNEG), "test_fraction": Key(FRACTION)},
    # test_fraction 0: transductive, the test split is every image (vaemix.data.npz)
    "data.npz": {"path": Key(Text()), "test_fraction": Key(Number(high=1.0, strict=False))},
    "regression": {"mode": Key(OneOf(("per_class", "global"))), "out_dim": Key(Int()),
                   "noise": Key(NONNEG)},
    "model": {ds: Key(Any_(), None) for ds in DATASETS},
    **{f"model.{ds}": {"n_clusters": Key(Int()), "latent_dim": Key(Int()),
                       "net": Key(OneOf(NETS)), "hidden": Key(IntList()),
                       "likelihood": Key(OneOf(LIKELIHOODS))} for ds in DATASETS},
    "pretrain": {enc: Key(Any_(), None) for enc in ENCODERS},
    "start": {"dec_da_on": Key(Names(DATASETS)), "dec": Key(Any_()),    # vaemix.start
              "guard_from": Key(OneOf(("kmeans", "umap"), nullable=True), None),
              "guard_margin": Key(Number(strict=False, high=1.0), 0.0),
              # non-image data: N2D's neighbourhood chosen by stability (vaemix.start)
              "n2d_neighbours": Key(IntList(nullable=True), None),
              "n2d_restarts": Key(Int(low=2), 3)},
    "train": {m: Key(Any_(), None) for m in METHODS},
    "baseline": {b: Key(Any_(), None) for b in BASELINES},
    "baseline.kmeans": {"n_init": Key(Int())},
    "baseline.gmm": {"covariance_type": Key(COVARIANCES), "n_init": Key(Int()),
                     "max_iter": Key(Int())},
    "baseline.dpgmm": {"covariance_type": Key(COVARIANCES),
                       "truncation_factor": Key(Number(low=1.0)),
                       "weight_concentration_prior": Key(Number(nullable=True), None),
                       "degrees_of_freedom_prior": Key(Number(nullable=True), None),
                       "max_iter": Key(Int()), "min_weight": Key(FRACTION)},
    "baseline.umap_gmm": UMAP_GMM,
    "latent_sweep": {"latent_dims": Key(Any_()),      # checked with the others below
                     "runs": Key(Names(METHODS + tuple(SWEEP_VARIANTS))),
                     "from_gmvae": Key(Any_()),
                     "encoders": Key(Names(ENCODERS)),   # [] = only the runs
                     "baseline_encoders": Key(Names(ENCODERS + METHODS))},
    "moe": {"gates": Key(Any_()), "latent_dims": Key(Any_(), []),
            "plain_gates": Key(Names(PLAIN_GATES)),
            "paper_gates": Key(Names(LATENT_GATES), []),        # also run as their paper
            "paper_plain_gates": Key(Names(("deepmoe",)), []),  # trains them: vaemix.protocols
            "n_experts": Key(Int(nullable=True), None),
            "objective": Key(OneOf(("likelihood", "mse"))),
            **{g: Key(Any_(), None) for g in GATES}},
    "moe.dvmoe": {**TRAINING, **GATE_START, **DVMOE},
    "moe.vade_moe": {**TRAINING, **GATE_START, **VADE_MOE},
    "moe.deepmoe": {**TRAINING, **GATE_START},
    "moe.gmm_moe": {"pca_dim": Key(Int(nullable=True), None), "max_iter": Key(Int()),
                    "tol": Key(NONNEG), "reg_covar": Key(NONNEG), "ridge": Key(NONNEG)},
    "moe.linear": {"ridge": Key(NONNEG)},
    "moe.oracle": {"ridge": Key(NONNEG)},
}
# Keys that once existed, each with what replaced it (an old params.yaml gets this instead
# of a "did you mean").
RETIRED_KEYS = {
    "latent_sweep.datasets": "the sweep runs on every dataset of 'datasets' (leave a dataset "
                             "out there); 'latent_sweep.latent_dims: []' switches it off",
}


def refuse_unknown(where: str, keys: Iterable[Any], known: Iterable[str]) -> None:
    """:func:`vaemix.schema.refuse_unknown` with the retired keys of params.yaml."""
    schema_refuse_unknown(where, keys, known, RETIRED_KEYS)


def _node(params: Mapping[str, Any], where: str) -> Any:
    node: Any = params
    for part in where.split(".") if where else []:
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def _key_spec(key: str) -> Key:
    where, _, last = key.rpartition(".")
    section = SCHEMA.get(where)
    if section is None or last not in section:
        raise KeyError(f"{key!r} is not declared in vaemix.config.SCHEMA")
    return section[last]


def read(params: Mapping[str, Any], key: str) -> Any:
    """The value of the dotted ``key``, checked against its declared type (a missing key,
    or a bad value, raises ParamError naming it)."""
    return _key_spec(key).type.check(key, get(params, key))


def get(params: Mapping[str, Any], key: str) -> Any:
    """Look up a dotted key; a missing key raises ParamError naming it."""
    node: Any = params
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise ParamError(f"params.yaml: missing key '{key}'")
        node = node[part]
    return node


def _optional_section(params: Mapping[str, Any], section: str, name: str) -> Any:
    """``<section>.<name>``; None where a ``train`` section is absent (the model's
    declared defaults apply), a ParamError naming the key for any other section."""
    if section == "train" and name not in (params.get("train") or {}):
        return None
    return get(params, f"{section}.{name}")


def seed_list(params: Mapping[str, Any], key: str) -> list[int] | None:
    """A non-empty list of distinct non-negative integers, or null (absent = null)."""
    v = params.get(key) if isinstance(params, Mapping) else None
    if v is None:
        return None
    if (not isinstance(v, list) or not v or not all(is_int(i) and i >= 0 for i in v)
            or len(set(v)) != len(v)):
        raise fail(key, "a non-empty list of distinct non-negative integers, or null", v)
    return list(v)


# --- sections -------------------------------------------------------------------------

def _parse(params: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The section at ``where`` checked against ``SCHEMA[where]``, defaults filled in."""
    return parse_section(where, _node(params, where), SCHEMA[where], retired=RETIRED_KEYS)


def _validate_training(params: Params, section: str, name: str) -> None:
    """The training loop's keys of ``<section>.<name>`` (a gate's: all its keys), with each
    ``per_dataset`` override merged in. The methods' own options are the models'
    (vaemix.models.check_options)."""
    base = f"{section}.{name}"
    sect = _optional_section(params, section, name)
    if sect is None and section == "train":   # absent: the model's declared defaults
        return
    if not isinstance(sect, Mapping):
        raise fail(base, "a mapping", sect)
    overrides = sect.get("per_dataset") or {}
    if not isinstance(overrides, Mapping):
        raise fail(f"{base}.per_dataset", "a mapping of dataset -> settings", overrides)
    for ds, over in overrides.items():
        if ds not in DATASETS:
            raise ParamError(f"params.yaml: '{base}.per_dataset' has unknown dataset {ds!r}")
        if not isinstance(over, Mapping):
            raise fail(f"{base}.per_dataset.{ds}", "a mapping", over)
    schema = SCHEMA.get(base, TRAINING)   # a gate's section is declared whole
    if section == "train":   # the model class declares defaults (vaemix.models.method_settings)
        schema = {k: Key(spec.type, None) if spec.default is REQUIRED else spec
                  for k, spec in schema.items()}
    for ds in [None, *overrides]:
        merged = training_settings(params, section, name, ds) if ds else dict(sect)
        if base not in SCHEMA:   # the training loop's keys; the model checks its own
            merged = {k: v for k, v in merged.items() if k in TRAINING}
        where = f"{base}.per_dataset.{ds}" if ds else base
        parse_section(where, merged, schema, ignore=("per_dataset",))


def _validate_moe(params: Params) -> None:
    """The ``moe`` section (Singh et al. 2018, sec. 8.2; see vaemix.moe.model)."""
    gates = get(params, "moe.gates")
    for g in gates if isinstance(gates, list) else []:
        if g in PLAIN_GATES:
            raise ParamError(f"params.yaml: 'moe.gates' has {g!r}, a gate without a latent "
                             "space: list it under 'moe.plain_gates'")
    gates = Names(LATENT_GATES).check("moe.gates", gates)
    moe = _parse(params, "moe")
    plain = moe["plain_gates"]
    # a paper-protocol gate (vaemix.protocols) may run without its vaemix twin
    gates = list(dict.fromkeys(gates + moe["paper_gates"]))
    plain = list(dict.fromkeys(plain + moe["paper_plain_gates"]))
    if not gates and not plain:
        return
    if gates:
        IntList().check("moe.latent_dims", get(params, "moe.latent_dims"))
    for g in gates + plain:
        if g in ("dvmoe", "vade_moe", "deepmoe"):
            _validate_training(params, "moe", g)
        else:
            _parse(params, f"moe.{g}")
    if "dvmoe" in gates:
        k = "moe.dvmoe"
        if read(params, f"{k}.tau_end") > read(params, f"{k}.tau_start"):
            raise fail(f"{k}.tau_end", "at most tau_start", get(params, f"{k}.tau_end"))


def _validate_latent_sweep(params: Params, encoders: list[str], methods: list[str]) -> None:
    """The ``latent_sweep`` section (stages/sweep.py); absent = no sweep. It runs on every
    dataset of ``datasets`` (DVC's matrix cannot filter one list by another, so no list of
    its own names datasets: leaving a dataset out of ``datasets`` leaves it out here too)."""
    if params.get("latent_sweep") is None:
        return
    key = "latent_sweep"
    dims = get(params, f"{key}.latent_dims")
    if (not isinstance(dims, list) or not all(is_int(i) and i > 0 for i in dims)
            or len(set(dims)) != len(dims)):
        raise fail(f"{key}.latent_dims", "a list of distinct positive integers", dims)
    from_gmvae = get(params, f"{key}.from_gmvae")
    if isinstance(from_gmvae, list) and any(ds in DATASETS for ds in from_gmvae):
        raise ParamError(f"params.yaml: '{key}.from_gmvae' lists methods, [gmvae_dpgmm] or [], "
                         f"not datasets (got {from_gmvae}): the sweep runs on every dataset "
                         "of 'datasets'")
    from_gmvae = Names(("gmvae_dpgmm",)).check(f"{key}.from_gmvae", from_gmvae)
    sweep = _parse(params, key)
    runs, baseline_encoders = sweep["runs"], sweep["baseline_encoders"]
    if not dims:  # no sweep stages: nothing to cross-check
        return
    for enc in sweep["encoders"]:
        if enc not in encoders:
            raise ParamError(f"params.yaml: '{key}.encoders' has {enc!r}, which is not in "
                             "'encoders' (its pretrain.<encoder> settings are used)")
    for run in runs:
        method = SWEEP_VARIANTS.get(run, (run, {}))[0]
        if method not in methods:
            raise ParamError(f"params.yaml: '{key}.runs' has {run!r}, but {method!r} is not "
                             "in 'methods' (its train.<method> settings are used)")
    if from_gmvae:
        if "gmvae" not in runs or "gmvae_dpgmm" not in methods:
            raise ParamError(f"params.yaml: '{key}.from_gmvae' needs 'gmvae' in '{key}.runs' "
                             "and 'gmvae_dpgmm' in 'methods'")
    for enc in baseline_encoders:
        if enc not in sweep["encoders"] and enc not in runs:
            raise ParamError(f"params.yaml: '{key}.baseline_encoders' has {enc!r}, which is "
                             f"neither in '{key}.encoders' nor in '{key}.runs'")


def validate(params: Params) -> Params:
    """Check every key a stage may read against :data:`SCHEMA`, then the rules between
    keys; raise ParamError on the first bad one. A key the schema does not declare is
    refused with the closest declared one."""
    if not isinstance(params, Mapping):
        raise ParamError("params.yaml: the top level must be a mapping")
    for where in SCHEMA:   # unknown keys first, in every section present
        node = _node(params, where)
        if isinstance(node, Mapping):
            refuse_unknown(where, node, SCHEMA[where])
    for gate in ("dvmoe", "vade_moe", "deepmoe"):
        section = (params.get("moe") or {}).get(gate)
        overrides = section.get("per_dataset") if isinstance(section, Mapping) else None
        for ds, values in (overrides or {}).items():
            refuse_unknown(f"moe.{gate}.per_dataset", [ds], DATASETS)
            if isinstance(values, Mapping):
                refuse_unknown(f"moe.{gate}.per_dataset.{ds}", values,
                               set(SCHEMA[f"moe.{gate}"]) - {"per_dataset"})
    top = _parse(params, "")
    seed_list(params, "seeds")
    device = get(params, "device")
    if not isinstance(device, str) or not _DEVICE_RE.match(device):
        raise fail("device", "auto, cpu, cuda or cuda:N", device)
    _parse(params, "distributed")
    datasets, encoders, methods = top["datasets"], top["encoders"], top["methods"]
    for enc in top["baseline_encoders"]:
        if enc in ENCODERS and enc not in encoders:
            raise ParamError(
                f"params.yaml: 'baseline_encoders' has {enc!r}, which is not in 'encoders'"
            )
        method = split_run(enc)[0]
        if method in METHODS and method not in methods:
            raise ParamError(
                f"params.yaml: 'baseline_encoders' has {enc!r}, and {method!r} is not in "
                "'methods'"
            )
    for method in top["paper_starts"]:
        if method not in methods:
            raise ParamError(f"params.yaml: 'paper_starts' has {method!r}, which is not in "
                             "'methods' (paper_starts: [] runs no other start)")
    _validate_moe(params)
    budget = _parse(params, "budget")
    for ds in datasets:
        _parse(params, f"data.{ds}")
        _parse(params, f"model.{ds}")
        check_clusters_fit(params, ds, budget["max_train"], "'budget.max_train'")
    _parse(params, "regression")
    for enc in encoders:
        _validate_training(params, "pretrain", enc)
    if methods and not {"ae", "ae_da"} <= set(encoders):
        # every train@ stage may start from a pretrained autoencoder (VaDE's initialisation):
        # ae, or ae_da on images (the start of vaemix.start)
        raise ParamError("params.yaml: 'encoders' must include 'ae' and 'ae_da' when "
                         "'methods' is not empty")
    if methods:
        _parse(params, "start")
        _validate_training(params, "start", "dec")
    moe_runs = (get(params, "moe.gates") or []) + (get(params, "moe.plain_gates") or [])
    if (methods or moe_runs) and ("ae" not in encoders
                                  or "umap_gmm" not in top["baselines"]
                                  or "ae" not in top["baseline_encoders"]):
        # every train@, moe@ and moe_plain@ stage depends on the pretrained AE and on the
        # ae+umap_gmm clustering (the start of the mixture models and of the MoE gates)
        raise ParamError("params.yaml: 'encoders' and 'baseline_encoders' must include 'ae' "
                         "and 'baselines' 'umap_gmm' when 'methods' or the MoE gates are not "
                         "empty (they start from the ae+umap_gmm clustering)")
    if methods and "ae_da" not in top["baseline_encoders"]:
        # start@ (vaemix.start) reads the N2D partition of ae_da's codes on images
        raise ParamError("params.yaml: 'baseline_encoders' must include 'ae_da' when "
                         "'methods' is not empty (start@ begins from ae_da+umap_gmm)")
    for method in methods:
        _validate_training(params, "train", method)
    for bl in ("kmeans", "gmm", "dpgmm"):
        _parse(params, f"baseline.{bl}")
    if "umap_gmm" in top["baselines"] or "umap_gmm" in params.get("baseline", {}):
        _parse(params, "baseline.umap_gmm")
    _validate_latent_sweep(params, encoders, methods)
    return params


class YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a number in scientific notation without a dot or
    an exponent sign (``1e-05``, what ``dvc exp run -S lr=0.00001`` writes; ``1e5``) is a
    float, as in YAML 1.2 and Python, instead of YAML 1.1's string."""


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_yaml(text: str) -> Any:
    """Parse YAML text (params, profiles) with :class:`YamlLoader`."""
    return yaml.load(text, Loader=YamlLoader)  # safe: a SafeLoader subclass


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate the params file."""
    path = Path(path)
    if not path.is_file():
        raise ParamError(f"{path}: params file not found")
    try:
        params = load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ParamError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    return validate(params)


# --- derived settings -----------------------------------------------------------------

def training_settings(
    params: Params, section: str, name: str, dataset: str | None
) -> dict[str, Any]:
    """A method's settings with its ``per_dataset`` overrides for ``dataset`` applied (an
    absent ``train.<method>`` section: none; the model's defaults are vaemix.models')."""
    sect = copy.deepcopy(dict(_optional_section(params, section, name) or {}))
    overrides = sect.pop("per_dataset", None) or {}
    if dataset is not None and dataset in overrides:
        sect.update(overrides[dataset])
    return sect


def scaled_epochs(params: Params, epochs: int) -> int:
    """Apply ``budget.epoch_scale`` to an epoch count (at least one epoch)."""
    return max(1, int(round(epochs * float(params["budget"]["epoch_scale"]))))


# Keys of a training section that count epochs or steps of a schedule inside the run: each
# is scaled by ``budget.epoch_scale`` with the epochs, so that a short run is a shorter
# version of the full one (the same annealing over the same fraction of the run), not a
# different experiment. 0 stays 0 (the phase is off); others stay at least 1.
SCHEDULE_KEYS = (
    "kl_anneal_steps",     # Concrete GMVAE, GMVAE + DP-GMM: KL(q(y|x)||p(y)) weight 0 -> 1
    "tau_anneal_epochs",   # DMVAE, dvmoe: Gumbel-softmax temperature annealing
    "q_init_epochs",       # init ae: fitting q(c|x) / q(z|x,y) to the start
    "self_train_epochs",   # init ae: the warm-up on the start's pseudo-labels
    "lr_decay_every",      # step decay of the learning rate
    "refit_every",         # GMVAE + DP-GMM: epochs between DP-GMM refits
)


def scale_schedules(params: Params, settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` with every :data:`SCHEDULE_KEYS` entry scaled by budget.epoch_scale."""
    scale = float(params["budget"]["epoch_scale"])
    out = dict(settings)
    for key in SCHEDULE_KEYS:
        value = out.get(key)
        if is_int(value) and value > 0:
            out[key] = max(1, int(round(value * scale)))
    return out


def require_listed(params: Params, key: str, name: str) -> None:
    """A stage asked to run for ``name`` checks that ``params[key]`` lists it."""
    listed = get(params, key)
    if name not in listed:
        raise ParamError(f"params.yaml: '{key}' does not list {name!r} (it has {listed})")


def check_clusters_fit(params: Params, dataset: str, n_train: int | None, what: str) -> None:
    """K = ``model.<dataset>.n_clusters`` must not exceed the number of training points."""
    k = get(params, f"model.{dataset}.n_clusters")
    if n_train is not None and k > n_train:
        raise ParamError(
            f"params.yaml: 'model.{dataset}.n_clusters' is {k}, more than the {n_train} "
            f"training points ({what})"
        )


def resolve_device(spec: str) -> Any:
    """Turn the ``device`` param into a torch.device; CUDA where none exists is an error."""
    import torch

    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ParamError(f"params.yaml: 'device' is {spec!r} but no CUDA device is available")
    dev = torch.device(spec)
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ParamError(
            f"params.yaml: 'device' is {spec!r} but only {torch.cuda.device_count()} "
            "CUDA device(s) exist"
        )
    return dev

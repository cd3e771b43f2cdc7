"""Loading and validating ``params.yaml``.

Every stage calls :func:`load_params` first. A bad value raises :class:`ParamError` whose
message names the key and what was expected; the stage runner turns it into one line on
stderr and a non-zero exit before anything is written.
"""

from __future__ import annotations

import copy
import difflib
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from vaemix.errors import ParamError

DATASETS = ("mnist", "spiral", "cifar100", "npz")
ENCODERS = ("ae", "vae")
# Mixture models trained by train@<dataset>-<method>; each has a module in vaemix.models,
# an entry in vaemix.models.MODELS and a section train.<method> in params.yaml.
METHODS: tuple[str, ...] = (
    "vade", "dmvae", "movae", "gmvae", "concrete_gmvae", "gmvae_dpgmm"
)
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
NETS = ("mlp", "conv")
LIKELIHOODS = ("bernoulli", "gaussian")
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
PRECISIONS = ("fp32", "bf16")  # bf16: forward passes under torch.autocast (training only)
# Keys of a training section that are temperatures (Gumbel-softmax / Concrete): each must be
# a positive number wherever it appears, in any method's section (tau, tau_start, tau_end, ...).
_TEMPERATURE_RE = re.compile(r"^(tau|temperature)(_(start|end|min|max|init|final))?$")

Params = dict[str, Any]


# --- small typed accessors ------------------------------------------------------------

# --- the keys each section may hold ---------------------------------------------------
# A key not declared here (or, for pretrain.<encoder> and train.<method>, in the model's
# module: ``option_keys``) is refused with the closest declared one (``refuse_unknown``).
# The training loop's keys (vaemix.training.TrainConfig), valid in every pretrain.*, train.*
# and trained-gate section beside the method's own options:
TRAINING_KEYS = frozenset({
    "epochs", "batch_size", "lr", "weight_decay", "eval_every", "lr_decay", "lr_decay_every",
    "grad_clip", "checkpoint_every", "max_loss_growth", "anchor_weight", "per_dataset",
})
_GATE_START = ("hidden", "init", "self_train_epochs", "self_train_weight", "start_ridge")
SECTION_KEYS: dict[str, frozenset[str]] = {k: frozenset(v) for k, v in {
    "": ("profile", "seed", "seeds", "device", "precision", "distributed", "datasets",
         "encoders", "methods", "baselines", "baseline_encoders", "collapse_fraction",
         "budget", "data", "regression", "model", "pretrain", "train", "baseline",
         "latent_sweep", "moe"),
    "distributed": ("nproc_per_node", "backend"),
    "budget": ("epoch_scale", "max_train", "max_test"),
    "data": DATASETS,
    "data.mnist": ("root", "download"),
    "data.cifar100": ("root", "download"),
    "data.spiral": ("arms", "points_per_arm", "turns", "noise", "test_fraction"),
    "data.npz": ("path", "test_fraction"),
    "regression": ("mode", "out_dim", "noise"),
    "model": DATASETS,
    **{f"model.{ds}": ("n_clusters", "latent_dim", "net", "hidden", "likelihood")
       for ds in DATASETS},
    "pretrain": ENCODERS,
    "train": METHODS,
    "baseline": BASELINES,
    "baseline.kmeans": ("n_init",),
    "baseline.gmm": ("covariance_type", "n_init", "max_iter"),
    "baseline.dpgmm": ("covariance_type", "truncation_factor", "weight_concentration_prior",
                       "degrees_of_freedom_prior", "max_iter", "min_weight"),
    "baseline.umap_gmm": ("n_neighbors", "n_components", "min_dist", "covariance_type",
                          "n_init", "max_points"),
    "latent_sweep": ("datasets", "latent_dims", "runs", "from_gmvae", "baseline_encoders"),
    "moe": ("gates", "latent_dims", "plain_gates", "n_experts", "objective", *GATES),
    "moe.dvmoe": (*TRAINING_KEYS, *_GATE_START, "vae_weight", "tau_start", "tau_end",
                  "tau_anneal_epochs", "hard", "prior"),
    "moe.vade_moe": (*TRAINING_KEYS, *_GATE_START, "vae_weight", "mc_samples"),
    "moe.deepmoe": (*TRAINING_KEYS, *_GATE_START),
    "moe.gmm_moe": ("pca_dim", "max_iter", "tol", "reg_covar", "ridge"),
    "moe.linear": ("ridge",),
    "moe.oracle": ("ridge",),
}.items()}


def refuse_unknown(where: str, keys: Iterable[Any], known: Iterable[str]) -> None:
    """Stop at the first of ``keys`` (of the section ``where``; "" = the top level) that is
    not ``known``, naming the closest known key: "'train.vade.lrr': unknown key; did you
    mean 'lr'?". Models and sections otherwise drop what they do not read, so a typo would
    silently run the default."""
    known = sorted(set(known))
    for key in keys:
        if key in known:
            continue
        name = f"{where}.{key}" if where else str(key)
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(known)}"
        raise ParamError(f"params.yaml: '{name}': unknown key; {hint}")


def check_known_keys(params: Mapping[str, Any]) -> None:
    """Every section of ``params`` holds only declared keys (:data:`SECTION_KEYS`); the
    per-dataset overrides of a trained gate only its own keys. The options of
    pretrain.<encoder> and train.<method> are the models' (checked when one is built:
    vaemix.models.build_model), beside :data:`TRAINING_KEYS`."""
    for where, known in SECTION_KEYS.items():
        node: Any = params
        for part in where.split(".") if where else []:
            node = node.get(part) if isinstance(node, Mapping) else None
        if isinstance(node, Mapping):
            refuse_unknown(where, node, known)
    for gate in ("dvmoe", "vade_moe", "deepmoe"):
        section = (params.get("moe") or {}).get(gate)
        overrides = section.get("per_dataset") if isinstance(section, Mapping) else None
        for ds, values in (overrides or {}).items():
            refuse_unknown(f"moe.{gate}.per_dataset", [ds], DATASETS)
            if isinstance(values, Mapping):
                refuse_unknown(f"moe.{gate}.per_dataset.{ds}", values,
                               SECTION_KEYS[f"moe.{gate}"] - {"per_dataset"})


def _fail(key: str, expected: str, got: Any) -> ParamError:
    return ParamError(f"params.yaml: '{key}' must be {expected}, got {got!r}")


def get(params: Mapping[str, Any], key: str) -> Any:
    """Look up a dotted key; a missing key raises ParamError naming it."""
    node: Any = params
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise ParamError(f"params.yaml: missing key '{key}'")
        node = node[part]
    return node


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def positive_int(params: Mapping[str, Any], key: str, *, allow_none: bool = False) -> int | None:
    v = get(params, key)
    if v is None and allow_none:
        return None
    if not _is_int(v) or v <= 0:
        return_what = "a positive integer" + (" or null" if allow_none else "")
        raise _fail(key, return_what, v)
    return v


def nonneg_int(params: Mapping[str, Any], key: str) -> int:
    v = get(params, key)
    if not _is_int(v) or v < 0:
        raise _fail(key, "a non-negative integer", v)
    return v


def positive_number(params: Mapping[str, Any], key: str) -> float:
    v = get(params, key)
    if not _is_number(v) or v <= 0:
        raise _fail(key, "a positive number", v)
    return float(v)


def nonneg_number(params: Mapping[str, Any], key: str) -> float:
    v = get(params, key)
    if not _is_number(v) or v < 0:
        raise _fail(key, "a non-negative number", v)
    return float(v)


def fraction(params: Mapping[str, Any], key: str) -> float:
    v = get(params, key)
    if not _is_number(v) or not 0 < v < 1:
        raise _fail(key, "a number strictly between 0 and 1", v)
    return float(v)


def boolean(params: Mapping[str, Any], key: str) -> bool:
    v = get(params, key)
    if not isinstance(v, bool):
        raise _fail(key, "true or false", v)
    return v


def string(params: Mapping[str, Any], key: str) -> str:
    v = get(params, key)
    if not isinstance(v, str) or not v:
        raise _fail(key, "a non-empty string", v)
    return v


def choice(params: Mapping[str, Any], key: str, options: tuple[str, ...]) -> str:
    v = get(params, key)
    if v not in options:
        raise _fail(key, "one of " + ", ".join(options), v)
    return v


def id_list(params: Mapping[str, Any], key: str, options: tuple[str, ...]) -> list[str]:
    v = get(params, key)
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
        raise _fail(key, "a list of names", v)
    for s in v:
        if s not in options:
            allowed = ", ".join(options) if options else "none yet"
            raise ParamError(f"params.yaml: '{key}' has unknown entry {s!r} (known: {allowed})")
    if len(set(v)) != len(v):
        raise _fail(key, "a list without repeats", v)
    return list(v)


def int_list(params: Mapping[str, Any], key: str) -> list[int]:
    v = get(params, key)
    if not isinstance(v, list) or not v or not all(_is_int(i) and i > 0 for i in v):
        raise _fail(key, "a non-empty list of positive integers", v)
    return list(v)


def seed_list(params: Mapping[str, Any], key: str) -> list[int] | None:
    """A non-empty list of distinct non-negative integers, or null (absent = null)."""
    v = params.get(key) if isinstance(params, Mapping) else None
    if v is None:
        return None
    if (not isinstance(v, list) or not v or not all(_is_int(i) and i >= 0 for i in v)
            or len(set(v)) != len(v)):
        raise _fail(key, "a non-empty list of distinct non-negative integers, or null", v)
    return list(v)


# --- sections -------------------------------------------------------------------------

def _validate_training(params: Params, section: str, name: str) -> None:
    base = f"{section}.{name}"
    sect = get(params, base)
    if not isinstance(sect, Mapping):
        raise _fail(base, "a mapping", sect)
    overrides = sect.get("per_dataset") or {}
    if not isinstance(overrides, Mapping):
        raise _fail(f"{base}.per_dataset", "a mapping of dataset -> settings", overrides)
    for ds, over in overrides.items():
        if ds not in DATASETS:
            raise ParamError(f"params.yaml: '{base}.per_dataset' has unknown dataset {ds!r}")
        if not isinstance(over, Mapping):
            raise _fail(f"{base}.per_dataset.{ds}", "a mapping", over)
    for ds in [None, *overrides]:
        merged = training_settings(params, section, name, ds) if ds else dict(sect)
        where = f"{base}.per_dataset.{ds}" if ds else base
        wrapped = {"s": merged}
        for key, check in (
            ("epochs", positive_int),
            ("batch_size", positive_int),
            ("lr", positive_number),
            ("weight_decay", nonneg_number),
            ("eval_every", positive_int),
        ):
            try:
                check(wrapped, f"s.{key}")
            except ParamError as err:
                raise ParamError(str(err).replace("'s.", f"'{where}.")) from None
        for key, check in (
            ("lr_decay", positive_number),
            ("lr_decay_every", positive_int),
            ("grad_clip", positive_number),
            ("checkpoint_every", nonneg_int),
            ("max_loss_growth", positive_number),
            ("anchor_weight", nonneg_number),
            *((k, positive_number) for k in merged if _TEMPERATURE_RE.match(str(k))),
        ):
            if merged.get(key) is not None:
                try:
                    check(wrapped, f"s.{key}")
                except ParamError as err:
                    raise ParamError(str(err).replace("'s.", f"'{where}.")) from None


def _validate_model(params: Params, ds: str) -> None:
    k = f"model.{ds}"
    positive_int(params, f"{k}.n_clusters")
    positive_int(params, f"{k}.latent_dim")
    choice(params, f"{k}.net", NETS)
    int_list(params, f"{k}.hidden")
    choice(params, f"{k}.likelihood", LIKELIHOODS)


def _validate_data(params: Params, ds: str) -> None:
    k = f"data.{ds}"
    if ds in ("mnist", "cifar100"):
        string(params, f"{k}.root")
        boolean(params, f"{k}.download")
    elif ds == "spiral":
        positive_int(params, f"{k}.arms")
        positive_int(params, f"{k}.points_per_arm")
        positive_number(params, f"{k}.turns")
        nonneg_number(params, f"{k}.noise")
        fraction(params, f"{k}.test_fraction")
    elif ds == "npz":
        string(params, f"{k}.path")
        fraction(params, f"{k}.test_fraction")


def _validate_baseline(params: Params) -> None:
    positive_int(params, "baseline.kmeans.n_init")
    choice(params, "baseline.gmm.covariance_type", ("full", "tied", "diag", "spherical"))
    positive_int(params, "baseline.gmm.n_init")
    positive_int(params, "baseline.gmm.max_iter")
    choice(params, "baseline.dpgmm.covariance_type", ("full", "tied", "diag", "spherical"))
    v = get(params, "baseline.dpgmm.truncation_factor")
    if not _is_number(v) or v <= 1:
        raise _fail("baseline.dpgmm.truncation_factor", "a number above 1", v)
    w = get(params, "baseline.dpgmm.weight_concentration_prior")
    if w is not None and (not _is_number(w) or w <= 0):
        raise _fail("baseline.dpgmm.weight_concentration_prior", "a positive number or null", w)
    dof = params["baseline"]["dpgmm"].get("degrees_of_freedom_prior")  # optional, null = d
    if dof is not None and (not _is_number(dof) or dof <= 0):
        raise _fail("baseline.dpgmm.degrees_of_freedom_prior", "a positive number or null", dof)
    positive_int(params, "baseline.dpgmm.max_iter")
    fraction(params, "baseline.dpgmm.min_weight")
    if "umap_gmm" in get(params, "baselines") or "umap_gmm" in params.get("baseline", {}):
        validate_umap_gmm(params, "baseline.umap_gmm")


def validate_umap_gmm(params: Mapping[str, Any], key: str) -> None:
    """The settings of a UMAP + GMM clustering (the N2D recipe) under ``key``."""
    n = positive_int(params, f"{key}.n_neighbors")
    if n < 2:
        raise _fail(f"{key}.n_neighbors", "an integer of at least 2", n)
    positive_int(params, f"{key}.n_components", allow_none=True)
    nonneg_number(params, f"{key}.min_dist")
    choice(params, f"{key}.covariance_type", ("full", "tied", "diag", "spherical"))
    positive_int(params, f"{key}.n_init")
    positive_int(params, f"{key}.max_points", allow_none=True)


def _validate_moe(params: Params) -> None:
    """The ``moe`` section (Singh et al. 2018, sec. 8.2; see vaemix.moe.model)."""
    gates = get(params, "moe.gates")
    for g in gates if isinstance(gates, list) else []:
        if g in PLAIN_GATES:
            raise ParamError(f"params.yaml: 'moe.gates' has {g!r}, a gate without a latent "
                             "space: list it under 'moe.plain_gates'")
    gates = id_list(params, "moe.gates", LATENT_GATES)
    plain = id_list(params, "moe.plain_gates", PLAIN_GATES)
    if not gates and not plain:
        return
    if gates:
        int_list(params, "moe.latent_dims")
    positive_int(params, "moe.n_experts", allow_none=True)
    choice(params, "moe.objective", ("likelihood", "mse"))
    for g in gates + plain:
        if g in ("dvmoe", "vade_moe", "deepmoe"):
            _validate_training(params, "moe", g)
            for ds in [None, *get(params, "datasets")]:
                hidden = training_settings(params, "moe", g, ds).get("hidden")
                where = f"moe.{g}" + (f".per_dataset.{ds}" if ds else "")
                if hidden is not None:
                    if not isinstance(hidden, list) or not hidden or not all(
                            _is_int(h) and h > 0 for h in hidden):
                        raise _fail(f"{where}.hidden", "a non-empty list of positive integers "
                                    "or null", hidden)
        if g in ("dvmoe", "vade_moe"):
            nonneg_number(params, f"moe.{g}.vae_weight")
    if "dvmoe" in gates:
        k = "moe.dvmoe"
        positive_number(params, f"{k}.tau_start")
        if positive_number(params, f"{k}.tau_end") > positive_number(params, f"{k}.tau_start"):
            raise _fail(f"{k}.tau_end", "at most tau_start", get(params, f"{k}.tau_end"))
        nonneg_int(params, f"{k}.tau_anneal_epochs")
        boolean(params, f"{k}.hard")
        choice(params, f"{k}.prior", ("uniform", "learned"))
    if "vade_moe" in gates:
        positive_int(params, "moe.vade_moe.mc_samples")
    for g in ("linear", "oracle"):
        if g in plain:
            nonneg_number(params, f"moe.{g}.ridge")
    if "gmm_moe" in plain:
        k = "moe.gmm_moe"
        positive_int(params, f"{k}.pca_dim", allow_none=True)
        positive_int(params, f"{k}.max_iter")
        nonneg_number(params, f"{k}.tol")
        nonneg_number(params, f"{k}.reg_covar")
        nonneg_number(params, f"{k}.ridge")


def _validate_latent_sweep(params: Params, datasets: list[str], encoders: list[str],
                           methods: list[str]) -> None:
    """The ``latent_sweep`` section (stages/sweep.py); absent = no sweep."""
    if params.get("latent_sweep") is None:
        return
    key = "latent_sweep"
    sweep_ds = id_list(params, f"{key}.datasets", DATASETS)
    for ds in sweep_ds:
        if ds not in datasets:
            raise ParamError(f"params.yaml: '{key}.datasets' has {ds!r}, which is not in "
                             f"'datasets'; leave it out of the sweep too (-S '{key}.datasets=[]' "
                             f"-S '{key}.from_gmvae=[]', or the datasets kept)")
    dims = get(params, f"{key}.latent_dims")
    if (not isinstance(dims, list) or not all(_is_int(i) and i > 0 for i in dims)
            or len(set(dims)) != len(dims)):
        raise _fail(f"{key}.latent_dims", "a list of distinct positive integers", dims)
    runs = id_list(params, f"{key}.runs", METHODS + tuple(SWEEP_VARIANTS))
    from_gmvae = id_list(params, f"{key}.from_gmvae", DATASETS)
    baseline_encoders = id_list(params, f"{key}.baseline_encoders", ENCODERS + METHODS)
    for ds in from_gmvae:
        if ds not in sweep_ds:
            raise ParamError(f"params.yaml: '{key}.from_gmvae' has {ds!r}, which is not in "
                             f"'{key}.datasets'")
    if not (sweep_ds and dims):  # no sweep stages: nothing to cross-check
        return
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
        if enc not in encoders and enc not in runs:
            raise ParamError(f"params.yaml: '{key}.baseline_encoders' has {enc!r}, which is "
                             f"neither in 'encoders' nor in '{key}.runs'")
    if "ae" not in encoders:
        raise ParamError(f"params.yaml: 'encoders' must include 'ae' when '{key}' runs "
                         "(its trained runs start from ae_z<d>)")


def validate(params: Params) -> Params:
    """Check every key a stage may read; raise ParamError on the first bad one."""
    if not isinstance(params, Mapping):
        raise ParamError("params.yaml: the top level must be a mapping")
    check_known_keys(params)
    nonneg_int(params, "seed")
    seed_list(params, "seeds")
    device = get(params, "device")
    if not isinstance(device, str) or not _DEVICE_RE.match(device):
        raise _fail("device", "auto, cpu, cuda or cuda:N", device)
    choice(params, "precision", PRECISIONS)
    positive_int(params, "distributed.nproc_per_node")
    choice(params, "distributed.backend", ("auto", "gloo", "nccl"))
    datasets = id_list(params, "datasets", DATASETS)
    encoders = id_list(params, "encoders", ENCODERS)
    id_list(params, "baselines", BASELINES)
    methods = id_list(params, "methods", METHODS)
    for enc in id_list(params, "baseline_encoders", ENCODERS + METHODS):
        if enc in ENCODERS and enc not in encoders:
            raise ParamError(
                f"params.yaml: 'baseline_encoders' has {enc!r}, which is not in 'encoders'"
            )
        if enc in METHODS and enc not in methods:
            raise ParamError(
                f"params.yaml: 'baseline_encoders' has {enc!r}, which is not in 'methods'"
            )
    _validate_moe(params)
    if "profile" in params:
        string(params, "profile")
    if "collapse_fraction" in params:
        fraction(params, "collapse_fraction")
    positive_number(params, "budget.epoch_scale")
    positive_int(params, "budget.max_train", allow_none=True)
    positive_int(params, "budget.max_test", allow_none=True)
    for ds in datasets:
        _validate_data(params, ds)
        _validate_model(params, ds)
        check_clusters_fit(params, ds, get(params, "budget.max_train"), "'budget.max_train'")
    choice(params, "regression.mode", ("per_class", "global"))
    positive_int(params, "regression.out_dim")
    nonneg_number(params, "regression.noise")
    for enc in encoders:
        _validate_training(params, "pretrain", enc)
    methods = get(params, "methods")
    if methods and "ae" not in encoders:
        # every train@ stage may start from the pretrained autoencoder (VaDE's initialisation)
        raise ParamError("params.yaml: 'encoders' must include 'ae' when 'methods' is not empty")
    moe_runs = (get(params, "moe.gates") or []) + (get(params, "moe.plain_gates") or [])
    if (methods or moe_runs) and ("ae" not in encoders
                                  or "umap_gmm" not in get(params, "baselines")
                                  or "ae" not in get(params, "baseline_encoders")):
        # every train@, moe@ and moe_plain@ stage depends on the pretrained AE and on the
        # ae+umap_gmm clustering (the start of the mixture models and of the MoE gates)
        raise ParamError("params.yaml: 'encoders' and 'baseline_encoders' must include 'ae' "
                         "and 'baselines' 'umap_gmm' when 'methods' or the MoE gates are not "
                         "empty (they start from the ae+umap_gmm clustering)")
    for method in methods:
        _validate_training(params, "train", method)
    _validate_baseline(params)
    _validate_latent_sweep(params, datasets, encoders, methods)
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
    """A method's settings with its ``per_dataset`` overrides for ``dataset`` applied."""
    sect = copy.deepcopy(dict(get(params, f"{section}.{name}")))
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
        if _is_int(value) and value > 0:
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

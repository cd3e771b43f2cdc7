"""Train one model on one dataset and export everything the later stages read.

Shared by ``stages/pretrain.py`` (the autoencoders) and the mixture-model training stage:
both call :func:`train_and_export`, which writes

- ``artifacts/<dataset>/<method>/``: ``model.pt`` (state dict and spec), ``latents.npz``
  (posterior means of train and test with labels), ``recon.npz`` (32 test inputs and
  their reconstructions; models with a decoder), and for clustering models ``pred.npz`` and
  (generative ones) ``samples.npz``;
- ``reports/metrics/<dataset>/<method>.json``, the contract metrics on the test split;
- ``reports/curves/<dataset>/<method>/``, the per-epoch curves (dvclive).

Every seed of ``params["seeds"]`` is trained in turn (:mod:`vaemix.seeds`): the first
seed's files lie at the top of those directories, the others' under ``seed<s>/``, and the
metrics file holds the mean, the std and each seed's own metrics.

While training, checkpoints go to ``checkpoints/<dataset>/<method>/seed<s>/checkpoint/``
(outside DVC's outputs, which DVC deletes before it runs a stage; git-ignored), every
``checkpoint_every`` epochs of the method's settings. A re-run with the same params, data,
initialisation and code resumes from it, and skips the seeds that had finished; all of it
is deleted once the outputs are published.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.cluster import KMeans

from vaemix import distributed
from vaemix.config import (
    TRAINING_KEYS,
    check_clusters_fit,
    resolve_device,
    scale_schedules,
    scaled_epochs,
)
from vaemix.data import Prepared
from vaemix.data.common import sha256_array, sha256_file
from vaemix.imports import SRC, import_closure
from vaemix.io import atomic_dir, save_npz
from vaemix.metrics import clustering_metrics, transductive_metrics
from vaemix.models import (
    ENCODER_CLASSES,
    Model,
    build_model,
    check_options,
    method_settings,
    model_class,
    spec_from_params,
)
from vaemix.protocols import VAEMIX_START, paper_budget, paper_run, paper_settings
from vaemix.registry import method_file
from vaemix.seeds import run_over_seeds, seed_path, seeds_of
from vaemix.training import (
    Anchor,
    TrainConfig,
    batched,
    clear_checkpoint,
    fit,
    seed_everything,
    to_tensor,
)

ARTIFACTS = Path("artifacts")
N_RECON = 32
# Latents used by the periodic K-means probe of encoders that do not cluster themselves.
PROBE_MAX_TRAIN = 5000


def latent_probe(
    model: Model, x_train: torch.Tensor, x_test: torch.Tensor, y_test: np.ndarray, k: int, seed: int
) -> dict[str, float]:
    """Test ACC/NMI of the model's own clusters, or of K-means on its latents."""
    if model.clusters:
        pred = batched(model.predict_clusters, x_test).numpy()
    else:
        z_train = batched(model.encode, x_train[:PROBE_MAX_TRAIN]).numpy()
        km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(z_train)
        pred = km.predict(batched(model.encode, x_test).numpy())
    m = clustering_metrics(y_test, pred)
    return {"acc": m["acc"], "nmi": m["nmi"]}


def code_digest(method: str) -> str:
    """sha256 over the package files a run of ``method`` may execute (what a checkpoint was
    made by): the import closure of this module and of the method's own module, the one
    its train@ stage lists in dvc.yaml. A change to the report keeps the checkpoint."""
    module = "ae" if method in ENCODER_CLASSES else method
    files = import_closure(Path(__file__), method_file(module))
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(path.relative_to(SRC).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def resume_key(
    method: str, dataset: str, data: Prepared, settings: Mapping[str, Any], config: TrainConfig,
    spec: Any, device: torch.device, init: Mapping[str, Any] | None,
) -> str:
    """A digest of everything a training run's result depends on: a checkpoint is resumed
    only by a run with the same key (``checkpoint_every`` itself is left out)."""
    init_files = {
        k: sha256_file(v) if isinstance(v, str | Path) and Path(v).is_file() else v
        for k, v in (init or {}).items()
    }
    data_sha = data.card.get("sha256", {}).get("data.npz") or sha256_array(data.x_train)
    identity = {
        "method": method, "dataset": dataset, "data": data_sha,
        "settings": {k: v for k, v in settings.items() if k != "checkpoint_every"},
        "config": {k: v for k, v in asdict(config).items() if k != "checkpoint_every"},
        "spec": asdict(spec), "device": device.type, "init": init_files,
        "code": code_digest(method), "torch": torch.__version__,
        "processes": getattr(distributed.current(), "world", 1),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def train_and_export(
    method: str,
    dataset: str,
    data: Prepared,
    params: Mapping[str, Any],
    section: str,
    *,
    init: Mapping[str, Any] | None = None,
    name: str | None = None,
    protocol: str = "vaemix",
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Fit ``method`` on ``data`` with the settings in ``params[section][method]``, once per
    seed of ``params`` (:mod:`vaemix.seeds`), and publish the outputs of every seed under
    ``name`` (default: the method; e.g. ``gmvae_z16`` for the latent-dimension sweep).

    ``init`` is passed to the model's ``initialise`` hook when it has one (e.g. VaDE's
    start from the pretrained autoencoder); a path in it that names a published file of
    another run (``artifacts/<dataset>/<run>/...``) is read from that run's matching seed.
    ``protocol`` ``paper`` replaces the params section by the model's cited recipe
    (:mod:`vaemix.protocols`; a method without one: its declared ``defaults``), names the
    run ``<method>_paper`` and adds the paper's own score to its metrics (``published_*``);
    ``overrides`` then replace some settings (the latent sweep's Gumbel variants, its start
    from a GMVAE).
    Returns the aggregated metrics that were written.
    """
    quoted: dict[str, Any] = {}   # the paper's own score, beside its recipe's run
    if protocol == "paper":
        params = paper_budget(params)   # budget.paper_epoch_scale, when set
        recipe = model_class(method).paper
        if name is None and recipe is not None and dataset in recipe.published:
            quoted = recipe.published[dataset].metrics()
        name = name or paper_run(method)
        # a method without a cited recipe (a user's own): its declared defaults, as its
        # author trains it, with none of vaemix's start
        cls = model_class(method)
        given = (paper_settings(method, recipe, dataset) if recipe is not None
                 else {**cls.defaults, **{k: v for k, v in VAEMIX_START.items()
                                          if k in TRAINING_KEYS or k in cls.options}})
    else:
        given = method_settings(params, section, method, dataset)
    settings = scale_schedules(params, {**given, **(overrides or {})})
    check_options(method, settings)  # a misspelled option stops before any work
    device = resolve_device(params["device"])
    group, device = distributed.setup(device, params["distributed"]["backend"])
    epochs = scaled_epochs(params, int(settings["epochs"]))
    spec = spec_from_params(params, dataset, data.input_shape, **settings)
    check_clusters_fit(params, dataset, len(data.x_train), f"data/prepared/{dataset}")
    seeds = seeds_of(params)

    def init_of(seed: int) -> dict[str, Any] | None:
        if init is None:
            return None
        return {k: _seed_file(v, seed, seeds) for k, v in init.items()}

    def config_of(seed: int) -> TrainConfig:
        return replace(TrainConfig.from_settings(settings, epochs, seed),
                       precision=params["precision"])

    def key_of(seed: int) -> str:
        return resume_key(method, dataset, data, settings, config_of(seed), spec, device,
                          init_of(seed))

    def fit_seed(seed: int, artifacts: Path, curves: Path, checkpoint: Path) -> dict | None:
        metrics = _train_one(method, dataset, data, section, spec, config_of(seed), device,
                             init_of(seed), key_of(seed), artifacts, curves, checkpoint,
                             name or method)
        return metrics if metrics is None else {**metrics, **quoted}

    metrics = run_over_seeds(params, dataset, name or method, fit_seed, key_of=key_of)
    distributed.teardown()
    return metrics


def _seed_file(value: Any, seed: int, seeds: list[int]) -> Any:
    """``artifacts/<dataset>/<run>/<file>`` of seed ``seed`` (see :mod:`vaemix.seeds`)."""
    if isinstance(value, Mapping):
        return {k: _seed_file(v, seed, seeds) for k, v in value.items()}
    if not isinstance(value, str | Path):
        return value
    path = Path(value)
    if len(path.parts) < 4 or Path(*path.parts[:1]) != ARTIFACTS:
        return value
    return seed_path(Path(*path.parts[:3]), seed, seeds) / Path(*path.parts[3:])


def _train_one(
    method: str, dataset: str, data: Prepared, section: str, spec: Any, config: TrainConfig,
    device: torch.device, init: Mapping[str, Any] | None, key: str,
    artifacts: Path, curves: Path, checkpoint: Path, name: str,
) -> dict[str, Any] | None:
    """Train and export one seed into ``artifacts`` and ``curves``; its metrics."""
    seed = config.seed
    seed_everything(seed)
    main = distributed.is_main()
    model = build_model(method, spec).to(device)
    x_train = to_tensor(data.x_train, device)
    x_test = to_tensor(data.x_test, device)
    labelled = bool((data.y_test >= 0).all())
    k = spec.n_clusters

    def probe(m: Model) -> dict[str, float]:
        return latent_probe(m, x_train, x_test, data.y_test, k, seed) if labelled else {}

    # The start (AE copy, first clustering, warm-up) is part of the method's cost: it counts
    # in train_seconds. Its own test clustering is recorded as start_* beside the end's.
    init_start = time.perf_counter()
    start: dict[str, Any] = {}
    model.augment = config.augment   # vaemix's protocol only (vaemix.augment)
    if init is not None:
        model.initialise(x_train, seed=seed, **init)
        if model.clusters and labelled:
            model.eval()
            pred = batched(model.predict_clusters, x_test).numpy()
            first = clustering_metrics(data.y_test, pred)
            start = {f"start_{key}": first[key] for key in ("acc", "nmi", "n_clusters_used")}
    init_seconds = time.perf_counter() - init_start

    # a model warmed up on the start's partition keeps it as a term (training.Anchor)
    labels = model.start_labels
    anchor = (Anchor(labels, config.anchor_weight, config.augment, config.self_paced,
                     config.relabel)
              if labels is not None and config.anchor_weight > 0 else None)
    result = fit(
        model, x_train, config, evaluate=probe, curves_dir=curves if main else None,
        desc=f"{section} {dataset}/{name} seed {seed}", checkpoint_dir=checkpoint,
        resume_key=key, anchor=anchor,
    )
    if not main:  # rank 0 writes everything (vaemix.distributed)
        return None

    model.eval()
    per_example = batched(model.evaluate, x_test)
    metrics: dict[str, Any] = {k_: float(v.mean()) for k_, v in per_example.items()}
    with atomic_dir(artifacts) as out:
        torch.save({"state_dict": model.state_dict(), "spec": asdict(spec), "method": method},
                   out / "model.pt")
        save_npz(
            out / "latents.npz",
            z_train=batched(model.encode, x_train).numpy(),
            z_test=batched(model.encode, x_test).numpy(),
            y_train=data.y_train, y_test=data.y_test,
        )
        if model.reconstructs:
            save_npz(out / "recon.npz", x=data.x_test[:N_RECON],
                     x_recon=batched(model.reconstruct, x_test[:N_RECON]).numpy())
        if model.clusters:
            pred = batched(model.predict_clusters, x_test).numpy().astype(np.int64)
            pred_train = batched(model.predict_clusters, x_train).numpy().astype(np.int64)
            save_npz(out / "pred.npz", pred_test=pred, y_test=data.y_test,
                     pred_train=pred_train, y_train=data.y_train)
            if labelled:
                metrics.update(clustering_metrics(data.y_test, pred))
            metrics.update(transductive_metrics(data.y_train, pred_train))
            if model.generates:
                gen = torch.Generator(device=device).manual_seed(seed)
                save_npz(out / "samples.npz",
                         samples=model.sample_per_cluster(8, generator=gen).cpu().numpy())
    metrics.update(model.summary_metrics())
    if model.clusters:   # the summary shows a learned K instead of judging it against K
        metrics["learns_k"] = model.learns_k
    metrics.update(start)
    metrics.update(
        train_seconds=init_seconds + result.train_seconds,
        init_seconds=init_seconds,
        seconds_per_epoch=result.train_seconds / max(result.epochs, 1),
        samples_per_second=result.samples_per_second,
        epochs=result.epochs,
        seed=seed,
    )
    clear_checkpoint(checkpoint)
    return metrics

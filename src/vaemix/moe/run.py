"""Fit one mixture-of-experts run on one dataset and export it (stage ``moe@`` / ``moe_plain@``).

:func:`run_moe` fits gate ``gate`` (latent dim ``latent_dim``, 0 for gates without a
latent) on the prepared regression targets and writes

- ``artifacts/<dataset>/moe_<gate>_z<d>/``: ``pred.npz`` (argmax gate on the test split and
  the true classes, read by the report's confusion matrices), ``moe.npz`` (test gate
  probabilities, expert means, prediction and targets, for the MoE figures) and, for the
  gradient-trained gates, ``model.pt``;
- ``reports/metrics/<dataset>/moe_<gate>_z<d>.json``: ``test_mse`` (of the mixed
  prediction sum_k g_k t_k, Singh et al. 2018, sec. 4.1; standardised targets),
  ``test_mse_mode`` (of the most probable expert's prediction: a soft but correctly ranked
  gate averages the experts in the mixed prediction, not here), ``test_nll`` (-ln p(t|x),
  nats per example), ``gate_confidence`` (mean of max_k g_k(x)), the gate's
  ``acc``/``nmi``/``ari``/``completeness``/``n_clusters_used`` against the true classes,
  ``train_mse``, ``train_seconds``, ``epochs``, ``seed``, ``latent_dim``, ``n_experts``;
- ``reports/curves/<dataset>/moe_<gate>_z<d>/``: per epoch (per EM iteration for
  ``gmm_moe``; one step for the closed-form references) training and test terms.

``protocol`` ``paper`` (the stages ``moe_paper@`` / ``moe_plain_paper@``, for the gates of
``moe.paper_gates`` / ``moe.paper_plain_gates``) trains a gradient-trained gate as Singh et
al. 2018 do (sec. 8.2): from random networks, no warm-up and no anchor
(``vaemix.protocols.MOE_PAPER_START``), its epochs scaled by ``budget.paper_epoch_scale``
when set; the run is ``moe_<gate>_paper_z<d>``. Its other training keys are ``moe.<gate>``'s:
the paper gives none.

The gradient-trained gates with ``init: start`` (the default; :func:`vaemix.moe.model.start_moe`)
read, for each training seed, that seed's pretrained autoencoder
``artifacts/<dataset>/ae/model.pt`` and the N2D partition of its training codes,
``pred_train`` of ``artifacts/<dataset>/ae+umap_gmm/pred.npz`` (the first seed's at the top
of those folders, the others' under ``seed<s>/``, :mod:`vaemix.seeds`). Their metrics add
the start's own test scores (``start_acc``, ``start_nmi``, ``start_test_mse``),
``init_seconds`` (counted in ``train_seconds``) and ``start_trunk_copied``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaemix.config import (
    GATE_START,
    resolve_device,
    scale_schedules,
    scaled_epochs,
    training_settings,
)
from vaemix.data import Prepared
from vaemix.errors import DataError
from vaemix.io import atomic_dir, save_npz
from vaemix.metrics import clustering_metrics, transductive_metrics
from vaemix.models.base import ModelSpec
from vaemix.models.init import load_ae_state, read_start_labels
from vaemix.moe.gmm_gate import fit_gmm_gate
from vaemix.moe.model import (
    GRADIENT_GATES,
    GatedMoE,
    fit_affine,
    one_hot,
    pack,
    reference_predict,
    start_moe,
)
from vaemix.protocols import MOE_PAPER_START, moe_paper_run, paper_budget
from vaemix.run_ids import RunId
from vaemix.schema import parse_section
from vaemix.seeds import ARTIFACTS, run_over_seeds, seed_path, seeds_of
from vaemix.training import Anchor, TrainConfig, batched, fit, seed_everything, to_tensor

NOT_CLUSTERINGS = ("linear",)   # reference gates whose "clusters" are not a clustering
DVMOE_KEYS = ("tau_start", "tau_end", "tau_anneal_epochs", "hard", "prior")


def n_experts_of(params: Mapping[str, Any], dataset: str) -> int:
    """``moe.n_experts``, or the number of clusters of ``model.<dataset>`` when null."""
    k = params["moe"].get("n_experts")
    return int(k) if k is not None else int(params["model"][dataset]["n_clusters"])


def gate_spec(
    params: Mapping[str, Any], dataset: str, gate: str, latent_dim: int,
    input_shape: tuple[int, ...], k: int,
) -> ModelSpec:
    """The gate network's shape: ``model.<dataset>`` with the swept latent dim, K experts
    and the gate section's ``hidden`` (null = the dataset's)."""
    m = params["model"][dataset]
    settings = scale_schedules(params, training_settings(params, "moe", gate, dataset))
    hidden = settings.get("hidden") or m["hidden"]
    options: dict[str, Any] = {"init": "none"}
    if gate == "dvmoe":
        options.update({key: settings[key] for key in DVMOE_KEYS if key in settings})
    return ModelSpec(input_shape=tuple(input_shape), latent_dim=max(int(latent_dim), 1),
                     n_clusters=k, net=str(m["net"]), hidden=tuple(int(h) for h in hidden),
                     likelihood=str(m["likelihood"]), options=options)


def _scores(out: Mapping[str, np.ndarray], t: np.ndarray, y: np.ndarray | None) -> dict:
    """MSE of the mixed prediction (sec. 4.1), MSE of the most probable expert's
    prediction, -ln p(t|x), the mean largest gate probability, and the argmax gate's
    clustering scores against ``y``."""
    gate, means = np.asarray(out["gate"]), np.asarray(out["means"])
    mode = means[np.arange(len(gate)), gate.argmax(1)]
    scores = {"mse": float(((out["t_hat"] - t) ** 2).mean()),
              "mse_mode": float(((mode - t) ** 2).mean()),
              "nll": float(-np.mean(out["log_lik"])),
              "gate_confidence": float(gate.max(1).mean())}
    if y is not None:
        scores.update(clustering_metrics(y, np.asarray(out["gate"]).argmax(1)))
    return scores


def start_settings(settings: Mapping[str, Any], gate: str) -> dict[str, Any]:
    """``init``, ``self_train_epochs``, ``self_train_weight`` and ``start_ridge`` of a
    gate's (scaled) settings (vaemix.config.GATE_START), defaults filled in; a bad value
    names ``moe.<gate>.<key>``."""
    start = parse_section(f"moe.{gate}", {k: v for k, v in settings.items() if k in GATE_START},
                          GATE_START)
    return {k: start[k] for k in ("init", "self_train_epochs", "self_train_weight",
                                  "start_ridge")}


def start_files(dataset: str, seed: int, seeds: list[int]) -> tuple[Path, Path]:
    """Seed ``seed``'s pretrained autoencoder and N2D partition (see the module docstring)."""
    return (seed_path(ARTIFACTS / dataset / "ae", seed, seeds) / "model.pt",
            seed_path(ARTIFACTS / dataset / "ae+umap_gmm", seed, seeds) / "pred.npz")


def read_start(ae_path: Path, pred_path: Path, n_train: int, k: int, dataset: str,
               gate: str) -> tuple[np.ndarray, dict[str, torch.Tensor]]:
    """The start's partition of the ``n_train`` training points (values < K) and the
    autoencoder's state dict; a missing file, or one of another split, raises a one-line
    DataError naming it."""
    how = (f"run the baselines@{dataset}-ae-umap_gmm stage first, or set moe.{gate}.init: "
           "none (a cluster index of K or more: set moe.n_experts to null)")
    labels = read_start_labels(pred_path, n_train, k, how)
    if not ae_path.is_file():
        raise DataError(f"{ae_path}: pretrained autoencoder not found; run the "
                        f"pretrain@{dataset}-ae stage first, or set moe.{gate}.init: none")
    return labels, load_ae_state(ae_path)


def gate_settings(params: Mapping[str, Any], gate: str, dataset: str,
                  protocol: str = "vaemix") -> dict[str, Any]:
    """``moe.<gate>`` for ``dataset``, its schedules scaled; under the ``paper`` protocol
    with Singh et al.'s start (random networks, no warm-up, no anchor)."""
    given = training_settings(params, "moe", gate, dataset)
    if protocol == "paper":
        given.update(MOE_PAPER_START)
    return scale_schedules(params, given)


def _fit_gradient(
    gate: str, latent_dim: int, dataset: str, data: Prepared, params: Mapping[str, Any],
    seed: int, k: int, labelled: bool, curves_dir: Path, protocol: str,
) -> tuple[dict, dict, dict, GatedMoE]:
    device = resolve_device(params["device"])
    settings = gate_settings(params, gate, dataset, protocol)
    start = start_settings(settings, gate)
    config = TrainConfig.from_settings(settings, scaled_epochs(params, settings["epochs"]), seed)
    spec = gate_spec(params, dataset, gate, latent_dim, data.input_shape, k)
    model = GatedMoE(gate, spec, data.t_train.shape[1], objective=params["moe"]["objective"],
                     vae_weight=float(settings.get("vae_weight", 1.0)),
                     mc_samples=int(settings.get("mc_samples", 10))).to(device)
    train_rows = to_tensor(pack(data.x_train, data.t_train, data.y_train), device)
    test_rows = to_tensor(pack(data.x_test, data.t_test, data.y_test), device)
    y_test = data.y_test if labelled else None

    def predict(rows: torch.Tensor) -> dict[str, np.ndarray]:
        return {key: v.numpy() for key, v in batched(model.predict, rows).items()}

    def probe(_: Any) -> dict[str, float]:
        s = _scores(predict(test_rows), data.t_test, y_test)
        return {key: s[key] for key in ("mse", "mse_mode", "nll", "acc", "nmi") if key in s}

    # the start from the front end (vaemix.moe.model.start_moe) counts in train_seconds, as a
    # mixture model's start does (vaemix.runs); its own test scores are kept as start_*
    init_start = time.perf_counter()
    info: dict[str, Any] = {}
    anchor = None
    if start["init"] == "start":
        ae_path, pred_path = start_files(dataset, seed, seeds_of(params))
        labels, ae_state = read_start(ae_path, pred_path, len(data.x_train), k, dataset,
                                     gate)
        info = start_moe(model, data.x_train, data.t_train.astype(np.float64), labels, ae_state,
                         epochs=start["self_train_epochs"], weight=start["self_train_weight"],
                         ridge=start["start_ridge"], seed=seed, batch_size=config.batch_size,
                         lr=config.lr)
        if not info["start_trunk_copied"]:
            print(f"moe {dataset}/{RunId.moe(gate, latent_dim)}: the gate's hidden sizes differ "
                  f"from the autoencoder's ({ae_path}); its trunk starts random")
        model.eval()
        first = _scores(predict(test_rows), data.t_test, y_test)
        info.update({f"start_{key}": first[key] for key in ("acc", "nmi") if key in first},
                    start_test_mse=first["mse"])
        if config.anchor_weight > 0:  # the gate held to the start (vaemix.training.Anchor)
            anchor = Anchor(torch.as_tensor(labels, dtype=torch.long, device=device),
                            config.anchor_weight)
    init_seconds = time.perf_counter() - init_start

    result = fit(model, train_rows, config, evaluate=probe, curves_dir=curves_dir,
                 desc=f"moe {dataset}/{RunId.moe(gate, latent_dim).name}", anchor=anchor)
    timing = {"train_seconds": init_seconds + result.train_seconds,
              "init_seconds": init_seconds,
              "samples_per_second": result.samples_per_second, "epochs": result.epochs, **info}
    return predict(train_rows), predict(test_rows), timing, model


def _write_curves(curves_dir: Path, records: list[dict[str, float]]) -> None:
    """Curves of fits that do not go through the training loop (dvclive, one step each)."""
    from dvclive import Live

    with atomic_dir(curves_dir) as tmp:
        with Live(dir=str(tmp), save_dvc_exp=False, dvcyaml=None, report=None) as live:
            for record in records:
                for key, value in record.items():
                    live.log_metric(key, value, plot=True)
                live.next_step()


def _fit_closed_form(
    gate: str, data: Prepared, params: Mapping[str, Any], seed: int, k: int, labelled: bool,
    curves_dir: Path,
) -> tuple[dict, dict, dict]:
    """``gmm_moe`` by EM; ``linear`` (one map) and ``oracle`` (gate = the true class) by
    least squares. Their curves: the EM log-likelihood per iteration, then the scores."""
    t_train, t_test = data.t_train.astype(np.float64), data.t_test.astype(np.float64)
    start = time.perf_counter()
    if gate == "gmm_moe":
        s = params["moe"]["gmm_moe"]
        fitted = fit_gmm_gate(data.x_train, t_train, k, pca_dim=s["pca_dim"],
                              max_iter=s["max_iter"], tol=float(s["tol"]),
                              reg_covar=float(s["reg_covar"]), ridge=float(s["ridge"]),
                              seed=seed)
        out_train, out_test = fitted.predict(data.x_train, t_train), fitted.predict(
            data.x_test, t_test)
        history = fitted.history
    else:
        k = 1 if gate == "linear" else data.n_classes
        groups = np.zeros(len(t_train), dtype=np.int64) if gate == "linear" else data.y_train
        affine = fit_affine(data.x_train, t_train, groups, k,
                            ridge=float(params["moe"][gate]["ridge"]))

        def gate_of(y: np.ndarray) -> np.ndarray:
            return np.ones((len(y), 1)) if gate == "linear" else one_hot(y, k)

        out_train = reference_predict(affine, data.x_train, t_train, gate_of(data.y_train))
        out_test = reference_predict(affine, data.x_test, t_test, gate_of(data.y_test))
        history = []
    seconds = time.perf_counter() - start
    epochs = max(len(history), 1)
    timing: dict[str, Any] = {"train_seconds": seconds, "epochs": epochs,
                              "samples_per_second": len(t_train) * epochs / max(seconds, 1e-9)}
    if gate == "gmm_moe":
        timing["em_converged"] = bool(fitted.converged)
    test = _scores(out_test, t_test,
                   data.y_test if labelled and gate not in NOT_CLUSTERINGS else None)
    last = {"train/mse": _scores(out_train, t_train, None)["mse"],
            **{f"test/{key}": test[key] for key in ("mse", "mse_mode", "nll", "acc", "nmi")
               if key in test}}
    records = [{"train/em_log_lik": v} for v in history]
    records = records[:-1] + [{**(records[-1] if records else {}), **last}]
    _write_curves(curves_dir, records)
    return out_train, out_test, timing


def run_moe(
    dataset: str, gate: str, latent_dim: int, data: Prepared, params: Mapping[str, Any],
    protocol: str = "vaemix",
) -> dict[str, Any]:
    """Fit and export one run per seed of ``params`` under ``protocol`` (vaemix | paper: a
    gradient-trained gate only; see the module docstring and :mod:`vaemix.seeds`); returns
    the aggregated metrics written."""
    name = gate
    if protocol == "paper":
        if gate not in GRADIENT_GATES:
            raise ValueError(f"gate {gate!r} is fitted in closed form: it has no paper protocol")
        params, name = paper_budget(params), moe_paper_run(gate)
    labelled = bool((data.y_train >= 0).all() and (data.y_test >= 0).all())
    if gate == "oracle" and not labelled:
        raise DataError(f"data/prepared/{dataset}: the oracle gate needs class labels, and "
                        "some examples are unlabelled; leave 'oracle' out of moe.plain_gates")

    def fit_seed(seed: int, artifacts: Path, curves: Path, _checkpoint: Path) -> dict:
        return _run_one(dataset, gate, latent_dim, data, params, seed, labelled, artifacts,
                        curves, protocol)

    return run_over_seeds(params, dataset, RunId.moe(name, latent_dim).name, fit_seed)


def _run_one(
    dataset: str, gate: str, latent_dim: int, data: Prepared, params: Mapping[str, Any],
    seed: int, labelled: bool, artifacts: Path, curves_dir: Path, protocol: str = "vaemix",
) -> dict[str, Any]:
    """One training seed ``seed`` of :func:`run_moe` (``params["seed"]`` is the data's),
    exported into ``artifacts`` and ``curves_dir``; its metrics."""
    seed_everything(seed)
    k = n_experts_of(params, dataset)
    t_train, t_test = data.t_train.astype(np.float64), data.t_test.astype(np.float64)
    model = None
    if gate in GRADIENT_GATES:
        out_train, out_test, timing, model = _fit_gradient(
            gate, latent_dim, dataset, data, params, seed, k, labelled, curves_dir, protocol)
    else:
        out_train, out_test, timing = _fit_closed_form(gate, data, params, seed, k, labelled,
                                                       curves_dir)

    # one affine map (linear) is a reference, not a clustering: it publishes no cluster scores
    clusters = labelled and gate not in NOT_CLUSTERINGS
    scores = _scores(out_test, t_test, data.y_test if clusters else None)
    if clusters:
        scores.update(transductive_metrics(data.y_train,
                                           np.asarray(out_train["gate"]).argmax(1)))
    metrics: dict[str, Any] = {"test_mse": scores.pop("mse"), "test_nll": scores.pop("nll"),
                               "test_mse_mode": scores.pop("mse_mode"),
                               **scores, "train_mse": _scores(out_train, t_train, None)["mse"],
                               **timing, "seed": seed, "latent_dim": int(latent_dim),
                               "n_experts": int(np.asarray(out_test["gate"]).shape[1])}
    with atomic_dir(artifacts) as out:
        save_npz(out / "pred.npz", pred_test=np.asarray(out_test["gate"]).argmax(1),
                 y_test=data.y_test)
        save_npz(out / "moe.npz", gate_test=np.asarray(out_test["gate"], dtype=np.float32),
                 means_test=np.asarray(out_test["means"], dtype=np.float32),
                 t_hat_test=np.asarray(out_test["t_hat"], dtype=np.float32),
                 t_test=data.t_test, y_test=data.y_test)
        if model is not None:
            torch.save({"state_dict": model.state_dict(), "gate": gate,
                        "latent_dim": int(latent_dim)}, out / "model.pt")
    return metrics

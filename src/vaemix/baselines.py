"""Clustering baselines fitted on encoder latents (Nagpal et al. 2019, Table 1).

K-means, a Gaussian mixture (EM) and a truncated Dirichlet-process Gaussian mixture
(variational inference), all from scikit-learn, and N2D's UMAP + GMM (McConville et al.
2020; :mod:`vaemix.umap_gmm`). Each is fitted on the training latents and evaluated on the
test latents of the same encoder.
"""

from __future__ import annotations

import math
import time
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture, GaussianMixture

from vaemix.errors import DataError
from vaemix.metrics import clustering_metrics, transductive_metrics

# Added to the diagonal of every covariance. The latents are standardised first, so this
# is small against unit variance; it keeps collapsed (constant) latent dims from making a
# covariance singular.
REG_COVAR = 1e-5

LATENT_KEYS = ("z_train", "z_test", "y_train", "y_test")

# A fit function takes standardised training latents, the number of clusters K, the
# settings from params["baseline"][name] and a seed; it returns the fitted estimator
# (anything with ``.predict``) and a dict of diagnostics.
FitFn = Callable[[np.ndarray, int, Mapping[str, Any], int], tuple[Any, dict[str, Any]]]


def _fit_kmeans(z: np.ndarray, k: int, s: Mapping[str, Any], seed: int):
    km = KMeans(n_clusters=k, n_init=int(s["n_init"]), random_state=seed).fit(z)
    return km, {"n_iter": int(km.n_iter_)}


def _fit_gmm(z: np.ndarray, k: int, s: Mapping[str, Any], seed: int):
    gmm = GaussianMixture(
        n_components=k,
        covariance_type=s["covariance_type"],
        n_init=int(s["n_init"]),
        max_iter=int(s["max_iter"]),
        reg_covar=REG_COVAR,
        random_state=seed,
    ).fit(z)
    return gmm, {"converged": bool(gmm.converged_), "n_iter": int(gmm.n_iter_)}


def dp_truncation(n_clusters: int, truncation_factor: float, n_train: int) -> int:
    """Number of DP components: ``ceil(factor * K)``, at most one per training point."""
    # round() first so that e.g. 1.1 * 10 = 11.000000000000002 gives 11, not 12.
    return min(math.ceil(round(truncation_factor * n_clusters, 9)), n_train)


def _fit_dpgmm(z: np.ndarray, k: int, s: Mapping[str, Any], seed: int):
    truncation = dp_truncation(k, float(s["truncation_factor"]), len(z))
    dp = BayesianGaussianMixture(
        n_components=truncation,
        weight_concentration_prior_type="dirichlet_process",
        weight_concentration_prior=s.get("weight_concentration_prior"),  # None: 1/truncation
        # the Wishart prior's pseudo-count on the covariances; None: the latent dim. It,
        # not the concentration, sets how many components survive (bench/dpgmm_prior.py)
        degrees_of_freedom_prior=s.get("degrees_of_freedom_prior"),
        covariance_type=s["covariance_type"],
        max_iter=int(s["max_iter"]),
        reg_covar=REG_COVAR,
        random_state=seed,
    ).fit(z)
    used = int(np.sum(dp.weights_ > float(s["min_weight"])))
    extra = {
        "learns_k": True,   # the summary shows its effective K (vaemix.report.summary)
        "n_components_effective": used,
        "truncation": truncation,
        "converged": bool(dp.converged_),
        "n_iter": int(dp.n_iter_),
    }
    return dp, extra


def _fit_umap_gmm(z: np.ndarray, k: int, s: Mapping[str, Any], seed: int):
    """UMAP of the latents, a GMM on the embedding (McConville et al. 2020, N2D)."""
    from vaemix.umap_gmm import fit_umap_gmm  # imports numba: only when used

    model, _, extra = fit_umap_gmm(z, k, seed, s)
    return model, extra


BASELINES: dict[str, FitFn] = {"kmeans": _fit_kmeans, "gmm": _fit_gmm, "dpgmm": _fit_dpgmm,
                               "umap_gmm": _fit_umap_gmm}
# Baselines fitted on the raw latents: UMAP's k-NN graph is built on the autoencoder's own
# distances, as in N2D; the others see standardised latents (see fit_baseline).
RAW_LATENTS = ("umap_gmm",)


@dataclass
class BaselineFit:
    """A fitted baseline together with the standardisation of its training latents."""

    name: str
    model: Any
    mean: np.ndarray
    scale: np.ndarray
    fit_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    def transform(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64)
        if z.ndim != 2 or z.shape[1] != self.mean.size:
            raise ValueError(
                f"expected latents of shape (n, {self.mean.size}), got {tuple(z.shape)}"
            )
        return (z - self.mean) / self.scale

    def predict(self, z: np.ndarray) -> np.ndarray:
        """Cluster index (int64) of every row of ``z``."""
        return np.asarray(self.model.predict(self.transform(z)), dtype=np.int64)

    def train_labels(self, z_train: np.ndarray) -> np.ndarray:
        """The clusters of the training latents the baseline was fitted on: those of the
        fit itself where it keeps them (UMAP's embedding of its own training points is not
        what ``transform`` gives them again), else :meth:`predict`."""
        own = getattr(self.model, "train_labels", None)
        return np.asarray(own, np.int64) if own is not None else self.predict(z_train)


def fit_baseline(
    name: str, z_train: np.ndarray, n_clusters: int, settings: Mapping[str, Any], seed: int
) -> BaselineFit:
    """Fit baseline ``name`` (a key of :data:`BASELINES`) on the training latents.

    ``settings`` is ``params["baseline"][name]``. The same seed gives the same fit.
    """
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r} (known: {', '.join(BASELINES)})")
    z = np.asarray(z_train, dtype=np.float64)
    if z.ndim != 2 or len(z) == 0:
        raise ValueError(f"z_train must be a non-empty (n, d) array, got shape {z.shape}")
    if not np.isfinite(z).all():
        raise ValueError("z_train contains NaN or infinite values")
    if not 0 < n_clusters <= len(z):
        raise ValueError(
            f"n_clusters={n_clusters} must be between 1 and the number of training "
            f"latents ({len(z)})"
        )
    # Standardise each latent dim with the training mean/std: latent scales differ a lot
    # between dims (and between encoders), and K-means' Euclidean distance - like the
    # spherical/diagonal covariance initialisation of the mixtures - is scale-sensitive,
    # so large-scale dims would otherwise dominate. Constant dims keep scale 1.
    mean = z.mean(axis=0)
    scale = z.std(axis=0)
    scale[scale < 1e-12] = 1.0
    if name in RAW_LATENTS:
        mean, scale = np.zeros_like(mean), np.ones_like(scale)
    start = time.perf_counter()
    with warnings.catch_warnings():
        # non-convergence is recorded in ``extra`` instead
        warnings.simplefilter("ignore", ConvergenceWarning)
        model, extra = BASELINES[name]((z - mean) / scale, n_clusters, settings, seed)
    seconds = time.perf_counter() - start
    return BaselineFit(name, model, mean, scale, seconds, extra)


def load_latents(path: str | Path) -> dict[str, np.ndarray]:
    """Read ``latents.npz`` (z_train, z_test, y_train, y_test); DataError if unusable."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: latents not found (run the pretrain stage first)")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: not a readable .npz file ({err})") from None
    missing = [k for k in LATENT_KEYS if k not in arrays]
    if missing:
        raise DataError(f"{path}: missing array(s) {', '.join(missing)}")
    for split in ("train", "test"):
        z, y = arrays[f"z_{split}"], arrays[f"y_{split}"]
        if z.ndim != 2 or y.ndim != 1 or len(z) != len(y) or len(z) == 0:
            raise DataError(
                f"{path}: z_{split} {z.shape} and y_{split} {y.shape} must be a non-empty "
                "(n, d) array and n labels"
            )
        if not np.isfinite(z).all():
            raise DataError(f"{path}: z_{split} contains NaN or infinite values")
    return arrays


def evaluate_baseline(
    name: str,
    latents: Mapping[str, np.ndarray],
    n_clusters: int,
    settings: Mapping[str, Any],
    seed: int,
) -> tuple[dict[str, Any], np.ndarray]:
    """Fit on ``z_train``, predict ``z_test``; return (test metrics, test predictions).

    The metrics are :func:`vaemix.metrics.clustering_metrics` on the test labels plus
    ``train_seconds``, ``seed`` and the baseline's ``extra`` diagnostics.
    """
    fit = fit_baseline(name, latents["z_train"], n_clusters, settings, seed)
    pred = fit.predict(latents["z_test"])
    return held_out_metrics(fit, latents["y_test"], pred, seed), pred


def held_out_metrics(fit: BaselineFit, y_test: np.ndarray, pred: np.ndarray,
                     seed: int) -> dict[str, Any]:
    """The clustering scores of ``pred`` against ``y_test`` (only the clusters used when
    the data has no labels, marked -1: no score against a missing label), the fit's time
    and diagnostics."""
    if (np.asarray(y_test) >= 0).all():
        metrics = clustering_metrics(y_test, pred)
    else:
        metrics = {"n_clusters_used": int(np.unique(pred).size)}
    metrics.update(train_seconds=fit.fit_seconds, seed=seed, **fit.extra)
    return metrics


def run_baseline(params: Mapping[str, Any], dataset: str, encoder_run: str,
                 baseline: str) -> dict[str, Any]:
    """Stage body of ``baselines@`` (and of the latent sweep's ``baselines_z@``).

    For every seed of ``params`` (:mod:`vaemix.seeds`): read that seed's
    ``artifacts/<dataset>/<encoder_run>/[seed<s>/]latents.npz``, fit ``baseline`` on the
    training latents with that seed and keep its test predictions; then publish
    ``artifacts/<dataset>/<encoder_run>+<baseline>/`` and the metrics file with the mean,
    the std and each seed's metrics. Returns the aggregated metrics.
    """
    from vaemix import io
    from vaemix.config import check_clusters_fit
    from vaemix.run_ids import RunId
    from vaemix.seeds import run_over_seeds, seed_path, seeds_of

    n_clusters = params["model"][dataset]["n_clusters"]
    settings = params["baseline"][baseline]
    seeds = seeds_of(params)

    def fit_seed(seed: int, artifacts: Path, _curves: Path, _checkpoint: Path) -> dict:
        encoder_dir = seed_path(Path("artifacts") / dataset / encoder_run, seed, seeds)
        latents = load_latents(encoder_dir / "latents.npz")
        check_clusters_fit(params, dataset, len(latents["z_train"]), str(encoder_dir))
        fit = fit_baseline(baseline, latents["z_train"], n_clusters, settings, seed)
        pred = fit.predict(latents["z_test"])
        # the training points' clusters too: ae+umap_gmm's are the start of the mixture
        # models (init_clusters: umap)
        pred_train = fit.train_labels(latents["z_train"])
        io.save_npz(artifacts / "pred.npz", pred_test=pred, y_test=latents["y_test"],
                    pred_train=pred_train, y_train=latents["y_train"])
        return {**held_out_metrics(fit, latents["y_test"], pred, seed),
                **transductive_metrics(latents["y_train"], pred_train)}

    return run_over_seeds(params, dataset, RunId.parse(encoder_run).with_baseline(baseline).name,
                          fit_seed,
                          curves=False)

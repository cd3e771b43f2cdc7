"""N2D clustering: UMAP of the latents, then a Gaussian mixture on the embedding.

McConville, Santos-Rodriguez, Piechocki & Craddock 2020, "N2D: (Not Too) Deep Clustering
via Clustering the Local Manifold of an Autoencoded Embedding", sec. 3: an autoencoder's
codes are embedded by UMAP (McInnes, Healy & Melville 2018) into as many dimensions as
there are clusters, with ``min_dist`` 0 so that points of one cluster pack tightly, and a
full-covariance Gaussian mixture clusters the embedding. Their MNIST settings: 20
neighbours, 10 components, ``min_dist`` 0. UMAP is fitted on the training latents only;
test latents are placed in the fitted embedding by UMAP's ``transform``.

Used twice in vaemix: as the ``umap_gmm`` baseline on every encoder's latents, and as the
label-free start (``init_clusters: umap``) that the mixture models begin from.

Restarts: vaemix's, not N2D's. Their code fits one GMM; here EM runs from ``n_init`` (50)
K-means starts and keeps the one of the highest likelihood. On a spiral's codes one start, or
five, often stopped in a local optimum that splits an arm and merges two others: over ten
UMAP seeds of one set of codes, 5 restarts gave ACC 0.68-0.95 (mean 0.797) and 50 gave
0.82-0.95 (mean 0.897), the likelihood as high or higher on every seed; on MNIST both gave
the same partition (reports/benchmarks/README.md, "The spiral start and the GMM's restarts").

Neighbours: vaemix's, not N2D's. UMAP is given each point's exact nearest neighbours at every
size (:func:`exact_neighbours`), as umap-learn itself finds them below 4,096 points; above,
umap-learn would approximate them by NN-descent, whose kernel numba compiles anew in every
process. Test latents are placed by ``transform`` from exact distances likewise.

Determinism: UMAP with a ``random_state`` runs its optimisation on one thread and gives the
same embedding for the same seed and inputs; the GMM is seeded too.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import pairwise_distances
from sklearn.mixture import GaussianMixture

# The N2D paper's MNIST settings; n_components None = the number of clusters.
DEFAULTS: dict[str, Any] = {
    "n_neighbors": 20,
    "n_components": None,
    "min_dist": 0.0,
    "covariance_type": "full",
    "n_init": 50,   # vaemix's; N2D's code fits one GMM (scikit-learn's default)
    "max_points": 20000,
}
REG_COVAR = 1e-5  # added to the GMM's covariance diagonals (the embedding has unit scale)


# numba compiles UMAP for the CPU it runs on, and code for another CPU can round
# differently (on spiral, one tiny UMAP + GMM partition moved between two x86 machines). A
# fixed target makes the embedding the same on every x86-64 CPU with AVX2 (set
# NUMBA_CPU_NAME=host to compile for this one).
NUMBA_CPU = "haswell"
# UMAP.fit computes exact neighbours below this many points (umap-learn's "small data") and
# approximates them by NN-descent above. vaemix hands UMAP exact neighbours at every size
# (:func:`exact_neighbours`): NN-descent's numba kernel takes the distance function as an
# argument, which numba's cache cannot keep, so it compiled anew in every process that fitted
# UMAP on more points (18 s a stage on an AMD EPYC, 20-odd stages of the quick profile).
UMAP_EXACT_BELOW = 4096
TRANSFORM_ROWS = 2048   # rows placed per transform call: exact distances to every fitted point


def _umap_class() -> Any:
    """umap.UMAP, imported on first use (importing numba takes seconds), with numba's
    cache folder and CPU target (:data:`NUMBA_CPU`) set first; its noisy warnings about
    parallelism with a fixed seed are silenced."""
    os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(os.path.expanduser("~"),
                                                          ".cache", "numba"))
    os.environ.setdefault("NUMBA_CPU_NAME", NUMBA_CPU)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import umap

    _cache_compiled_code()
    return umap.UMAP


def _cache_compiled_code() -> None:
    """Keep what numba compiles for umap-learn and pynndescent in its cache folder, as
    ``cache=True`` would: most of their functions are compiled anew in every process
    otherwise (10-40 s a stage at any size; loaded from the cache: under a second, the
    same machine code, so the same numbers)."""
    from numba.core.registry import CPUDispatcher

    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith(("umap.", "pynndescent.")):
            continue
        for value in list(vars(module).values()):
            if (isinstance(value, CPUDispatcher)
                    and type(value._cache).__name__ == "NullCache"):   # not cached yet
                value.enable_caching()


@dataclass
class UmapGmm:
    """A fitted UMAP embedding and the Gaussian mixture on it."""

    embedding: Any
    gmm: GaussianMixture
    train_labels: np.ndarray | None = None  # the clusters of the points it was fitted on

    def embed(self, z: np.ndarray) -> np.ndarray:
        """UMAP's placement of ``z`` [N, d] in the fitted embedding (``transform``), taken
        TRANSFORM_ROWS rows at a time so that the distances to the fitted points stay small
        in memory; each call is seeded by UMAP's ``transform_seed``."""
        z = np.asarray(z, np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parts = [self.embedding.transform(z[i:i + TRANSFORM_ROWS])
                     for i in range(0, len(z), TRANSFORM_ROWS)]
        if not parts:
            return np.zeros((0, self.embedding.n_components))
        return np.asarray(np.concatenate(parts), np.float64)

    def predict_proba(self, z: np.ndarray) -> np.ndarray:
        """Responsibilities [N, K] of the mixture at the embedding of ``z``."""
        return self.gmm.predict_proba(self.embed(z))

    def predict(self, z: np.ndarray) -> np.ndarray:
        """The cluster index (int64) of every row of ``z``."""
        return np.asarray(self.gmm.predict(self.embed(z)), dtype=np.int64)


def settings_with_defaults(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """``settings`` over :data:`DEFAULTS`."""
    return {**DEFAULTS, **dict(settings or {})}


def exact_neighbours(z: np.ndarray, k: int, rows: int = TRANSFORM_ROWS
                     ) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of ``z`` [N, d] to each row, itself first at distance 0, then
    by Euclidean distance (ties by index): indices [N, k] int32 and distances [N, k]
    float32, the pair UMAP takes as ``precomputed_knn``. Exact, from float64 squared
    distances ``|a|^2 + |b|^2 - 2 a.b`` computed ``rows`` rows at a time."""
    z64 = np.asarray(z, dtype=np.float64)
    n = len(z64)
    k = min(int(k), n)
    sq = np.einsum("ij,ij->i", z64, z64)
    indices = np.empty((n, k), dtype=np.int32)
    dists = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, rows):
        block = np.arange(start, min(start + rows, n))
        d2 = np.maximum(sq[block, None] + sq[None, :] - 2.0 * z64[block] @ z64.T, 0.0)
        d2[np.arange(len(block)), block] = -1.0          # itself first
        near = np.argpartition(d2, k - 1, axis=1)[:, :k]
        near_d2 = np.take_along_axis(d2, near, axis=1)
        order = np.lexsort((near, near_d2), axis=1)
        indices[block] = np.take_along_axis(near, order, axis=1)
        dists[block] = np.sqrt(np.maximum(np.take_along_axis(near_d2, order, axis=1), 0.0))
    return indices, dists


def _transform_exactly(model: Any) -> None:
    """Make a UMAP fitted on :func:`exact_neighbours` place new points as umap-learn does
    below UMAP_EXACT_BELOW points: exact distances to every fitted point (computed by
    scikit-learn), where it would otherwise refuse, having no NN-descent index to query.
    Sets three private attributes of umap-learn 0.5.12 (pinned), read only by
    ``transform``."""
    model._small_data = True
    model._input_distance_func = "euclidean"
    del model._knn_search_index


def umap_graph(z: np.ndarray, n_neighbors: int, seed: int) -> Any:
    """UMAP's fuzzy k-nearest-neighbour graph of ``z`` [N, d] (McInnes et al. 2018, sec.
    3.1: the symmetrised fuzzy union of the local neighbourhoods), the graph that UMAP's
    layout preserves, as a symmetric sparse [N, N] matrix of membership strengths."""
    _umap_class()  # sets the numba cache and imports umap quietly
    from umap.umap_ import fuzzy_simplicial_set

    z = np.asarray(z, dtype=np.float32)
    k = min(int(n_neighbors), len(z) - 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if len(z) < UMAP_EXACT_BELOW:   # as UMAP.fit on small data
            graph, _, _ = fuzzy_simplicial_set(pairwise_distances(z), k,
                                               np.random.RandomState(seed), "precomputed")
        else:                           # as fit_umap_gmm's UMAP on more points
            indices, dists = exact_neighbours(z, k)
            graph, _, _ = fuzzy_simplicial_set(z, k, np.random.RandomState(seed), "euclidean",
                                               knn_indices=indices, knn_dists=dists)
    return graph.tocsr()


def fit_gmm(embedding: np.ndarray, n_clusters: int, seed: int,
            settings: Mapping[str, Any] | None = None) -> GaussianMixture:
    """N2D's Gaussian mixture of a UMAP embedding [N, n_components]: EM from ``n_init``
    K-means starts, the one of the highest likelihood kept (scikit-learn's ``n_init``)."""
    s = settings_with_defaults(settings)
    return GaussianMixture(
        n_components=n_clusters, covariance_type=s["covariance_type"], n_init=int(s["n_init"]),
        reg_covar=REG_COVAR, max_iter=500, random_state=seed,
    ).fit(embedding)


def fit_umap_gmm(
    z: np.ndarray, n_clusters: int, seed: int, settings: Mapping[str, Any] | None = None
) -> tuple[UmapGmm, np.ndarray, dict[str, Any]]:
    """Fit UMAP and the GMM on latents ``z`` [N, d].

    Returns the fitted model, the training points' labels [N] and diagnostics. Above
    ``max_points`` points, UMAP is fitted on a seeded random subset and the rest are
    placed by ``transform``.
    """
    s = settings_with_defaults(settings)
    z = np.asarray(z, dtype=np.float32)
    n = len(z)
    if n <= n_clusters:
        raise ValueError(f"UMAP + GMM needs more points than clusters, got {n} for "
                         f"{n_clusters}")
    rng = np.random.default_rng(seed)
    cap = s["max_points"]
    fit_idx = (np.sort(rng.choice(n, size=cap, replace=False))
               if cap is not None and n > cap else np.arange(n))
    n_fit = len(fit_idx)
    # UMAP's spectral start needs n_components < n - 1; tiny sets get fewer components
    n_components = min(int(s["n_components"] or n_clusters), max(1, n_fit - 2))
    n_neighbors = min(int(s["n_neighbors"]), n_fit - 1)
    exact = n_fit >= UMAP_EXACT_BELOW    # below, umap-learn's own exact path
    umap_model = _umap_class()(
        n_neighbors=n_neighbors,
        n_components=n_components,
        min_dist=float(s["min_dist"]),
        metric="euclidean",
        random_state=seed,
        init="spectral" if n_fit > n_components + 2 else "random",
        precomputed_knn=exact_neighbours(z[fit_idx], n_neighbors) if exact else (None, None, None),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        emb_fit = np.asarray(umap_model.fit_transform(z[fit_idx]), dtype=np.float64)
    if exact:
        _transform_exactly(umap_model)
    gmm = fit_gmm(emb_fit, n_clusters, seed, s)
    model = UmapGmm(umap_model, gmm)
    if n_fit == n:
        labels = np.asarray(gmm.predict(emb_fit), dtype=np.int64)
    else:
        labels = model.predict(z)
    model.train_labels = labels
    extra = {"umap_components": n_components, "umap_points": n_fit,
             "converged": bool(gmm.converged_), "n_iter": int(gmm.n_iter_)}
    return model, labels, extra

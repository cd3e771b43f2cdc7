"""Clustering metrics: Hungarian-matched accuracy, NMI, ARI, completeness.

Cluster ids are arbitrary, so accuracy first matches clusters to classes. The matching is
one-to-one (each cluster explains at most one class and each class at most one cluster),
as in the evaluation code of DEC and VaDE; see :func:`cluster_accuracy`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, completeness_score, normalized_mutual_info_score


def _labels(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true).ravel()
    y_pred = np.asarray(y_pred).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} labels but y_pred has {y_pred.size}")
    if y_true.size == 0:
        raise ValueError("cannot score an empty labelling")
    return y_true, y_pred


def _contingency(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Counts ``table[i, j]`` of points of the i-th class (sorted) in the j-th cluster."""
    _, ci = np.unique(y_true, return_inverse=True)
    _, kj = np.unique(y_pred, return_inverse=True)
    table = np.zeros((ci.max() + 1, kj.max() + 1), dtype=np.int64)
    np.add.at(table, (ci, kj), 1)
    return table


def _match(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one class -> cluster matching maximising the matched counts."""
    return linear_sum_assignment(table, maximize=True)


def cluster_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Accuracy after the best one-to-one matching of clusters to classes.

    Labels may be any integers (they need not be ``0..K-1``). The matching is found with
    the Hungarian algorithm on the class x cluster contingency table and is one-to-one:
    with more clusters than classes, each class is matched to a single cluster and the
    points of the unmatched clusters count as errors; with fewer clusters than classes,
    the unmatched classes count as errors. This is the convention of the DEC/VaDE
    ``cluster_acc`` code; a many-to-one mapping (each cluster to its majority class)
    would instead reward over-clustering.
    """
    y_true, y_pred = _labels(y_true, y_pred)
    table = _contingency(y_true, y_pred)
    rows, cols = _match(table)
    return float(table[rows, cols].sum() / y_true.size)


def confusion(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Contingency matrix with clusters reordered to line up with the classes.

    Rows are the classes in sorted order. Columns are the clusters: first those matched
    to a class (as in :func:`cluster_accuracy`), in the order of their class, then the
    unmatched clusters in sorted label order. With at least as many clusters as classes,
    the diagonal therefore holds the correctly clustered counts.
    """
    y_true, y_pred = _labels(y_true, y_pred)
    table = _contingency(y_true, y_pred)
    rows, cols = _match(table)  # rows come back sorted
    matched = list(cols[np.argsort(rows)])
    rest = [j for j in range(table.shape[1]) if j not in set(matched)]
    return table[:, matched + rest]


def clustering_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """ACC, NMI (arithmetic normalisation), ARI, completeness and the clusters used.

    ``n_clusters_used`` is the number of distinct predicted clusters. Values are plain
    Python floats/ints, ready for :func:`vaemix.io.write_metrics`.
    """
    y_true, y_pred = _labels(y_true, y_pred)
    return {
        "acc": cluster_accuracy(y_true, y_pred),
        "nmi": float(normalized_mutual_info_score(y_true, y_pred, average_method="arithmetic")),
        "ari": float(adjusted_rand_score(y_true, y_pred)),
        "completeness": float(completeness_score(y_true, y_pred)),
        "n_clusters_used": int(np.unique(y_pred).size),
    }


# The scores of a clustering on the points it was fitted on, as deep clustering reports them
# (transductive: N2D, DEC, IDEC, VaDE all fit on the images they score), beside the test
# split's scores; the metrics files carry both, as train_<score>.
TRANSDUCTIVE = ("acc", "nmi", "ari", "n_clusters_used")


def transductive_metrics(y_train: np.ndarray, pred_train: np.ndarray) -> dict[str, Any]:
    """``train_acc``, ``train_nmi``, ``train_ari``, ``train_n_clusters_used`` of the clusters
    ``pred_train`` of the training points; {} when some training label is missing (-1)."""
    if not (np.asarray(y_train) >= 0).all():
        return {}
    scores = clustering_metrics(y_train, pred_train)
    return {f"train_{key}": scores[key] for key in TRANSDUCTIVE}


def min_clusters(n_clusters: int, fraction: float) -> int:
    """The fewest clusters a clustering of K = ``n_clusters`` may use without counting as
    collapsed: ceil(fraction * K), at least 1 (``collapse_fraction`` in params.yaml)."""
    return max(1, math.ceil(round(fraction * n_clusters, 9)))


def mark_collapsed(metrics: dict[str, Any], n_clusters: int, fraction: float) -> dict[str, Any]:
    """Add ``collapsed`` (fewer than :func:`min_clusters` clusters used) and
    ``n_clusters_expected`` (K) to a metrics dict that has ``n_clusters_used``; others are
    returned unchanged. A collapsed run is shown as such in every table, never as a result."""
    if "n_clusters_used" in metrics:
        used = int(metrics["n_clusters_used"])
        metrics["collapsed"] = used < min_clusters(n_clusters, fraction)
        metrics["n_clusters_expected"] = int(n_clusters)
    return metrics

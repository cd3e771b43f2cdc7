"""UMAP on exact neighbours at every size (vaemix.umap_gmm): the neighbours against an
independent exact search, the graph against umap-learn's own small-data computation, and a
fit above its small-data size that never builds an NN-descent index, and the GMM's restarts."""

import numpy as np
import pytest
from sklearn.metrics import pairwise_distances
from sklearn.neighbors import KDTree

from vaemix.metrics import cluster_accuracy
from vaemix.umap_gmm import (
    UMAP_EXACT_BELOW,
    _umap_class,
    exact_neighbours,
    fit_gmm,
    fit_umap_gmm,
    umap_graph,
)


def test_exact_neighbours_match_a_kd_tree_with_each_point_first():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(600, 6)).astype(np.float32)
    z[17] = z[3]                                   # a duplicate: both still list themselves first
    indices, dists = exact_neighbours(z, 9, rows=128)   # several blocks of rows
    want_d, want_i = KDTree(z.astype(np.float64)).query(z.astype(np.float64), k=9)
    assert indices.dtype == np.int32 and dists.dtype == np.float32
    np.testing.assert_array_equal(indices[:, 0], np.arange(600))
    np.testing.assert_array_equal(dists[:, 0], 0.0)
    np.testing.assert_allclose(dists, want_d, atol=1e-5)
    assert set(indices[3, :2]) == {3, 17} and set(indices[17, :2]) == {3, 17}
    # the same neighbours, the two copies counted as one (they tie, even as a 9th neighbour)
    def merged(i):
        return np.sort(np.where(i == 17, 3, i), axis=1)

    np.testing.assert_array_equal(merged(indices), merged(want_i))


def blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, size=n)
    return (6.0 * np.eye(4)[y] + rng.normal(size=(n, 4))).astype(np.float32), y


@pytest.fixture
def no_nn_descent(monkeypatch):
    """umap-learn's NN-descent index, made to fail if anything builds it."""
    _umap_class()
    import umap.umap_

    class Refused:
        def __init__(self, *args, **kwargs):
            raise AssertionError("NN-descent was built")

    monkeypatch.setattr(umap.umap_, "NNDescent", Refused)


def test_graph_above_the_small_data_size_is_umaps_exact_graph(no_nn_descent):
    """Above UMAP_EXACT_BELOW points the graph is the one umap-learn builds from the full
    distance matrix below it."""
    from umap.umap_ import fuzzy_simplicial_set

    z, _ = blobs(UMAP_EXACT_BELOW + 100, seed=1)
    got = umap_graph(z, 12, seed=0)
    want, _, _ = fuzzy_simplicial_set(pairwise_distances(z), 12, np.random.RandomState(0),
                                      "precomputed")
    assert abs(got - want.tocsr()).max() < 1e-5


def test_fit_above_the_small_data_size_places_held_out_points(no_nn_descent):
    z, y = blobs(UMAP_EXACT_BELOW + 100, seed=2)
    z_test, y_test = blobs(300, seed=3)
    model, labels, extra = fit_umap_gmm(z, 4, seed=0, settings={"n_init": 1})
    assert extra["umap_points"] == len(z)
    assert cluster_accuracy(y, labels) > 0.99
    assert cluster_accuracy(y_test, model.predict(z_test)) > 0.99
    assert model.embed(z_test[:0]).shape == (0, 4)


def test_default_restarts_find_every_bar_where_one_start_stops_short():
    """Five parallel bars, 2 long and 1 apart, as a spiral's arms lie in UMAP's embedding:
    EM from one K-means start mostly stops with a bar split and two merged (4 of 5 bars);
    the default restarts keep the start of the highest likelihood and find all five."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(5), 200)
    x = np.stack([rng.uniform(0.0, 2.0, len(y)), y + rng.normal(0.0, 0.05, len(y))], axis=1)
    one = [fit_gmm(x, 5, seed, {"n_init": 1}) for seed in range(5)]
    default = [fit_gmm(x, 5, seed) for seed in range(5)]
    assert min(cluster_accuracy(y, g.predict(x)) for g in one) < 0.9
    for single, best in zip(one, default, strict=True):
        assert cluster_accuracy(y, best.predict(x)) == 1.0
        assert best.score(x) >= single.score(x) - 1e-9   # its first start is the single one

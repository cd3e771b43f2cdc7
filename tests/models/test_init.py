"""The first mixture a method starts from: moments of labelled latents, and the spectral
clustering that follows curved clusters where EM on Gaussians cuts across them."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import make_moons

from vaemix.models import init
from vaemix.models.init import (
    CONSENSUS_NEIGHBOURS,
    MIN_VARIANCE,
    fit_mixture,
    mixture_from_labels,
    most_agreeing,
    normalized_cut,
    smaller_cut,
    spectral_mixture,
    umap_or_spectral_mixture,
)


def test_mixture_from_labels_is_each_groups_moments():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(50, 3))
    labels = rng.integers(0, 3, size=50)
    mix = mixture_from_labels(z, labels, 4)                   # label 3 has no point
    for k in range(3):
        group = z[labels == k]
        np.testing.assert_allclose(mix.means[k], group.mean(0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(mix.variances[k], group.var(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(mix.means[3], z.mean(0), rtol=1e-5, atol=1e-6)
    assert mix.weights.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(mix.weights[:3], np.bincount(labels) / 50, atol=1e-4)
    assert 0 < mix.weights[3] < 1e-4


def test_variances_are_floored():
    z = np.zeros((6, 2))
    mix = mixture_from_labels(z, np.array([0, 0, 0, 1, 1, 1]), 2)
    assert (mix.variances == np.float32(MIN_VARIANCE)).all()


def test_spectral_follows_two_moons_where_em_cuts_them():
    z, y = make_moons(600, noise=0.05, random_state=0)
    spectral = spectral_mixture(z, 2, seed=0)
    em = fit_mixture(z, 2, seed=0, how="gmm")
    for k in range(2):  # each moon's own mean is one of the spectral components
        dist = np.linalg.norm(spectral.means - z[y == k].mean(0), axis=1).min()
        assert dist < 0.01
    # EM's Gaussians cut across the moons: its components sit elsewhere
    em_dist = max(np.linalg.norm(em.means - z[y == k].mean(0), axis=1).min() for k in range(2))
    assert em_dist > 0.1


def test_spectral_clusters_a_subset_above_its_cap():
    z, y = make_moons(900, noise=0.05, random_state=1)
    mix = spectral_mixture(z, 2, seed=0, max_points=300)
    for k in range(2):
        assert np.linalg.norm(mix.means - z[y == k].mean(0), axis=1).min() < 0.1
    assert mix.weights.sum() == pytest.approx(1.0)


def test_most_agreeing_scores_by_hand():
    """a and its relabelling b agree fully (NMI 1); c splits a's clusters in half, and with
    equal-sized groups NMI(a, c) = 2 I / (H(a) + H(c)) = 2 ln 2 / (ln 2 + 2 ln 2) = 2/3."""
    a = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    b = 1 - a
    c = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    best, scores = most_agreeing([c, a, b])
    np.testing.assert_allclose(scores, [2 / 3, (1 + 2 / 3) / 2, (1 + 2 / 3) / 2])
    assert best == 1  # a tie between a and b goes to the first
    with pytest.raises(ValueError, match="at least 2"):
        most_agreeing([a])


def test_consensus_keeps_the_neighbourhood_size_the_others_agree_with(monkeypatch):
    """Four graph sizes give the two true groups, the first (k = 5) cuts across them: the
    mixture is the moments of the agreeing partition, not of the odd one."""
    rng = np.random.default_rng(0)
    z = np.concatenate([rng.normal(-3, 1, (40, 2)), rng.normal(3, 1, (40, 2))])
    truth = np.repeat([0, 1], 40)
    odd = np.tile([0, 1], 40)
    seen = []

    def fake_spectral_labels(z, n_clusters, seed, n_neighbors, max_points):
        seen.append(n_neighbors)
        return z, odd if n_neighbors == 5 else truth

    monkeypatch.setattr(init, "spectral_labels", fake_spectral_labels)
    mix = fit_mixture(z, 2, seed=0, how="spectral_consensus")
    assert seen == list(CONSENSUS_NEIGHBOURS)
    expected = mixture_from_labels(z, truth, 2)
    np.testing.assert_allclose(mix.means, expected.means)
    np.testing.assert_allclose(mix.variances, expected.variances)


def test_consensus_follows_two_moons():
    z, y = make_moons(600, noise=0.05, random_state=0)
    mix = fit_mixture(z, 2, seed=0, how="spectral_consensus")
    for k in range(2):
        assert np.linalg.norm(mix.means - z[y == k].mean(0), axis=1).min() < 0.01


def test_normalized_cut_of_two_bridged_triangles_by_hand():
    """Two unit-weight triangles joined by one edge of weight w: each side has volume
    (sum of its degrees) 3 * 2 + w and cut w, so ncut = 2 w / (6 + w); a partition that
    puts one corner of each triangle on the other side cuts more."""
    w = 0.5
    edges = [(0, 1, 1), (1, 2, 1), (0, 2, 1), (3, 4, 1), (4, 5, 1), (3, 5, 1), (2, 3, w)]
    graph = sp.lil_matrix((6, 6))
    for i, j, v in edges:
        graph[i, j] = graph[j, i] = v
    graph = graph.tocsr()
    sides = np.array([0, 0, 0, 1, 1, 1])
    assert normalized_cut(graph, sides) == pytest.approx(2 * w / (6 + w))
    assert normalized_cut(graph, 1 - sides) == pytest.approx(2 * w / (6 + w))
    # {0, 1, 5} / {2, 3, 4}: edges 0-2, 1-2, 3-5, 4-5 cross (4), volumes 2+2+2 and 2.5+2.5+2
    mixed = np.array([0, 0, 1, 1, 1, 0])
    assert normalized_cut(graph, mixed) == pytest.approx(4 / 6 + 4 / 7)
    apart = sp.block_diag([graph[:3, :3], graph[3:, 3:]]).tocsr()
    assert normalized_cut(apart, sides) == 0.0


def test_smaller_cut_keeps_the_partition_that_cuts_less_and_the_first_of_a_tie():
    """The bridged triangles above: the two sides (ncut 2 w / (6 + w)) beat the mixed
    partition (4/6 + 4/7) in either order; a relabelled copy of the sides ties with them
    and the first listed is kept; a margin keeps the first unless the later one cuts less by
    more than that fraction; with a bridge of 1e-17, the sides' cut and one cluster's 0 are
    a tie too (rounding, not a better cut)."""
    w = 0.5
    graph = sp.lil_matrix((6, 6))
    for i, j, v in [(0, 1, 1), (1, 2, 1), (0, 2, 1), (3, 4, 1), (4, 5, 1), (3, 5, 1), (2, 3, w)]:
        graph[i, j] = graph[j, i] = v
    graph = graph.tocsr()
    sides, mixed = np.array([0, 0, 0, 1, 1, 1]), np.array([0, 0, 1, 1, 1, 0])
    kept, cuts = smaller_cut(graph, {"mixed": mixed, "sides": sides})
    assert kept == "sides"
    assert cuts == pytest.approx({"mixed": 4 / 6 + 4 / 7, "sides": 2 * w / (6 + w)})
    assert smaller_cut(graph, {"sides": sides, "mixed": mixed})[0] == "sides"
    # the sides cut 1 - (2 w / (6 + w)) / (4/6 + 4/7) = 87.6 % less than the mixed partition:
    # a later partition must cut less by more than the margin's fraction of the kept one's
    better = 1 - cuts["sides"] / cuts["mixed"]
    assert better == pytest.approx(0.876, abs=1e-3)
    assert smaller_cut(graph, {"mixed": mixed, "sides": sides}, margin=0.87)[0] == "sides"
    assert smaller_cut(graph, {"mixed": mixed, "sides": sides}, margin=0.88)[0] == "mixed"
    assert smaller_cut(graph, {"sides": sides, "mixed": mixed}, margin=0.88)[0] == "sides"
    assert smaller_cut(graph, {"a": sides, "b": 1 - sides})[0] == "a"
    assert smaller_cut(graph, {"b": 1 - sides, "a": sides})[0] == "b"
    graph[2, 3] = graph[3, 2] = 1e-17   # the sides now cut about 3e-18, one cluster 0
    one = np.zeros(6, dtype=np.int64)
    assert smaller_cut(graph, {"sides": sides, "one": one})[0] == "sides"
    assert smaller_cut(graph, {"one": one, "sides": sides})[0] == "one"
    assert smaller_cut(graph, {"sides": sides, "mixed": mixed, "one": one})[0] == "sides"


@pytest.mark.parametrize("winner", ["spectral", "umap"])
def test_umap_or_spectral_keeps_the_partition_with_the_smaller_cut(monkeypatch, winner):
    """On two moons one candidate is the moons and the other cuts across both; whichever
    of umap and spectral is handed the moons is kept, with the moons' moments."""
    z, y = make_moons(400, noise=0.05, random_state=0)
    across = (z[:, 0] > z[:, 0].mean()).astype(np.int64)
    umap_labels, spectral = (across, y) if winner == "spectral" else (y, across)

    def fake_umap_mixture(z, n_clusters, seed, start):
        mix = mixture_from_labels(z, umap_labels, n_clusters)
        mix.labels = umap_labels
        return mix

    monkeypatch.setattr(init, "umap_mixture", fake_umap_mixture)
    monkeypatch.setattr(init, "spectral_labels", lambda z, k, seed, nn, cap: (z, spectral))
    mix = fit_mixture(z, 2, seed=0, how="umap_or_spectral")
    np.testing.assert_array_equal(mix.labels, y)
    np.testing.assert_allclose(mix.means, mixture_from_labels(z, y, 2).means)


def test_umap_or_spectral_extends_a_subset_to_every_point(monkeypatch):
    """Above the cap the spectral partition of a subset is carried to every point by its
    nearest clustered neighbour: on two moons that is every point's own moon."""
    z, y = make_moons(900, noise=0.05, random_state=1)
    across = (z[:, 0] > z[:, 0].mean()).astype(np.int64)

    def fake_umap_mixture(z, n_clusters, seed, start):
        mix = mixture_from_labels(z, across, n_clusters)
        mix.labels = across
        return mix

    monkeypatch.setattr(init, "umap_mixture", fake_umap_mixture)
    mix = umap_or_spectral_mixture(z, 2, seed=0, max_points=300)
    assert len(mix.labels) == len(z)
    assert max((mix.labels == y).mean(), (mix.labels != y).mean()) > 0.99


def test_unknown_method_is_named():
    with pytest.raises(ValueError, match="init_clusters"):
        fit_mixture(np.zeros((4, 2)), 2, 0, how="dbscan")

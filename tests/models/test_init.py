"""The first mixture a method starts from: moments of labelled latents, and the spectral
clustering that follows curved clusters where EM on Gaussians cuts across them."""

import numpy as np
import pytest
from sklearn.datasets import make_moons

from vaemix.models.init import (
    MIN_VARIANCE,
    fit_mixture,
    mixture_from_labels,
    spectral_mixture,
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


def test_unknown_method_is_named():
    with pytest.raises(ValueError, match="init_clusters"):
        fit_mixture(np.zeros((4, 2)), 2, 0, how="dbscan")

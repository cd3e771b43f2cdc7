import numpy as np
import pytest

from vaemix.baselines import (
    BASELINES,
    dp_truncation,
    evaluate_baseline,
    fit_baseline,
    load_latents,
)
from vaemix.errors import DataError
from vaemix.io import save_npz
from vaemix.metrics import cluster_accuracy

# params.yaml's baseline section (kept here so the tests do not depend on the file)
SETTINGS = {
    "kmeans": {"n_init": 10},
    "gmm": {"covariance_type": "diag", "n_init": 3, "max_iter": 300},
    "dpgmm": {
        "covariance_type": "diag",
        "truncation_factor": 3,
        "weight_concentration_prior": None,
        "max_iter": 500,
        "min_weight": 0.01,
    },
    "umap_gmm": {"n_neighbors": 15, "n_components": None, "min_dist": 0.0,
                 "covariance_type": "full", "n_init": 2, "max_points": None},
}
K = 5


def blobs(n: int, seed: int, scales=(1.0, 1.0, 1.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """K well-separated Gaussian blobs in 4-D; dims multiplied by ``scales``."""
    centres = 8.0 * np.eye(4, dtype=np.float64)[[0, 1, 2, 3, 0]]
    centres[4] = -8.0 * np.ones(4) / 2
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, size=n)
    z = centres[y] + rng.normal(size=(n, 4))
    return (z * np.asarray(scales)).astype(np.float32), y


@pytest.fixture(scope="module")
def data():
    z_train, y_train = blobs(500, seed=1)
    z_test, y_test = blobs(300, seed=2)
    return {"z_train": z_train, "y_train": y_train, "z_test": z_test, "y_test": y_test}


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_recovers_separated_blobs_on_held_out_data(name, data):
    fit = fit_baseline(name, data["z_train"], K, SETTINGS[name], seed=0)
    pred = fit.predict(data["z_test"])
    assert pred.shape == (300,) and pred.dtype == np.int64
    assert cluster_accuracy(data["y_test"], pred) >= 0.95
    assert fit.fit_seconds > 0


def test_standardisation_handles_badly_scaled_dims():
    # one dim blown up 1000x, and a constant dim: still separable after standardising
    z, y = blobs(500, seed=3, scales=(1000.0, 1.0, 1.0, 1.0))
    z = np.concatenate([z, np.full((500, 1), 3.0, dtype=np.float32)], axis=1)
    fit = fit_baseline("kmeans", z, K, SETTINGS["kmeans"], seed=0)
    assert cluster_accuracy(y, fit.predict(z)) >= 0.95


def test_dpgmm_finds_about_k_components(data):
    fit = fit_baseline("dpgmm", data["z_train"], K, SETTINGS["dpgmm"], seed=0)
    assert fit.extra["truncation"] == 3 * K
    assert K - 1 <= fit.extra["n_components_effective"] <= K + 1
    assert isinstance(fit.extra["n_components_effective"], int)


def test_dpgmm_covariance_prior_is_passed_through_and_changes_the_fit():
    """Three uniform squares: at scikit-learn's default pseudo-count (the dim) the DP-GMM
    keeps three components; a pseudo-count of 400 holds every covariance near the data's
    own, the components overlap and more of them keep weight above min_weight."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=1500)
    z = rng.uniform(0, 4, size=(1500, 2)) + 12.0 * np.stack([y, y % 2], 1)
    counts = {}
    for dof in (None, 400.0):
        settings = {**SETTINGS["dpgmm"], "degrees_of_freedom_prior": dof}
        fit = fit_baseline("dpgmm", z, 3, settings, seed=0)
        assert fit.model.degrees_of_freedom_prior == dof
        counts[dof] = fit.extra["n_components_effective"]
    assert counts[None] == 3 < counts[400.0]


def test_gmm_reports_convergence(data):
    fit = fit_baseline("gmm", data["z_train"], K, SETTINGS["gmm"], seed=0)
    assert fit.extra["converged"] is True


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_same_seed_same_predictions(name, data):
    a = fit_baseline(name, data["z_train"], K, SETTINGS[name], seed=7).predict(data["z_test"])
    b = fit_baseline(name, data["z_train"], K, SETTINGS[name], seed=7).predict(data["z_test"])
    np.testing.assert_array_equal(a, b)


def test_dp_truncation():
    assert dp_truncation(10, 3, 1000) == 30
    assert dp_truncation(10, 1.1, 1000) == 11  # not 12 from 11.000000000000002
    assert dp_truncation(10, 1.25, 1000) == 13
    assert dp_truncation(10, 3, 20) == 20  # never more components than points


def test_bad_inputs_raise_value_error(data):
    with pytest.raises(ValueError, match="n_clusters"):
        fit_baseline("kmeans", data["z_train"][:3], 4, SETTINGS["kmeans"], seed=0)
    with pytest.raises(ValueError, match="unknown baseline"):
        fit_baseline("spectral", data["z_train"], K, {}, seed=0)
    fit = fit_baseline("kmeans", data["z_train"], K, SETTINGS["kmeans"], seed=0)
    with pytest.raises(ValueError, match="shape"):
        fit.predict(data["z_test"][:, :3])


def test_evaluate_baseline_metrics(data):
    metrics, pred = evaluate_baseline("dpgmm", data, K, SETTINGS["dpgmm"], seed=0)
    assert pred.shape == data["y_test"].shape
    assert metrics["acc"] >= 0.95 and metrics["nmi"] > 0.9
    assert metrics["seed"] == 0 and metrics["train_seconds"] > 0
    assert metrics["truncation"] == 3 * K
    assert set(metrics) >= {"acc", "nmi", "ari", "completeness", "n_clusters_used",
                            "n_components_effective"}


def test_load_latents(tmp_path, data):
    path = tmp_path / "latents.npz"
    with pytest.raises(DataError, match="latents.npz"):
        load_latents(path)
    save_npz(path, **data)
    loaded = load_latents(path)
    np.testing.assert_array_equal(loaded["z_test"], data["z_test"])
    save_npz(path, z_train=data["z_train"], y_train=data["y_train"])
    with pytest.raises(DataError, match="z_test"):
        load_latents(path)
    save_npz(path, **{**data, "y_test": data["y_test"][:10]})
    with pytest.raises(DataError, match="y_test"):
        load_latents(path)


def test_umap_gmm_keeps_its_training_clusters_and_sees_raw_latents(data):
    """N2D's UMAP works on the encoder's own distances (no standardisation), and the
    training points' clusters are the fit's own, which the mixture models start from."""
    fit = fit_baseline("umap_gmm", data["z_train"], K, SETTINGS["umap_gmm"], seed=0)
    np.testing.assert_array_equal(fit.mean, 0.0)
    np.testing.assert_array_equal(fit.scale, 1.0)
    own = fit.train_labels(data["z_train"])
    assert own.shape == (500,) and cluster_accuracy(data["y_train"], own) >= 0.95
    assert fit.extra["umap_components"] == K


def test_unlabelled_test_data_gets_no_scores(data):
    """A clustering without labels (all -1) publishes the clusters it used, no ACC/NMI."""
    unlabelled = {**data, "y_test": np.full(300, -1)}
    metrics, _ = evaluate_baseline("kmeans", unlabelled, K, SETTINGS["kmeans"], seed=0)
    assert metrics["n_clusters_used"] == K
    assert not {"acc", "nmi", "ari"} & set(metrics)

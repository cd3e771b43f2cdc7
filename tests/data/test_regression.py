import numpy as np
import pytest

from tests.data.fakes import mnist_like, repo_params
from vaemix.data.regression import make_targets
from vaemix.errors import DataError


def _arrays(n_train=300, n_test=100):
    x, y = mnist_like(n_train + n_test, seed=4)
    x = x[:, None]
    return {
        "x_train": x[:n_train], "y_train": y[:n_train],
        "x_test": x[n_train:], "y_test": y[n_train:],
    }


def _params(mode, noise=0.0, out_dim=2):
    params = repo_params()
    params["regression"].update(mode=mode, noise=noise, out_dim=out_dim)
    return params


def test_per_class_targets_are_standardised_class_maps():
    arrays = _arrays()
    reg = make_targets(arrays, _params("per_class"))
    W, b = reg["W"].astype(np.float64), reg["b"].astype(np.float64)
    assert W.shape == (10, 2, 784) and b.shape == (10, 2)
    raw = {}
    for split in ("train", "test"):
        x = arrays[f"x_{split}"].reshape(-1, 784).astype(np.float32) / np.float32(255)
        c = arrays[f"y_{split}"]
        raw[split] = np.einsum("nod,nd->no", W[c], x.astype(np.float64)) + b[c]
    mean, std = raw["train"].mean(0), raw["train"].std(0)
    for split in ("train", "test"):
        t = reg[f"t_{split}"]
        assert t.dtype == np.float32 and t.shape == (len(raw[split]), 2)
        np.testing.assert_allclose(t, (raw[split] - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(reg["t_train"].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(reg["t_train"].std(0), 1, atol=1e-5)
    # a different map per class: using class 0's map everywhere does not reproduce t
    assert not np.allclose(W[0], W[1])
    x = arrays["x_train"].reshape(-1, 784).astype(np.float32) / np.float32(255)
    single = x.astype(np.float64) @ W[0].T + b[0]
    assert not np.allclose((single - mean) / std, reg["t_train"], atol=1e-3)


def test_global_mode_is_linear():
    arrays = _arrays(n_train=900)  # more rows than input dims + 1
    reg = make_targets(arrays, _params("global"))
    assert reg["W"].shape == (1, 2, 784)
    x = arrays["x_train"].reshape(-1, 784) / 255.0
    design = np.hstack([x, np.ones((len(x), 1))])
    fit = np.linalg.lstsq(design, reg["t_train"], rcond=None)[0]
    resid = design @ fit - reg["t_train"]
    assert 1 - (resid**2).sum() / (reg["t_train"] ** 2).sum() > 0.9999


def test_noise_is_added_after_standardising_and_seeded():
    arrays = _arrays()
    clean = make_targets(arrays, _params("per_class"))
    noisy = make_targets(arrays, _params("per_class", noise=0.5))
    again = make_targets(arrays, _params("per_class", noise=0.5))
    diff = noisy["t_train"] - clean["t_train"]
    assert abs(diff.std() - 0.5) < 0.05
    assert np.array_equal(noisy["t_train"], again["t_train"])


def test_per_class_needs_labels():
    arrays = _arrays()
    arrays["y_train"] = np.full_like(arrays["y_train"], -1)
    with pytest.raises(DataError, match="labels"):
        make_targets(arrays, _params("per_class"))
    assert make_targets(arrays, _params("global"))["t_train"].shape == (300, 2)

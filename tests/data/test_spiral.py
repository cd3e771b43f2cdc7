import numpy as np

from tests.data.fakes import repo_params
from vaemix.data import spiral


def _params(seed=0, **spiral_cfg):
    params = repo_params()
    params["seed"] = seed
    params["data"]["spiral"].update(spiral_cfg)
    return params


def test_spiral_shapes_labels_and_split():
    out = spiral.load(_params(arms=5, points_per_arm=200, test_fraction=0.2))["arrays"]
    assert out["x_train"].shape == (800, 2) and out["x_test"].shape == (200, 2)
    assert out["x_train"].dtype == np.float32 and out["y_train"].dtype == np.int64
    assert np.bincount(out["y_train"]).tolist() == [160] * 5
    assert np.bincount(out["y_test"]).tolist() == [40] * 5


def test_spiral_radius_and_geometry_without_noise():
    x, y = spiral.make_spiral(3, 100, 0.75, 0.0, np.random.default_rng(0))
    r = np.linalg.norm(x, axis=1)
    assert r.max() <= 1.0 + 1e-6
    angle = np.arctan2(x[:, 1], x[:, 0])
    expected = 2 * np.pi * 0.75 * r + 2 * np.pi * y / 3
    assert np.allclose(np.angle(np.exp(1j * (angle - expected))), 0, atol=1e-4)


def test_spiral_is_deterministic_per_seed():
    a = spiral.load(_params(seed=0, points_per_arm=50))["arrays"]
    b = spiral.load(_params(seed=0, points_per_arm=50))["arrays"]
    c = spiral.load(_params(seed=1, points_per_arm=50))["arrays"]
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["x_train"], c["x_train"])

import numpy as np
import pytest

from tests.data.fakes import repo_params
from vaemix.data import npz
from vaemix.errors import DataError


def _write(tmp_path, **arrays):
    path = tmp_path / "custom.npz"
    np.savez(path, **arrays)
    return repo_params(tmp_path)


def test_labelled_npz_is_split_stratified_and_relabelled(tmp_path):
    x = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float64)
    y = np.repeat([3, 7], [60, 40])
    out = npz.load(_write(tmp_path, x=x, y=y))
    a = out["arrays"]
    assert a["x_train"].dtype == np.float32 and a["x_train"].shape == (80, 3)
    assert np.bincount(a["y_train"]).tolist() == [48, 32]
    assert np.bincount(a["y_test"]).tolist() == [12, 8]
    assert out["extra"]["label_values"] == [3, 7]
    # rows stay with their labels: class 0 was originally label 3, i.e. the first 60 rows
    rows = {tuple(r) for r in x[:60].astype(np.float32)}
    assert all(tuple(r) in rows for r in a["x_train"][a["y_train"] == 0])


def test_test_fraction_0_fits_and_scores_every_image(tmp_path):
    """The transductive protocol of deep clustering: the test split is the training split."""
    x = np.random.default_rng(0).normal(size=(50, 3))
    y = np.repeat([0, 1], 25)
    params = _write(tmp_path, x=x, y=y)
    params["data"]["npz"]["test_fraction"] = 0.0
    out = npz.load(params)
    a = out["arrays"]
    assert a["x_train"].shape == a["x_test"].shape == (50, 3)
    assert np.array_equal(a["x_train"], a["x_test"]) and np.array_equal(a["y_train"], y)
    assert out["extra"]["test_is_train"]


def test_unlabelled_npz_gets_minus_one(tmp_path):
    out = npz.load(_write(tmp_path, x=np.zeros((10, 2, 2))))["arrays"]
    assert out["x_train"].shape == (8, 2, 2)
    assert (out["y_train"] == -1).all() and (out["y_test"] == -1).all()


def test_float_labels_with_integer_values_are_accepted(tmp_path):
    out = npz.load(_write(tmp_path, x=np.zeros((10, 2)), y=np.arange(10.0) % 2))["arrays"]
    assert out["y_train"].dtype == np.int64


@pytest.mark.parametrize(
    "arrays, words",
    [
        ({"z": np.zeros((5, 2))}, "no array 'x'"),
        ({"x": np.array([[0.0, np.nan], [1, 2]])}, "NaN"),
        ({"x": np.array([[0.0, np.inf], [1, 2]])}, "NaN or infinite"),
        ({"x": np.zeros((5, 2)), "y": np.arange(4)}, "'y' has shape"),
        ({"x": np.zeros((5, 2)), "y": np.array([0, 1, 0.5, 1, 0])}, "integer"),
        ({"x": np.zeros((5, 2)), "y": np.array(list("abcde"))}, "integer"),
        ({"x": np.zeros(5)}, "N x"),
    ],
)
def test_bad_npz_raises_data_error_naming_the_file(tmp_path, arrays, words):
    params = _write(tmp_path, **arrays)
    with pytest.raises(DataError, match=words) as err:
        npz.load(params)
    assert "custom.npz" in str(err.value)


def test_missing_and_unreadable_files(tmp_path):
    params = repo_params(tmp_path)
    with pytest.raises(DataError, match="custom.npz: file not found"):
        npz.load(params)
    (tmp_path / "custom.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="custom.npz: not a readable"):
        npz.load(params)

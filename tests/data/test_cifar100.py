import pickle

import numpy as np
import pytest

from tests.data.fakes import cifar_like, repo_params, write_cifar100_raw
from vaemix.data import cifar100
from vaemix.errors import DataError


def test_round_trip_coarse_and_fine(tmp_path):
    write_cifar100_raw(tmp_path, n_train=60, n_test=40, seed=5)
    arrays = cifar100.load(repo_params(tmp_path))["arrays"]
    x, coarse, fine = cifar_like(100, seed=5)
    assert arrays["x_train"].shape == (60, 3, 32, 32) and arrays["x_train"].dtype == np.uint8
    assert np.array_equal(arrays["x_train"], x[:60])
    assert np.array_equal(arrays["x_test"], x[60:])
    assert np.array_equal(arrays["y_train"], coarse[:60]) and arrays["y_train"].dtype == np.int64
    assert np.array_equal(arrays["y_fine_test"], fine[60:])
    assert arrays["y_train"].max() < 20 and arrays["y_fine_train"].max() >= 20


def test_reads_latin1_str_keys_as_torchvision_would(tmp_path):
    folder = write_cifar100_raw(tmp_path, 10, 10, seed=0)
    with open(folder / "train", "rb") as fh:
        entry = pickle.load(fh, encoding="latin1")
    entry = {k.decode(): v for k, v in entry.items()}
    with open(folder / "train", "wb") as fh:
        pickle.dump(entry, fh)
    x, coarse, _ = cifar100.read_batch(folder / "train")
    assert np.array_equal(x.reshape(10, -1), entry["data"])
    assert coarse.tolist() == entry["coarse_labels"]


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda e: e.pop(b"coarse_labels"), "missing key"),
        (lambda e: e.__setitem__(b"data", e[b"data"][:, :100]), "expected uint8"),
        (lambda e: e.__setitem__(b"fine_labels", e[b"fine_labels"][:-1]), "fine_labels"),
        (lambda e: e.__setitem__(b"coarse_labels", [25] * len(e[b"data"])), "0..19"),
    ],
)
def test_bad_pickles_name_the_file(tmp_path, edit, words):
    folder = write_cifar100_raw(tmp_path, 10, 10, seed=0)
    with open(folder / "test", "rb") as fh:
        entry = pickle.load(fh)
    edit(entry)
    with open(folder / "test", "wb") as fh:
        pickle.dump(entry, fh)
    with pytest.raises(DataError, match=words) as err:
        cifar100.load(repo_params(tmp_path))
    assert str(folder / "test") in str(err.value)


def test_refuses_arbitrary_pickled_objects(tmp_path):
    path = tmp_path / "evil"
    with open(path, "wb") as fh:
        pickle.dump({"data": pickle.PickleError}, fh)
    with pytest.raises(DataError, match="evil"):
        cifar100.read_batch(path)


def test_missing_files_without_download(tmp_path):
    params = repo_params(tmp_path)
    params["data"]["cifar100"]["download"] = False
    with pytest.raises(DataError) as err:
        cifar100.load(params)
    msg = str(err.value)
    assert "\n" not in msg and "cifar-100-python" in msg and "datasets=[spiral]" in msg


def test_failed_download_is_data_error(tmp_path, monkeypatch):
    def offline(root):
        raise RuntimeError("no network")

    monkeypatch.setattr(cifar100, "_download", offline)
    with pytest.raises(DataError, match="download failed .*no network"):
        cifar100.load(repo_params(tmp_path))


def test_fake_coarse_classes_are_separable():
    x, coarse, _ = cifar_like(600, seed=1)
    flat = x.reshape(len(x), -1).astype(float)
    means = np.stack([flat[coarse == k].mean(0) for k in range(20)])
    nearest = np.argmin(((flat[:, None] - means[None]) ** 2).sum(-1), axis=1)
    assert (nearest == coarse).mean() > 0.9

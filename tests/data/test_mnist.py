import gzip

import numpy as np
import pytest

from tests.data.fakes import mnist_like, repo_params, write_mnist_raw
from vaemix.data import mnist
from vaemix.errors import DataError


def test_idx_round_trip(tmp_path):
    x, y = mnist_like(30, seed=1)
    (tmp_path / "img").write_bytes(mnist.idx_bytes(x))
    (tmp_path / "lab").write_bytes(mnist.idx_bytes(y.astype(np.uint8)))
    x2, y2 = mnist.read_pair(tmp_path / "img", tmp_path / "lab")
    assert x2.shape == (30, 1, 28, 28) and x2.dtype == np.uint8
    assert np.array_equal(x2[:, 0], x)
    assert y2.dtype == np.int64 and np.array_equal(y2, y)


def test_load_reads_fake_raw_folder(tmp_path):
    write_mnist_raw(tmp_path, n_train=50, n_test=20, seed=0)
    out = mnist.load(repo_params(tmp_path))
    arrays = out["arrays"]
    assert arrays["x_train"].shape == (50, 1, 28, 28) and arrays["x_test"].shape == (20, 1, 28, 28)
    x, y = mnist_like(70, seed=0)
    assert np.array_equal(arrays["x_train"][:, 0], x[:50])
    assert np.array_equal(arrays["y_test"], y[50:])
    assert len(out["raw_files"]) == 4


def test_fake_classes_are_separable(tmp_path):
    x, y = mnist_like(400, seed=3)
    flat = x.reshape(len(x), -1).astype(float)
    means = np.stack([flat[y == k].mean(0) for k in range(10)])
    nearest = np.argmin(((flat[:, None] - means[None]) ** 2).sum(-1), axis=1)
    assert (nearest == y).mean() > 0.9


@pytest.mark.parametrize(
    "corrupt, words",
    [
        (lambda b: b"\x00\x00\x08\x01" + b[4:], "magic"),
        (lambda b: b[:-100], "wrong length"),
        (lambda b: b[:10], "truncated"),
    ],
)
def test_corrupted_idx_names_the_file(tmp_path, corrupt, words):
    folder = write_mnist_raw(tmp_path, 20, 10, seed=0)
    path = folder / "train-images-idx3-ubyte"
    path.write_bytes(corrupt(path.read_bytes()))
    with pytest.raises(DataError, match=words) as err:
        mnist.load(repo_params(tmp_path))
    assert str(path) in str(err.value)


def test_count_mismatch_names_the_label_file(tmp_path):
    folder = write_mnist_raw(tmp_path, 20, 10, seed=0)
    (folder / "t10k-labels-idx1-ubyte").write_bytes(mnist.idx_bytes(np.zeros(9, np.uint8)))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte: 9 labels"):
        mnist.load(repo_params(tmp_path))


def test_missing_files_without_download_give_placement_hint(tmp_path, monkeypatch):
    folder = write_mnist_raw(tmp_path, 20, 10, seed=0)
    (folder / "t10k-images-idx3-ubyte").unlink()
    called = []
    monkeypatch.setattr(mnist, "_download", lambda root: called.append(root))
    params = repo_params(tmp_path)
    params["data"]["mnist"]["download"] = False
    with pytest.raises(DataError) as err:
        mnist.load(params)
    msg = str(err.value)
    assert "\n" not in msg and not called
    assert "t10k-images-idx3-ubyte" in msg and str(folder) in msg
    assert "datasets=[spiral]" in msg and "download is off" in msg


def test_failed_download_is_one_line_data_error(tmp_path, monkeypatch):
    def offline(root):
        raise OSError("Temporary failure in name resolution\nsecond line")

    monkeypatch.setattr(mnist, "_download", offline)
    with pytest.raises(DataError) as err:
        mnist.load(repo_params(tmp_path))
    msg = str(err.value)
    assert "\n" not in msg and "download failed" in msg and "name resolution" in msg
    assert "train-images-idx3-ubyte" in msg and "datasets=[spiral]" in msg


def test_present_files_never_download(tmp_path, monkeypatch):
    write_mnist_raw(tmp_path, 20, 10, seed=0)
    called = []
    monkeypatch.setattr(mnist, "_download", lambda root: called.append(root))
    mnist.load(repo_params(tmp_path))  # download is true in params.yaml
    assert called == []


def test_make_split_from_gz(tmp_path):
    x, y = mnist_like(30, seed=2)
    src = tmp_path / "src"
    src.mkdir()
    (src / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(mnist.idx_bytes(x)))
    (src / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(mnist.idx_bytes(y)))
    mnist.make_split(src, tmp_path / "raw", n_train=24)
    arrays = mnist.load(repo_params(tmp_path / "raw"))["arrays"]
    assert np.array_equal(arrays["x_train"][:, 0], x[:24])
    assert np.array_equal(arrays["y_test"], y[24:])
    with pytest.raises(DataError, match="n-train"):
        mnist.make_split(src, tmp_path / "raw2", n_train=30)


def test_the_leave_out_hint_is_a_command_that_validates():
    """The offline error's suggested `dvc exp run -S ...` overrides, applied to the committed
    params.yaml, pass validation (leaving a dataset out must also leave it out of the
    latent sweep)."""
    import re
    from pathlib import Path

    import yaml

    from vaemix.config import load_yaml, validate
    from vaemix.data.mnist import LEAVE_OUT_HINT

    params = yaml.safe_load((Path(__file__).resolve().parents[2] / "params.yaml").read_text())
    overrides = re.findall(r"-S '([\w.]+)=([^']*)'", LEAVE_OUT_HINT)
    assert overrides == [("datasets", "[spiral]")]  # nothing else to leave out
    for key, value in overrides:
        *parents, last = key.split(".")
        node = params
        for part in parents:
            node = node[part]
        node[last] = load_yaml(value)
    validate(params)

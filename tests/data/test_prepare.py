import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.data.fakes import repo_params, write_cifar100_raw, write_mnist_raw
from vaemix.data import load_prepared, prepare_dataset
from vaemix.errors import DataError, ParamError
from vaemix.io import load_npz, read_json

REPO = Path(__file__).resolve().parents[2]
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist-t10k"
FILES = ("data.npz", "regression.npz", "card.json", "samples.png")


def _small(params, **spiral):
    params["data"]["spiral"].update(points_per_arm=60, **spiral)
    return params


def test_prepare_writes_all_files_byte_identically(tmp_path):
    write_mnist_raw(tmp_path / "raw", 120, 40, seed=0)
    params = repo_params(tmp_path / "raw")
    params["budget"]["max_train"] = 50
    out = tmp_path / "prepared" / "mnist"
    prepare_dataset("mnist", params, out)
    first = {f: (out / f).read_bytes() for f in FILES}
    prepare_dataset("mnist", params, out)
    assert {f: (out / f).read_bytes() for f in FILES} == first
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    assert not [p for p in out.parent.iterdir() if p.name != "mnist"]  # no temporary left

    data = load_npz(out / "data.npz")
    assert data["x_train"].shape == (50, 1, 28, 28) and data["x_train"].dtype == np.uint8
    assert data["y_train"].dtype == np.int64 and data["x_test"].shape == (40, 1, 28, 28)
    card = read_json(out / "card.json")
    assert card["budget"] == {
        "max_train": 50, "max_test": None,
        "n_train_before": 120, "n_train": 50, "n_test_before": 40, "n_test": 40,
    }
    assert sum(card["class_counts"]["train"].values()) == 50
    assert len(card["sha256"]["raw_files"]) == 4
    assert first["samples.png"][:8] == b"\x89PNG\r\n\x1a\n"

    params["seed"] = 1  # another seed, another capped subset
    prepare_dataset("mnist", params, out)
    assert (out / "data.npz").read_bytes() != first["data.npz"]


def test_load_prepared_scales_images(tmp_path):
    write_cifar100_raw(tmp_path / "raw", 100, 40, seed=0)
    params = repo_params(tmp_path / "raw")
    prepare_dataset("cifar100", params, tmp_path / "prepared" / "cifar100")
    d = load_prepared("cifar100", tmp_path / "prepared")
    raw = load_npz(tmp_path / "prepared" / "cifar100" / "data.npz")
    assert d.x_train.dtype == np.float32 and d.x_train.shape == (100, 3, 32, 32)
    assert 0.0 <= d.x_train.min() and d.x_train.max() <= 1.0 and d.x_train.max() > 0.5
    np.testing.assert_allclose(d.x_train * 255, raw["x_train"], atol=1e-4)
    assert d.input_shape == (3, 32, 32) and d.n_classes == 20 and d.name == "cifar100"
    assert d.t_train.shape == (100, 1) and d.t_test.shape == (40, 1)
    assert np.array_equal(d.y_fine_test, raw["y_fine_test"])
    assert d.card["dataset"] == "cifar100"


def test_spiral_prepared_is_float_and_capped_test(tmp_path):
    params = _small(repo_params())
    params["budget"]["max_test"] = 25
    prepare_dataset("spiral", params, tmp_path / "spiral")
    d = load_prepared("spiral", tmp_path)
    assert d.x_train.shape == (240, 2) and d.x_test.shape == (25, 2)
    assert np.bincount(d.y_test).tolist() == [5] * 5
    assert d.input_shape == (2,) and d.n_classes == 5


def test_unknown_dataset_and_missing_prepared(tmp_path):
    with pytest.raises(ParamError, match="unknown dataset"):
        prepare_dataset("imagenet", repo_params(), tmp_path / "x")
    with pytest.raises(DataError, match="prepare@spiral"):
        load_prepared("spiral", tmp_path)


def test_failed_prepare_leaves_previous_output(tmp_path):
    out = tmp_path / "prepared" / "npz"
    params = repo_params(tmp_path)
    np.savez(tmp_path / "custom.npz", x=np.ones((20, 3)), y=np.arange(20) % 2)
    prepare_dataset("npz", params, out)
    before = (out / "data.npz").read_bytes()
    np.savez(tmp_path / "custom.npz", x=np.full((20, 3), np.nan))
    with pytest.raises(DataError):
        prepare_dataset("npz", params, out)
    assert (out / "data.npz").read_bytes() == before


def test_stage_script_checks_datasets(tmp_path):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    run = subprocess.run(
        [sys.executable, str(REPO / "stages" / "prepare.py"), "npz"],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert run.returncode == 2
    assert "not in 'datasets'" in run.stderr and len(run.stderr.strip().splitlines()) == 1
    run = subprocess.run(
        [sys.executable, str(REPO / "stages" / "prepare.py"), "spiral"],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "data" / "prepared" / "spiral" / "card.json").is_file()


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="real MNIST test split not available")
def test_real_mnist_split_through_prepare(tmp_path):
    run = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_mnist_split.py"), str(SHARED_MNIST),
         str(tmp_path / "raw")],
        capture_output=True, text=True,
    )
    assert run.returncode == 0, run.stderr
    params = repo_params(tmp_path / "raw")
    params["data"]["mnist"]["download"] = False
    prepare_dataset("mnist", params, tmp_path / "mnist")
    d = load_prepared("mnist", tmp_path)
    assert d.x_train.shape == (8000, 1, 28, 28) and d.x_test.shape == (2000, 1, 28, 28)
    with gzip.open(SHARED_MNIST / "t10k-labels-idx1-ubyte.gz") as fh:
        labels = np.frombuffer(fh.read(), dtype=np.uint8, offset=8)
    # the official t10k label histogram
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert np.array_equal(d.y_train, labels[:8000]) and np.array_equal(d.y_test, labels[8000:])
    hist = np.bincount(d.y_train, minlength=10) + np.bincount(d.y_test, minlength=10)
    assert hist.tolist() == np.bincount(labels).tolist()
    assert d.card["class_counts"]["test"] == {
        str(k): int(v) for k, v in enumerate(np.bincount(labels[8000:]))
    }

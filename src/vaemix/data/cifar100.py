"""CIFAR-100 from torchvision's layout ``<root>/cifar-100-python/{train,test}`` (pickles).

The label used is the coarse one (20 super-classes); the fine labels (100) are kept.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from vaemix.config import read
from vaemix.data.common import sha256_file
from vaemix.data.mnist import LEAVE_OUT_HINT, download_failure
from vaemix.errors import DataError

FOLDER = "cifar-100-python"
SPLITS = {"train": "train", "test": "test"}

# The pickles hold numpy arrays (and plain lists, dicts, strings); nothing else may load.
_ALLOWED = {
    ("_codecs", "encode"),  # bytes inside protocol-2 pickles written by Python 3
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def raw_dir(root: str | Path) -> Path:
    return Path(root) / FOLDER


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images [N, 3, 32, 32] uint8, coarse and fine labels (int64) of one pickle file."""
    try:
        with open(path, "rb") as fh:
            raw = _SafeUnpickler(fh, encoding="latin1").load()
    except Exception as err:
        raise DataError(f"{path}: not a readable CIFAR-100 pickle ({err})") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected a dict, got {type(raw).__name__}")
    entry = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in raw.items()}
    missing = [k for k in ("data", "fine_labels", "coarse_labels") if k not in entry]
    if missing:
        raise DataError(f"{path}: missing key(s) {', '.join(missing)}")
    data = np.asarray(entry["data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{path}: 'data' is {data.dtype} {data.shape}, expected uint8 [N, 3072]")
    labels = []
    for key, top in (("coarse_labels", 20), ("fine_labels", 100)):
        lab = np.asarray(entry[key])
        if lab.ndim != 1 or len(lab) != len(data):
            raise DataError(f"{path}: '{key}' has shape {lab.shape}, expected ({len(data)},)")
        if lab.size and (lab.dtype.kind not in "iu" or lab.min() < 0 or lab.max() >= top):
            raise DataError(f"{path}: '{key}' must be integers in 0..{top - 1}")
        labels.append(lab.astype(np.int64))
    return data.reshape(-1, 3, 32, 32).copy(), labels[0], labels[1]


def _download(root: Path) -> None:
    """Fetch the archive with torchvision (it verifies its MD5) and extract it."""
    from torchvision import datasets

    datasets.CIFAR100(str(root), train=True, download=True)


def _missing(root: Path) -> list[str]:
    return [f for f in SPLITS.values() if not (raw_dir(root) / f).is_file()]


def ensure_raw(root: Path, download: bool) -> None:
    missing = _missing(root)
    if not missing:
        return
    why = "download is off"
    if download:
        try:
            _download(root)
        except Exception as err:  # no network, bad checksum, ... -> one clear line
            why = download_failure(err)
        missing = _missing(root)
        if not missing:
            return
    where = raw_dir(root)
    raise DataError(
        f"CIFAR-100 files missing in {where}: {', '.join(missing)} ({why}). "
        f"Place the python pickles 'train' and 'test' (from cifar-100-python.tar.gz) at "
        f"{where}/<name>, " + LEAVE_OUT_HINT
    )


def load(params: dict[str, Any]) -> dict[str, Any]:
    """Read CIFAR-100: x uint8 [N, 3, 32, 32], y = coarse label, y_fine = fine label."""
    root = Path(read(params, "data.cifar100.root"))
    ensure_raw(root, read(params, "data.cifar100.download"))
    arrays: dict[str, np.ndarray] = {}
    raw_files: dict[str, str] = {}
    for split, fname in SPLITS.items():
        path = raw_dir(root) / fname
        x, coarse, fine = read_batch(path)
        arrays[f"x_{split}"], arrays[f"y_{split}"], arrays[f"y_fine_{split}"] = x, coarse, fine
        raw_files[str(path)] = sha256_file(path)
    return {
        "arrays": arrays,
        "source": f"torchvision CIFAR-100 python pickles in {raw_dir(root)}",
        "raw_files": raw_files,
        "extra": {"label": "coarse (20 super-classes); fine labels in y_fine_*"},
    }

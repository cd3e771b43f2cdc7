"""A user-supplied ``.npz`` with arrays ``x`` (N x ...) and optional integer ``y`` (N,)."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from vaemix.config import read
from vaemix.data.common import rng_for, sha256_file, stratified_split
from vaemix.errors import DataError


def read_user_npz(path: Path) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """x as float32, y as int64 remapped to 0..K-1 (-1 = unlabelled) and the original values."""
    if not path.is_file():
        raise DataError(
            f"{path}: file not found (set data.npz.path, or leave 'npz' out of `datasets`)"
        )
    try:
        with np.load(path, allow_pickle=False) as f:
            files = set(f.files)
            if "x" not in files:
                found = ", ".join(sorted(files)) or "none"
                raise DataError(f"{path}: no array 'x' (found: {found})")
            x = f["x"]
            y = f["y"] if "y" in files else None
    except DataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise DataError(f"{path}: not a readable .npz without pickles ({err})") from None
    if x.dtype.kind not in "biuf" or x.ndim < 2 or len(x) < 2:
        raise DataError(
            f"{path}: 'x' must be a numeric array N x ... with N >= 2, got {x.dtype} {x.shape}"
        )
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise DataError(f"{path}: 'x' contains NaN or infinite values (after casting to float32)")
    if y is None:
        return x, np.full(len(x), -1, dtype=np.int64), []
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"{path}: 'y' has shape {y.shape} but 'x' has {len(x)} rows")
    if y.dtype.kind in "iu":
        yi = y.astype(np.int64)
    elif y.dtype.kind == "f" and np.isfinite(y).all() and (y == np.round(y)).all():
        yi = y.astype(np.int64)
    else:
        raise DataError(f"{path}: 'y' must hold integer class labels, got dtype {y.dtype}")
    if (yi < -1).any():
        raise DataError(f"{path}: 'y' has negative labels other than -1 (= unlabelled)")
    values = np.unique(yi[yi >= 0])
    remapped = np.where(yi >= 0, np.searchsorted(values, yi), -1).astype(np.int64)
    return x, remapped, [int(v) for v in values]


def load(params: dict[str, Any]) -> dict[str, Any]:
    path = Path(read(params, "data.npz.path"))
    x, y, values = read_user_npz(path)
    seed = read(params, "seed")
    test_fraction = read(params, "data.npz.test_fraction")
    if test_fraction == 0:
        # transductive, as deep clustering scores: fit on every image and score the same
        # images (the "test" split is the training split; train_* and test scores agree)
        train = test = np.arange(len(x))
    else:
        train, test = stratified_split(y, test_fraction, rng_for(seed, "split"))
    return {
        "arrays": {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test]},
        "source": str(path),
        "raw_files": {str(path): sha256_file(path)},
        "extra": {"label_values": values, "test_is_train": bool(test_fraction == 0)},
    }

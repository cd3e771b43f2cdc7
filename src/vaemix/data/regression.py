"""Regression targets for the mixture-of-experts experiments (Singh et al. 2018, sec. 8.2).

Made per class so that gating matters: class c has its own linear map,
t = W_c x + b_c with W_c ~ N(0, 1/D), b_c ~ N(0, 1), x the flattened input (images in
[0, 1]). Mode ``global`` uses one W, b for all. Targets are standardised with the train
mean and std; Gaussian noise of std ``regression.noise`` is added afterwards.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vaemix.config import read
from vaemix.data.common import as_features, n_classes_of, rng_for
from vaemix.errors import DataError

_CHUNK = 8192


def linear_targets(x: np.ndarray, y: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Raw targets W_{c_i} x_i + b_{c_i} in float64 (c_i = y_i, or 0 when W has one map)."""
    n = len(x)
    flat = x.reshape(n, -1)
    comp = np.zeros(n, dtype=np.int64) if len(W) == 1 else y
    out = np.empty((n, W.shape[1]), dtype=np.float64)
    for c in range(len(W)):
        idx = np.flatnonzero(comp == c)
        Wc, bc = W[c].astype(np.float64), b[c].astype(np.float64)
        for start in range(0, len(idx), _CHUNK):
            rows = idx[start : start + _CHUNK]
            out[rows] = as_features(flat[rows]).astype(np.float64) @ Wc.T + bc
    return out


def make_targets(arrays: dict[str, np.ndarray], params: dict[str, Any]) -> dict[str, Any]:
    """t_train, t_test (float32, standardised), the maps W [C, out, D], b [C, out] (float32)
    and the train mean/std (float64) used to standardise the raw targets."""
    mode = read(params, "regression.mode")
    out_dim = read(params, "regression.out_dim")
    noise = read(params, "regression.noise")
    rng = rng_for(read(params, "seed"), "regression")
    y_train, y_test = arrays["y_train"], arrays["y_test"]
    if mode == "per_class":
        if (y_train < 0).any() or (y_test < 0).any():
            raise DataError(
                "regression.mode is per_class but the data has unlabelled examples (y = -1); "
                "per-class targets need labels: set regression.mode to global"
            )
        n_maps = n_classes_of(y_train, y_test)
    else:
        n_maps = 1
    d = int(np.prod(arrays["x_train"].shape[1:]))
    W = rng.normal(0.0, 1.0 / np.sqrt(d), size=(n_maps, out_dim, d)).astype(np.float32)
    b = rng.normal(0.0, 1.0, size=(n_maps, out_dim)).astype(np.float32)
    raw_train = linear_targets(arrays["x_train"], y_train, W, b)
    raw_test = linear_targets(arrays["x_test"], y_test, W, b)
    mean = raw_train.mean(axis=0)
    std = raw_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    t_train = (raw_train - mean) / std + noise * rng.standard_normal(raw_train.shape)
    t_test = (raw_test - mean) / std + noise * rng.standard_normal(raw_test.shape)
    return {
        "t_train": t_train.astype(np.float32),
        "t_test": t_test.astype(np.float32),
        "W": W,
        "b": b,
        "t_mean": mean,
        "t_std": std,
    }

"""Writers of small fake datasets in the real on-disk formats, for tests.

The images differ by class (a fixed class pattern, randomly shifted, scaled and noised), so
models can cluster them. Both writers return the folder they wrote into.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from vaemix.data.mnist import FILES, idx_bytes, raw_dir

# Class patterns are fixed (independent of ``seed``): class k always looks the same.
_PATTERN_SEED = 20180


def _upsample(a: np.ndarray, f: int) -> np.ndarray:
    return np.repeat(np.repeat(a, f, axis=-2), f, axis=-1)


def _balanced_labels(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.arange(n) % k).astype(np.int64)


def mnist_like(n: int, seed: int, max_shift: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uint8 images [n, 28, 28] (digit-like class blobs on black, each shifted by up to
    ``max_shift`` pixels along each axis) and labels 0..9."""
    protos = np.zeros((10, 28, 28))
    coarse = np.random.default_rng(_PATTERN_SEED).random((10, 5, 5)) < 0.45
    protos[:, 4:24, 4:24] = _upsample(coarse.astype(float), 4)
    rng = np.random.default_rng(seed)
    y = _balanced_labels(n, 10, rng)
    x = protos[y] * rng.uniform(180, 255, size=(n, 1, 1))
    shifts = rng.integers(-max_shift, max_shift + 1, size=(n, 2))
    for i, (dr, dc) in enumerate(shifts):
        x[i] = np.roll(x[i], (dr, dc), axis=(0, 1))
    x += rng.normal(0, 20, size=x.shape)
    return np.clip(x, 0, 255).astype(np.uint8), y


def write_mnist_raw(root: Path, n_train: int, n_test: int, seed: int,
                    max_shift: int = 2) -> Path:
    """Write ``root/MNIST/raw/*-ubyte`` (uncompressed IDX) with n_train / n_test images."""
    x, y = mnist_like(n_train + n_test, seed, max_shift)
    folder = raw_dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    for split, sl in (("train", slice(0, n_train)), ("test", slice(n_train, None))):
        img_name, lab_name = FILES[split]
        (folder / img_name).write_bytes(idx_bytes(x[sl]))
        (folder / lab_name).write_bytes(idx_bytes(y[sl].astype(np.uint8)))
    return folder


def cifar_like(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 images [n, 3, 32, 32], coarse labels 0..19 and fine labels 0..99 (coarse = fine // 5).

    Each coarse class has its own colour pattern; its five fine classes are small variations.
    """
    prng = np.random.default_rng(_PATTERN_SEED)
    coarse_p = _upsample(prng.random((20, 3, 4, 4)), 8)
    fine_p = 0.8 * np.repeat(coarse_p, 5, axis=0) + 0.2 * _upsample(prng.random((100, 3, 4, 4)), 8)
    rng = np.random.default_rng(seed)
    fine = _balanced_labels(n, 100, rng)
    x = fine_p[fine] * rng.uniform(200, 255, size=(n, 1, 1, 1)) + rng.normal(0, 15, (n, 3, 32, 32))
    return np.clip(x, 0, 255).astype(np.uint8), fine // 5, fine


def _dump(path: Path, obj: dict) -> None:
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=2)


def write_cifar100_raw(root: Path, n_train: int, n_test: int, seed: int) -> Path:
    """Write ``root/cifar-100-python/{train,test,meta}`` pickles as in the real archive."""
    x, coarse, fine = cifar_like(n_train + n_test, seed)
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for split, sl in (("train", slice(0, n_train)), ("test", slice(n_train, None))):
        n = len(x[sl])
        _dump(folder / split, {
            b"filenames": [f"img_{i:05d}.png".encode() for i in range(n)],
            b"batch_label": f"{split} batch".encode(),
            b"fine_labels": [int(v) for v in fine[sl]],
            b"coarse_labels": [int(v) for v in coarse[sl]],
            b"data": x[sl].reshape(n, -1),
        })
    _dump(folder / "meta", {
        b"fine_label_names": [f"fine_{i}".encode() for i in range(100)],
        b"coarse_label_names": [f"coarse_{i}".encode() for i in range(20)],
    })
    return folder


def repo_params(raw_root: Path | None = None) -> dict:
    """The repository's params.yaml (validated), with data roots moved to ``raw_root``."""
    from vaemix.config import load_params

    params = load_params(Path(__file__).resolve().parents[2] / "params.yaml")
    if raw_root is not None:
        params["data"]["mnist"]["root"] = str(raw_root)
        params["data"]["cifar100"]["root"] = str(raw_root)
        params["data"]["npz"]["path"] = str(Path(raw_root) / "custom.npz")
    return params

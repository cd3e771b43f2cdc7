"""Helpers shared by the dataset readers: seeded streams, stratified subsets, card, samples."""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from vaemix.io import save_figure


def rng_for(seed: int, *tags: str) -> np.random.Generator:
    """A random stream determined by ``seed`` and the purpose ``tags`` (independent streams)."""
    return np.random.default_rng([int(seed), *(zlib.crc32(t.encode()) for t in tags)])


def allocate(counts: np.ndarray, n: int) -> np.ndarray:
    """Split ``n`` over classes proportionally to ``counts`` (largest remainder, ties by order)."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    base = n * counts // total
    rem = n * counts % total
    left = n - int(base.sum())
    order = sorted(range(len(counts)), key=lambda i: (-int(rem[i]), i))
    base[order[:left]] += 1
    return base


def stratified_indices(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of a class-stratified random subset of size ``n`` of ``y``.

    Every label value (including -1, unlabelled) is a stratum; the original order is kept.
    """
    y = np.asarray(y)
    if n >= len(y):
        return np.arange(len(y))
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    take = allocate(counts, n)
    chosen = []
    for c in range(len(classes)):
        members = np.flatnonzero(inverse == c)
        chosen.append(rng.choice(members, size=int(take[c]), replace=False))
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def stratified_split(
    y: np.ndarray, test_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices (each in original order), stratified by ``y``."""
    n = len(y)
    n_test = min(max(int(round(n * test_fraction)), 1), n - 1)
    test = stratified_indices(y, n_test, rng)
    mask = np.ones(n, dtype=bool)
    mask[test] = False
    return np.flatnonzero(mask), test


def cap_split(
    arrays: Mapping[str, np.ndarray], y: np.ndarray, max_n: int | None, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Apply a budget cap (stratified by ``y``) to arrays that share their first axis."""
    if max_n is None or max_n >= len(y):
        return dict(arrays)
    idx = stratified_indices(y, max_n, rng)
    return {k: v[idx] for k, v in arrays.items()}


def class_counts(y: np.ndarray) -> dict[str, int]:
    values, counts = np.unique(np.asarray(y), return_counts=True)
    return {str(int(v)): int(c) for v, c in zip(values, counts, strict=True)}


def n_classes_of(*labels: np.ndarray) -> int:
    """Number of classes implied by labels 0..K-1 (-1 = unlabelled ignored)."""
    top = max((int(y.max()) for y in labels if y.size), default=-1)
    return top + 1


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_array(a: np.ndarray) -> str:
    """Hash of an array's dtype, shape and C-order bytes."""
    a = np.ascontiguousarray(a)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def as_features(x: np.ndarray) -> np.ndarray:
    """float32 view of stored inputs: uint8 images scaled to [0, 1], anything else as is."""
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255.0)
    return x.astype(np.float32, copy=False)


# --- sample figure ----------------------------------------------------------------------

def _is_image(x: np.ndarray) -> bool:
    return x.ndim == 3 or (x.ndim == 4 and x.shape[1] in (1, 3))


def _mosaic(x: np.ndarray, y: np.ndarray, per_class: int) -> tuple[np.ndarray, list[int]]:
    """Rows of the first ``per_class`` images of each class, as one [H', W', 3] array."""
    imgs = x if x.ndim == 4 else x[:, None]
    imgs = imgs.astype(np.float64)
    lo, hi = (0.0, 255.0) if x.dtype == np.uint8 else (float(imgs.min()), float(imgs.max()))
    imgs = (imgs - lo) / (hi - lo if hi > lo else 1.0)
    if imgs.shape[1] == 1:
        imgs = np.repeat(imgs, 3, axis=1)
    _, _, h, w = imgs.shape
    classes = [int(c) for c in np.unique(y)][:20]
    grid = np.ones(((h + 2) * len(classes), (w + 2) * per_class, 3))
    for r, c in enumerate(classes):
        for k, i in enumerate(np.flatnonzero(y == c)[:per_class]):
            grid[r * (h + 2) + 1 : r * (h + 2) + 1 + h, k * (w + 2) + 1 : k * (w + 2) + 1 + w] = (
                imgs[i].transpose(1, 2, 0)
            )
    return np.clip(grid, 0, 1), classes


def save_samples(x: np.ndarray, y: np.ndarray, path: Path, title: str) -> None:
    """An image grid (a row per class) or, for vector data, a scatter coloured by class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if _is_image(x):
        per_class = 10
        grid, classes = _mosaic(x, y, per_class)
        rows = len(classes)
        fig, ax = plt.subplots(figsize=(per_class * 0.6 + 0.6, rows * 0.6 + 0.6))
        ax.imshow(grid, interpolation="nearest")
        h = grid.shape[0] / rows
        ax.set_yticks([h * (r + 0.5) for r in range(rows)])
        ax.set_yticklabels(["unlabelled" if c < 0 else str(c) for c in classes])
        ax.set_xticks([])
        ax.set_ylabel("class")
    else:
        flat = x.reshape(len(x), -1).astype(np.float64)
        if flat.shape[1] > 2:  # first two principal components
            centred = flat - flat.mean(axis=0)
            flat = centred @ np.linalg.svd(centred, full_matrices=False)[2][:2].T
        elif flat.shape[1] == 1:
            flat = np.hstack([flat, np.zeros_like(flat)])
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.scatter(flat[:, 0], flat[:, 1], c=y, cmap="tab20", s=3, linewidths=0)
        ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(title)
    save_figure(fig, path, tight=True)  # one figure a dataset: cropped to its labels


def build_card(
    name: str,
    source: str,
    seed: int,
    arrays: Mapping[str, np.ndarray],
    raw_files: Mapping[str, str],
    budget: Mapping[str, Any],
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    """The data card: provenance, shapes, class balance and checksums of a prepared set."""
    return {
        "dataset": name,
        "source": source,
        "seed": seed,
        "shapes": {k: list(v.shape) for k, v in arrays.items()},
        "dtypes": {k: str(v.dtype) for k, v in arrays.items()},
        "n_classes": n_classes_of(arrays["y_train"], arrays["y_test"]),
        "class_counts": {
            "train": class_counts(arrays["y_train"]),
            "test": class_counts(arrays["y_test"]),
        },
        "budget": dict(budget),
        "sha256": {
            "arrays": {k: sha256_array(v) for k, v in arrays.items()},
            "raw_files": dict(raw_files),
        },
        **extra,
    }

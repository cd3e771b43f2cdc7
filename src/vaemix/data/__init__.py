"""Datasets: ``prepare_dataset`` writes ``data/prepared/<name>/``, ``load_prepared`` reads it.

A prepared folder holds ``data.npz`` (x/y train/test; uint8 images [N, C, H, W] or float32
vectors; y int64 with -1 = unlabelled), ``regression.npz`` (targets for the mixture of
experts), ``card.json`` (provenance, class counts, checksums) and ``samples.png``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vaemix.config import DATASETS, read
from vaemix.data import cifar100, mnist, npz, spiral
from vaemix.data.common import (
    as_features,
    build_card,
    cap_split,
    n_classes_of,
    rng_for,
    save_samples,
    sha256_file,
)
from vaemix.data.regression import make_targets
from vaemix.errors import DataError, ParamError
from vaemix.io import atomic_dir, load_npz, read_json, save_npz, write_json

__all__ = ["PREPARED_ROOT", "Prepared", "load_prepared", "prepare_dataset"]

PREPARED_ROOT = Path("data/prepared")

LOADERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "mnist": mnist.load,
    "cifar100": cifar100.load,
    "spiral": spiral.load,
    "npz": npz.load,
}


def _apply_budget(arrays: dict[str, np.ndarray], params: dict[str, Any]) -> dict[str, Any]:
    """Cap each split in place (class-stratified, seeded); return what was done for the card."""
    seed = read(params, "seed")
    report: dict[str, Any] = {}
    for split in ("train", "test"):
        cap = read(params, f"budget.max_{split}")
        members = {k: v for k, v in arrays.items() if k.endswith(f"_{split}")}
        before = len(arrays[f"y_{split}"])
        arrays.update(cap_split(members, arrays[f"y_{split}"], cap, rng_for(seed, f"cap-{split}")))
        report[f"max_{split}"] = cap
        report[f"n_{split}_before"] = before
        report[f"n_{split}"] = len(arrays[f"y_{split}"])
    return report


def prepare_dataset(name: str, params: dict[str, Any], out_dir: Path) -> None:
    """Read or generate dataset ``name``, apply the budget caps and write ``out_dir``."""
    if name not in LOADERS:
        raise ParamError(f"unknown dataset {name!r} (known: {', '.join(DATASETS)})")
    loaded = LOADERS[name](params)
    arrays: dict[str, np.ndarray] = loaded["arrays"]
    budget = _apply_budget(arrays, params)
    reg = make_targets(arrays, params)
    extra = dict(loaded["extra"])
    extra["regression"] = {
        "mode": params["regression"]["mode"],
        "out_dim": params["regression"]["out_dim"],
        "noise": params["regression"]["noise"],
        "n_maps": int(reg["W"].shape[0]),
        "raw_mean": reg["t_mean"],
        "raw_std": reg["t_std"],
    }
    extra["params"] = params["data"][name]
    card = build_card(
        name, loaded["source"], read(params, "seed"), arrays, loaded["raw_files"],
        budget, extra,
    )
    with atomic_dir(out_dir) as tmp:
        save_npz(tmp / "data.npz", **arrays)
        save_npz(tmp / "regression.npz", **reg)
        card["sha256"]["data.npz"] = sha256_file(tmp / "data.npz")
        card["sha256"]["regression.npz"] = sha256_file(tmp / "regression.npz")
        write_json(tmp / "card.json", card)
        title = f"{name} (train, n={len(arrays['y_train'])})"
        save_samples(arrays["x_train"], arrays["y_train"], tmp / "samples.png", title)


@dataclasses.dataclass(eq=False)
class Prepared:
    """A prepared dataset: x float32 (images in [0, 1], shape [N, C, H, W] kept), y int64
    (-1 = unlabelled), t float32 regression targets [N, out_dim]."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    t_train: np.ndarray
    t_test: np.ndarray
    input_shape: tuple[int, ...]
    n_classes: int
    card: dict[str, Any]
    y_fine_train: np.ndarray | None = None  # cifar100 only: the 100 fine labels
    y_fine_test: np.ndarray | None = None


def load_prepared(name: str, root: Path = PREPARED_ROOT) -> Prepared:
    """Load ``root/name`` written by :func:`prepare_dataset`."""
    folder = Path(root) / name
    paths = [folder / f for f in ("data.npz", "regression.npz", "card.json")]
    for path in paths:
        if not path.is_file():
            raise DataError(f"{path}: not found; run the prepare@{name} stage first")
    card = read_json(paths[2])
    for path in paths[:2]:  # the checksums prepare wrote: a corrupted or edited file is refused
        want = card.get("sha256", {}).get(path.name)
        if want is not None and sha256_file(path) != want:
            raise DataError(
                f"{path}: checksum mismatch with {paths[2].name} (sha256 {want[:12]}...); the "
                f"file is corrupted or was changed: rerun the prepare@{name} stage"
            )
    data, reg = load_npz(paths[0]), load_npz(paths[1])
    return Prepared(
        name=name,
        x_train=as_features(data["x_train"]),
        y_train=data["y_train"].astype(np.int64),
        x_test=as_features(data["x_test"]),
        y_test=data["y_test"].astype(np.int64),
        t_train=reg["t_train"],
        t_test=reg["t_test"],
        input_shape=tuple(int(s) for s in data["x_train"].shape[1:]),
        n_classes=n_classes_of(data["y_train"], data["y_test"]),
        card=card,
        y_fine_train=data.get("y_fine_train"),
        y_fine_test=data.get("y_fine_test"),
    )

"""The synthetic 2-D spiral with one class per arm.

Singh et al. 2018 (sec. 8.1.2) use a 5-class spiral but give no formula; this is our own
construction. Arm j of ``arms`` has points at position t in [0, 1] along the arm with
radius t (so radius <= 1 before noise) and angle 2*pi*turns*t + 2*pi*j/arms, plus isotropic
Gaussian noise of std ``noise``. t = sqrt(u), u ~ U(0, 1), so that points do not crowd the
centre, where the arms meet.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vaemix.config import read
from vaemix.data.common import rng_for, stratified_split


def make_spiral(
    arms: int, points_per_arm: int, turns: float, noise: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Points [arms * points_per_arm, 2] float32 in random order and their arm labels."""
    t = np.sqrt(rng.uniform(0.0, 1.0, size=(arms, points_per_arm)))
    angle = 2 * np.pi * turns * t + 2 * np.pi * np.arange(arms)[:, None] / arms
    x = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=-1).reshape(-1, 2)
    x = x + noise * rng.standard_normal(x.shape)
    y = np.repeat(np.arange(arms, dtype=np.int64), points_per_arm)
    order = rng.permutation(len(y))
    return x[order].astype(np.float32), y[order]


def load(params: dict[str, Any]) -> dict[str, Any]:
    k = "data.spiral"
    seed = read(params, "seed")
    x, y = make_spiral(
        read(params, f"{k}.arms"),
        read(params, f"{k}.points_per_arm"),
        read(params, f"{k}.turns"),
        read(params, f"{k}.noise"),
        rng_for(seed, "spiral"),
    )
    test_fraction = read(params, f"{k}.test_fraction")
    train, test = stratified_split(y, test_fraction, rng_for(seed, "split"))
    return {
        "arrays": {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test]},
        "source": "synthetic spiral (vaemix.data.spiral, after Singh et al. 2018 sec. 8.1.2)",
        "raw_files": {},
        "extra": {},
    }

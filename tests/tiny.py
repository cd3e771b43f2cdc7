"""A tiny project folder (the end-to-end test's tiny profile) for tests that run stages.

The folder holds params.yaml, fake raw MNIST and the generated spiral; stages run in it
with the repository's scripts (``stages/*.py``, by absolute path) and the installed package.
"""

from __future__ import annotations

import contextlib
import os
import runpy
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import yaml

from tests.data.fakes import write_mnist_raw
from tests.test_pipeline_e2e import tiny_params
from vaemix.config import METHODS

ROOT = Path(__file__).resolve().parents[1]
STAGES = ROOT / "stages"


def make_project(folder: Path, datasets: tuple[str, ...] = ("spiral",),
                 changes: dict | None = None) -> Path:
    """Write params.yaml (the tiny profile on ``datasets``, then dotted-key ``changes``)."""
    params = tiny_params()
    params["datasets"] = list(datasets)
    if "mnist" not in datasets:  # the stage tests sweep only beside MNIST
        params["latent_sweep"]["latent_dims"] = []
    params["methods"] = list(METHODS)  # every registered method, whatever the e2e test lists
    for key, value in (changes or {}).items():
        set_param(params, key, value)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    if "mnist" in datasets:
        write_mnist_raw(folder / "data" / "raw", n_train=500, n_test=200, seed=0)
    return folder


def set_param(params: dict, key: str, value) -> None:
    *parents, last = key.split(".")
    node = params
    for part in parents:
        node = node[part]
    node[last] = value


def edit_params(folder: Path, changes: dict) -> None:
    params = yaml.safe_load((folder / "params.yaml").read_text())
    for key, value in changes.items():
        set_param(params, key, value)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@contextlib.contextmanager
def inside(folder: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(old)


def run_inprocess(folder: Path, stage: str, *args: str) -> None:
    """Call ``stages/<stage>.py``'s ``main`` in this process (errors propagate)."""
    main = runpy.run_path(str(STAGES / f"{stage}.py"), run_name="vaemix_test")["main"]
    with inside(folder):
        main(list(args))


def run_subprocess(folder: Path, stage: str, *args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(STAGES / f"{stage}.py"), *args], cwd=folder,
                          capture_output=True, text=True, **kw)

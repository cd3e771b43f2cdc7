"""The report stage's logic: every figure, drawn from whatever artifacts exist.

:func:`build_figures` walks the (dataset, method) pairs of the params (never stale
directories) and draws, into ``out_dir``::

    <dataset>/data_samples.png        copy of data/prepared/<dataset>/samples.png
    <dataset>/<m>_recon.png           artifacts/<dataset>/<m>/recon.npz
    <dataset>/<m>_latents.png         artifacts/<dataset>/<m>/latents.npz (+ pred.npz of m
                                      and of every <m>+<baseline>, one panel each)
    <dataset>/<m>_confusion.png       artifacts/<dataset>/<m>/pred.npz
    <dataset>/<m>_curves.png          reports/curves/<dataset>/<m>/plots/metrics/**.tsv
    <dataset>/<m>_samples.png         artifacts/<dataset>/<m>/samples.npz (2-D points drawn
                                      over data/prepared/<dataset>/data.npz x_train)
    summary_<metric>.png              reports/summary.csv, for each of SUMMARY_METRICS
    <dataset>/moe_*.png               the mixture-of-experts figures (vaemix.moe_report)

A missing optional artifact is skipped; a present but inconsistent one, or a missing
reports/summary.csv (the evaluate stage's output), raises DataError. One task per run (and
per dataset for the MoE figures) goes to a pool of processes (:func:`figure_workers`);
on two CPUs this cut the stage by a third to a half (bench/pipeline_overhead.py).
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vaemix import plots
from vaemix.config import Params
from vaemix.errors import DataError
from vaemix.io import load_npz
from vaemix.moe_report import moe_figures
from vaemix.summary import expected_runs

SUMMARY_METRICS = ("acc", "nmi")


def _load(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """The arrays of an optional ``.npz`` (None when absent); missing keys raise."""
    if not path.is_file():
        return None
    try:
        arrays = load_npz(path)
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: not a readable .npz ({err})") from None
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise DataError(f"{path}: missing array(s) {', '.join(missing)}")
    return arrays


def _data_points(root: Path, dataset: str) -> np.ndarray | None:
    """The prepared training inputs of a 2-D dataset, as a backdrop for generated points."""
    data = _load(root / "data" / "prepared" / dataset / "data.npz", ("x_train",))
    if data is None or not plots.is_points_2d(data["x_train"]):
        return None
    return data["x_train"].astype(np.float32)


def _file_name(method: str) -> str:
    return method.replace("/", "_")


def _data_samples(dataset: str, out_dir: Path, root: Path) -> list[Path]:
    """The prepare stage's sample grid, copied."""
    samples_png = root / "data" / "prepared" / dataset / "samples.png"
    if not samples_png.is_file():
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(samples_png, out_dir / "data_samples.png")
    return [out_dir / "data_samples.png"]


def method_figures(
    dataset: str, method: str, methods: list[str], out_dir: Path, root: Path
) -> list[Path]:
    """Draw the figures of one run (``method`` among the dataset's ``methods``)."""
    art = root / "artifacts" / dataset
    curves = root / "reports" / "curves" / dataset
    m, name = method, _file_name(method)
    written: list[Path] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    # the run's own predictions and those of every baseline fitted on its latents
    preds = {p: _load(art / p / "pred.npz", ("pred_test", "y_test"))
             for p in methods if p == m or p.startswith(f"{m}+")}
    preds = {p: v for p, v in preds.items() if v is not None}

    recon = _load(art / m / "recon.npz", ("x", "x_recon"))
    if recon is not None:
        path = out_dir / f"{name}_recon.png"
        plots.plot_reconstructions(recon["x"], recon["x_recon"], path,
                                   title=f"{dataset}: {m} reconstructions")
        written.append(path)

    lat = _load(art / m / "latents.npz", ("z_test", "y_test"))
    if lat is not None:
        own = {p: v["pred_test"] for p, v in preds.items()}
        for p, pred in own.items():
            if len(pred) != len(lat["z_test"]):
                raise DataError(f"{art / p / 'pred.npz'}: {len(pred)} predictions but "
                                f"{len(lat['z_test'])} test latents in {art / m}")
        path = out_dir / f"{name}_latents.png"
        plots.plot_latents(lat["z_test"], lat["y_test"], path,
                           title=f"{dataset}: {m} latents (test)", predictions=own)
        written.append(path)

    if m in preds and (preds[m]["y_test"] != plots.UNLABELLED).any():
        path = out_dir / f"{name}_confusion.png"
        plots.plot_confusion(preds[m]["y_test"], preds[m]["pred_test"], path,
                             title=f"{dataset}: {m}")
        written.append(path)

    if plots.read_curves(curves / m):
        path = out_dir / f"{name}_curves.png"
        plots.plot_curves(curves / m, path, title=f"{dataset}: {m} training curves")
        written.append(path)

    smp = _load(art / m / "samples.npz", ("samples",))
    if smp is not None:
        background = None
        if plots.is_points_2d(smp["samples"].reshape(-1, *smp["samples"].shape[2:])):
            background = _data_points(root, dataset)
        path = out_dir / f"{name}_samples.png"
        plots.plot_samples_per_cluster(smp["samples"], path,
                                       title=f"{dataset}: {m} samples per cluster",
                                       data=background)
        written.append(path)
    return written


def _summary_bars(summary_csv: Path, datasets: list[str], out: Path) -> list[Path]:
    df = pd.read_csv(summary_csv)
    df = df[df["dataset"].isin(datasets)]
    written = []
    for metric in SUMMARY_METRICS:
        path = out / f"summary_{metric}.png"
        plots.plot_metric_bars(df, metric, path)
        written.append(path)
    return written


Task = tuple[Callable[..., list[Path]], tuple[Any, ...]]


def _run_task(task: Task) -> list[Path]:
    fn, args = task
    return fn(*args)


MAX_FIGURE_WORKERS = 8  # each worker holds matplotlib and a run's arrays (~100-200 MB)


def figure_workers() -> int:
    """Processes drawing figures: the CPUs this process may use, at most
    MAX_FIGURE_WORKERS (the figures do not depend on it; matplotlib draws on one core, and
    one run's figures do not depend on another's)."""
    cpus = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else os.cpu_count() or 1)
    return max(1, min(cpus, MAX_FIGURE_WORKERS))


def build_figures(
    params: Params,
    out_dir: str | os.PathLike,
    root: str | os.PathLike = ".",
    workers: int | None = None,
) -> list[Path]:
    """Every figure of the report into ``out_dir`` (see the module docstring), drawn by
    ``workers`` processes (default :func:`figure_workers`; 1 = in this process). The
    files do not depend on ``workers``."""
    out, root = Path(out_dir), Path(root)
    summary_csv = root / "reports" / "summary.csv"
    if not summary_csv.is_file():
        raise DataError(f"{summary_csv}: summary table missing; run the evaluate stage first")
    tasks: list[Task] = []
    for ds in params["datasets"]:
        methods = [m for d, m in expected_runs(params) if d == ds]
        tasks.append((_data_samples, (ds, out / ds, root)))
        tasks += [(method_figures, (ds, m, methods, out / ds, root)) for m in methods]
        tasks.append((moe_figures, (params, ds, out / ds, root)))
    tasks.append((_summary_bars, (summary_csv, list(params["datasets"]), out)))
    workers = min(figure_workers() if workers is None else workers, len(tasks))
    if workers <= 1:
        results = [_run_task(t) for t in tasks]
    else:
        # fork: the workers inherit the imported modules instead of importing them again
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            results = list(pool.map(_run_task, tasks))
    return [path for paths in results for path in paths]

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
reports/summary.csv (the evaluate stage's output), raises DataError.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

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


def dataset_figures(params: Params, dataset: str, out_dir: Path, root: Path) -> list[Path]:
    """Draw the figures of one dataset into ``out_dir``; return the paths written."""
    art = root / "artifacts" / dataset
    curves = root / "reports" / "curves" / dataset
    methods = [m for ds, m in expected_runs(params) if ds == dataset]
    written: list[Path] = []
    out_dir.mkdir(parents=True, exist_ok=True)

    samples_png = root / "data" / "prepared" / dataset / "samples.png"
    if samples_png.is_file():
        shutil.copyfile(samples_png, out_dir / "data_samples.png")
        written.append(out_dir / "data_samples.png")

    preds = {m: _load(art / m / "pred.npz", ("pred_test", "y_test")) for m in methods}
    preds = {m: p for m, p in preds.items() if p is not None}

    for m in methods:
        name = _file_name(m)
        recon = _load(art / m / "recon.npz", ("x", "x_recon"))
        if recon is not None:
            path = out_dir / f"{name}_recon.png"
            plots.plot_reconstructions(recon["x"], recon["x_recon"], path,
                                       title=f"{dataset}: {m} reconstructions")
            written.append(path)

        lat = _load(art / m / "latents.npz", ("z_test", "y_test"))
        if lat is not None:
            # the method's own clustering, then every baseline fitted on its latents
            own = {p: preds[p]["pred_test"] for p in preds if p == m or p.startswith(f"{m}+")}
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


def build_figures(
    params: Params, out_dir: str | os.PathLike, root: str | os.PathLike = "."
) -> list[Path]:
    """Every figure of the report into ``out_dir`` (see the module docstring)."""
    out, root = Path(out_dir), Path(root)
    summary_csv = root / "reports" / "summary.csv"
    if not summary_csv.is_file():
        raise DataError(f"{summary_csv}: summary table missing; run the evaluate stage first")
    written: list[Path] = []
    for ds in params["datasets"]:
        written += dataset_figures(params, ds, out / ds, root)
        written += moe_figures(params, ds, out / ds, root)
    df = pd.read_csv(summary_csv)
    df = df[df["dataset"].isin(params["datasets"])]
    for metric in SUMMARY_METRICS:
        path = out / f"summary_{metric}.png"
        plots.plot_metric_bars(df, metric, path)
        written.append(path)
    return written

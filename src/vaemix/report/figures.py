"""The report stage's logic: every figure, drawn from whatever artifacts exist, and the
few that ``reports/README.md`` links, published beside it.

:func:`build_figures` walks the (dataset, method) pairs of the params (never stale
directories) and draws, into ``out_dir`` (the stage's DVC-cached ``figures/``)::

    <dataset>/data_samples.png        copy of data/prepared/<dataset>/samples.png
    <dataset>/<m>_recon.png           artifacts/<dataset>/<m>/recon.npz
    <dataset>/<m>_latents.png         artifacts/<dataset>/<m>/latents.npz (+ pred.npz of m
                                      and of every <m>+<baseline>, one panel each)
    <dataset>/<m>_confusion.png       artifacts/<dataset>/<m>/pred.npz
    <dataset>/<m>_curves.png          reports/curves/<dataset>/<m>/plots/metrics/**.tsv
    <dataset>/<m>_samples.png         artifacts/<dataset>/<m>/samples.npz (2-D points drawn
                                      over data/prepared/<dataset>/data.npz x_train)
    <dataset>/summary_main.png        ACC and NMI of the main runs (the mixture models and
                                      <encoder>+<baseline>), sorted, collapsed runs marked
    <dataset>/summary_sweep.png       ACC and NMI against the latent dim (the *_z<d> runs)
    <dataset>/moe_*.png               the mixture-of-experts figures (vaemix.moe.report)

A missing optional artifact is skipped; a present but inconsistent one, or a missing
reports/summary.csv (the evaluate stage's output), raises DataError. One task per run (and
per dataset for the MoE figures) goes to a pool of processes (:func:`figure_workers`);
on two CPUs this cut the stage by a third to a half (bench/pipeline_overhead.py).

:func:`publish_figures` copies the figures the README links (:func:`linked_figures`) into
the git-tracked ``reports/figures/``, as palette PNGs at most PUBLISH_MAX_WIDTH wide, so
that the committed report stays small (a few MB) while every figure stays a DVC output.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import re
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vaemix.config import Params
from vaemix.errors import DataError
from vaemix.io import load_npz, write_bytes
from vaemix.moe.report import moe_figures
from vaemix.report import plots
from vaemix.report.summary import cluster_note, expected_runs, fill_collapse, is_collapsed, learns_k
from vaemix.run_ids import RunId

SUMMARY_METRICS = ("acc", "nmi")
FIGURES = Path("figures")  # every figure (the report stage's DVC-cached output)
PUBLISHED = Path("reports/figures")  # the linked ones, committed (git)
PUBLISH_MAX_WIDTH = 1600  # pixels; wider figures are scaled down to this
PUBLISH_COLORS = 256  # a palette PNG: a plot has few colours, and it is 3-4x smaller


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


def main_runs(summary: pd.DataFrame, params: Params, dataset: str) -> pd.DataFrame:
    """The clusterings of ``dataset`` outside the latent sweep: the mixture models and the
    ``<encoder>+<baseline>`` runs, with ``collapsed`` and a ``note`` for the figure
    (vaemix.report.summary.cluster_note: shown for collapsed runs and runs that learn K)."""
    rows = fill_collapse(summary[summary["dataset"] == dataset], params)
    rows = rows[rows["kind"].isin(["mixture", "baseline"])
                & rows["method"].astype(str).map(lambda m: RunId.parse(m).latent_dim is None)]
    notes = [cluster_note(r) if is_collapsed(r) or learns_k(r) else ""
             for _, r in rows.iterrows()]
    return rows.assign(note=notes)


def sweep_runs(summary: pd.DataFrame, params: Params, dataset: str) -> pd.DataFrame:
    """The latent sweep's runs ``<run>_z<d>[+<baseline>]`` of ``dataset`` that cluster, as
    ``run`` (the name without ``_z<d>``), ``dim`` and ``group`` (mixture models, or the
    baselines on the swept encoders' latents)."""
    rows = fill_collapse(summary[summary["dataset"] == dataset], params)
    rows = rows[rows["kind"].isin(["mixture", "baseline"])]
    ids = [RunId.parse(m) for m in rows["method"].astype(str)]
    swept = [r.latent_dim is not None for r in ids]
    rows, ids = rows[swept], [r for r in ids if r.latent_dim is not None]
    return rows.assign(run=[RunId(r.base, baseline=r.baseline).name for r in ids],
                       dim=[r.latent_dim for r in ids],
                       group=["baselines on latents" if k == "baseline" else "mixture models"
                              for k in rows["kind"]])


def _summary_figures(summary_csv: Path, params: Params, dataset: str, out: Path) -> list[Path]:
    """``summary_main.png`` and, with a latent sweep, ``summary_sweep.png`` of a dataset."""
    df = pd.read_csv(summary_csv)
    written = []
    main = main_runs(df, params, dataset)
    if len(main):
        out.mkdir(parents=True, exist_ok=True)
        path = out / "summary_main.png"
        plots.plot_run_bars(main, SUMMARY_METRICS, path,
                            title=f"{dataset}: test ACC and NMI of the main runs")
        written.append(path)
    sweep = sweep_runs(df, params, dataset)
    if len(sweep) and sweep["acc"].notna().any():
        out.mkdir(parents=True, exist_ok=True)
        path = out / "summary_sweep.png"
        plots.plot_sweep(sweep, SUMMARY_METRICS, path,
                         title=f"{dataset}: the latent-dimension sweep (test)")
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
        tasks.append((_summary_figures, (summary_csv, params, ds, out / ds)))
    workers = min(figure_workers() if workers is None else workers, len(tasks))
    if workers <= 1:
        results = [_run_task(t) for t in tasks]
    else:
        # fork: the workers inherit the imported modules instead of importing them again
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            results = list(pool.map(_run_task, tasks))
    return [path for paths in results for path in paths]


def linked_figures(markdown: str) -> list[str]:
    """The figures a report links, ``figures/<dataset>/<name>.png``, in order, once each."""
    return list(dict.fromkeys(re.findall(r"\]\((figures/[^)\s]+\.png)\)", markdown)))


def publish_figures(
    links: list[str], src: str | os.PathLike, dst: str | os.PathLike,
    max_width: int = PUBLISH_MAX_WIDTH, colors: int = PUBLISH_COLORS,
) -> list[Path]:
    """Copy each linked ``figures/<path>`` from ``src/<path>`` to ``dst/<path>`` as a
    palette PNG at most ``max_width`` pixels wide; the same input gives the same bytes.
    A link to a missing figure raises DataError (the report would show a broken image)."""
    from PIL import Image

    src, dst = Path(src), Path(dst)
    written = []
    for link in links:
        rel = Path(link).relative_to("figures")
        if not (src / rel).is_file():
            raise DataError(f"{src / rel}: linked from the report but not drawn")
        with Image.open(src / rel) as image:
            image = image.convert("RGB")
        if image.width > max_width:
            height = round(image.height * max_width / image.width)
            image = image.resize((max_width, height), Image.Resampling.LANCZOS)
        image = image.quantize(colors, method=Image.Quantize.MEDIANCUT,
                               dither=Image.Dither.NONE)
        buf = io.BytesIO()
        image.save(buf, format="PNG", optimize=True)
        write_bytes(dst / rel, buf.getvalue())
        written.append(dst / rel)
    return written

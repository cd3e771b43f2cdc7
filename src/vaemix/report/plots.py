"""Figures: reconstructions, latent scatters, confusion matrices, curves, samples, bars.

Every function takes plain numpy arrays (or a pandas frame / a dvclive directory) and an
output path, draws with matplotlib's Agg backend and saves through
:func:`vaemix.io.save_figure` (atomic, no timestamp metadata, so identical inputs give
identical bytes). Data come in three shapes and each function handles those it can:

- images ``[n, C, H, W]`` with ``C`` in {1, 3} and values in [0, 1] (``[n, H, W]`` is
  read as one channel),
- 2-D points ``[n, 2]`` (the spiral),
- other vectors ``[n, D]``, drawn as a heat map (one row per example).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from vaemix.errors import DataError  # noqa: E402
from vaemix.io import save_figure  # noqa: E402

PathLike = str | os.PathLike
UNLABELLED = -1
_GREY = (0.6, 0.6, 0.6, 0.5)


# --- layout ---------------------------------------------------------------------------

def set_margins(
    fig: Any, left: float = 0.6, right: float = 0.2, bottom: float = 0.5, top: float = 0.6,
    wspace: float = 0.6, hspace: float = 0.7,
) -> None:
    """Place the figure's grid of subplots with margins and gaps given in inches.

    Room for tick labels, axis labels and titles is reserved by size instead of measured:
    a layout engine (``tight_layout``, ``constrained``) or ``bbox_inches="tight"`` measures
    every text by drawing the figure once more, which took most of the report stage's
    time on the curves and confusion figures (one run has five figures; a report, 300).
    """
    width, height = fig.get_size_inches()
    nrows, ncols = fig.axes[0].get_subplotspec().get_gridspec().get_geometry()
    ax_w = (width - left - right - (ncols - 1) * wspace) / ncols
    ax_h = (height - bottom - top - (nrows - 1) * hspace) / nrows
    if ax_w <= 0 or ax_h <= 0:
        raise ValueError(f"a {width:g} x {height:g} in figure has no room for {nrows} x "
                         f"{ncols} panels inside these margins")
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height,
                        top=1 - top / height, wspace=wspace / ax_w, hspace=hspace / ax_h)


# --- shapes and colours ---------------------------------------------------------------

def as_images(x: np.ndarray) -> np.ndarray | None:
    """``x`` as ``[n, C, H, W]`` float images if it looks like images, else None."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim == 4 and x.shape[1] in (1, 3):
        return x.astype(np.float32, copy=False)
    return None


def is_points_2d(x: np.ndarray) -> bool:
    x = np.asarray(x)
    return x.ndim == 2 and x.shape[1] == 2


def image_grid(
    images: np.ndarray, nrow: int = 8, pad: int = 2, pad_value: float = 1.0
) -> np.ndarray:
    """Tile images ``[n, C, H, W]`` into one picture, ``nrow`` images per row.

    With ``cols = min(nrow, n)`` and ``rows = ceil(n / cols)`` the result has height
    ``rows * H + (rows + 1) * pad`` and width ``cols * W + (cols + 1) * pad``; it is
    ``[height, width]`` for one channel and ``[height, width, 3]`` for three, with values
    clipped to [0, 1], ready for ``imshow``.
    """
    imgs = as_images(images)
    if imgs is None:
        raise ValueError(f"expected images [n, C, H, W] with C in (1, 3), got {np.shape(images)}")
    if nrow < 1:
        raise ValueError(f"nrow must be positive, got {nrow}")
    n, c, h, w = imgs.shape
    if n == 0:
        raise ValueError("no images to tile")
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    grid = np.full((rows * h + (rows + 1) * pad, cols * w + (cols + 1) * pad, c), pad_value,
                   dtype=np.float32)
    for i in range(n):
        r, k = divmod(i, cols)
        top, left = pad + r * (h + pad), pad + k * (w + pad)
        grid[top:top + h, left:left + w] = imgs[i].transpose(1, 2, 0)
    grid = np.clip(grid, 0.0, 1.0)
    return grid[..., 0] if c == 1 else grid


def _show_grid(ax: Any, grid: np.ndarray) -> None:
    if grid.ndim == 2:
        ax.imshow(grid, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(grid, interpolation="nearest")
    ax.set_axis_off()


def _grid_figure(
    grid: np.ndarray, row_labels: list[str], title: str, ylabel: str = "", pad: int = 2
) -> Any:
    """A figure sized to an :func:`image_grid` (``pad`` as used there), rows labelled."""
    height, width = grid.shape[:2]
    px_per_inch = max(56.0, width / 12.0, height / 16.0)
    fig = plt.figure(figsize=(width / px_per_inch, height / px_per_inch))
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    _show_grid(ax, grid)
    ax.set_title(title)
    ax.set_axis_on()
    ax.set_xticks([])
    pitch = (height - pad) / len(row_labels)
    ax.set_yticks([pad / 2 + pitch * (i + 0.5) for i in range(len(row_labels))], row_labels,
                  fontsize=7)
    ax.tick_params(length=0)
    ax.set_ylabel(ylabel, fontsize=8)
    for spine in ax.spines.values():
        spine.set_visible(False)
    return fig


def _show_heatmap(ax: Any, x: np.ndarray) -> None:
    ax.imshow(np.asarray(x).reshape(len(x), -1), aspect="auto", cmap="viridis",
              interpolation="nearest")
    ax.set_xlabel("feature")
    ax.set_ylabel("example")


def label_colors(labels: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """RGBA colour per point and the sorted distinct labels; ``-1`` (unlabelled) is grey."""
    labels = np.asarray(labels).astype(np.int64).ravel()
    classes = sorted(int(v) for v in np.unique(labels) if v != UNLABELLED)
    k = max(len(classes), 1)
    cmap = matplotlib.colormaps["tab10" if k <= 10 else "tab20" if k <= 20 else "turbo"]
    palette = {c: cmap(i if k <= 20 else i / max(k - 1, 1)) for i, c in enumerate(classes)}
    colors = np.array([palette.get(int(v), _GREY) for v in labels], dtype=float).reshape(-1, 4)
    return colors, classes


def _scatter_labelled(ax: Any, pts: np.ndarray, labels: np.ndarray, size: float = 4.0) -> None:
    colors, classes = label_colors(labels)
    ax.scatter(pts[:, 0], pts[:, 1], c=colors, s=size, linewidths=0, rasterized=True)
    if 0 < len(classes) <= 20:
        legend_colors, _ = label_colors(np.array(classes))
        for c, col in zip(classes, legend_colors, strict=True):
            ax.scatter([], [], color=col, s=12, label=str(c))
        ax.legend(fontsize=6, markerscale=1.0, loc="best", ncol=2 if len(classes) > 10 else 1,
                  frameon=False)


# --- reconstructions ------------------------------------------------------------------

def plot_reconstructions(
    x: np.ndarray, x_recon: np.ndarray, path: PathLike, title: str = "", max_images: int = 16
) -> None:
    """Inputs next to their reconstructions.

    Images: a row of originals above a row of reconstructions (first ``max_images``).
    2-D points: both scattered, a line joining each point to its reconstruction.
    Other vectors: two heat maps side by side.
    """
    x, x_recon = np.asarray(x), np.asarray(x_recon)
    if x.shape != x_recon.shape and x.size == x_recon.size:
        x_recon = x_recon.reshape(x.shape)  # e.g. flat decoder outputs of images
    if x.shape != x_recon.shape:
        raise ValueError(f"x {x.shape} and x_recon {x_recon.shape} differ in shape")
    imgs, recs = as_images(x), as_images(x_recon)
    if imgs is not None and recs is not None:
        n = min(len(imgs), max_images)
        grid = image_grid(np.concatenate([imgs[:n], recs[:n]]), nrow=n)
        fig = _grid_figure(grid, ["input", "recon."], title)
    elif is_points_2d(x):
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        segs = np.stack([x, x_recon], axis=1)
        ax.add_collection(LineCollection(segs, colors="0.6", linewidths=0.6))
        ax.scatter(x[:, 0], x[:, 1], s=10, label="input", color="tab:blue")
        ax.scatter(x_recon[:, 0], x_recon[:, 1], s=10, label="reconstruction",
                   color="tab:orange")
        ax.legend(fontsize=7, frameon=False)
        ax.set_aspect("equal", adjustable="datalim")
    else:
        fig, axes = plt.subplots(1, 2, figsize=(8, 3.5))
        for ax, arr, name in ((axes[0], x, "input"), (axes[1], x_recon, "reconstruction")):
            _show_heatmap(ax, arr)
            ax.set_title(name, fontsize=8)
    if imgs is None:
        fig.suptitle(title)
        set_margins(fig, top=0.6 if title else 0.3)
    save_figure(fig, path, tight=imgs is not None)  # an image grid is cropped to its labels


# --- latent space ---------------------------------------------------------------------

def project_2d(
    z: np.ndarray, method: str = "pca", max_points: int | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """2-D coordinates for latents ``z [N, d]`` and the indices of the points kept.

    ``d == 2`` is used as is (``d == 1`` gets a zero second axis). Above that, ``"pca"``
    projects on the two leading principal axes (numpy SVD, signs fixed so the output is
    deterministic) and ``"tsne"`` runs scikit-learn's t-SNE with a fixed random state on
    at most 2000 points. ``max_points`` subsamples (seeded) before projecting.
    """
    if method not in ("pca", "tsne"):
        raise ValueError(f"unknown projection {method!r} (known: pca, tsne)")
    z = np.asarray(z, dtype=np.float64).reshape(len(z), -1)
    cap = max_points
    if method == "tsne" and z.shape[1] > 2:
        cap = 2000 if cap is None else min(cap, 2000)
    idx = np.arange(len(z))
    if cap is not None and len(z) > cap:
        idx = np.sort(np.random.default_rng(seed).choice(len(z), size=cap, replace=False))
    z = z[idx]
    d = z.shape[1]
    if d == 1:
        return np.hstack([z, np.zeros_like(z)]), idx
    if d == 2:
        return z, idx
    if method == "pca":
        zc = z - z.mean(axis=0)
        _, _, vt = np.linalg.svd(zc, full_matrices=False)
        comps = vt[:2]
        signs = np.sign(comps[np.arange(2), np.argmax(np.abs(comps), axis=1)])
        signs[signs == 0] = 1.0
        return zc @ (comps * signs[:, None]).T, idx
    from sklearn.manifold import TSNE

    perplexity = float(min(30.0, max(2.0, (len(z) - 1) / 3)))
    tsne = TSNE(n_components=2, init="pca", random_state=seed, perplexity=perplexity)
    return tsne.fit_transform(z), idx


def plot_latents(
    z: np.ndarray,
    labels: np.ndarray,
    path: PathLike,
    title: str = "",
    method: str = "pca",
    predictions: Mapping[str, np.ndarray] | None = None,
    max_points: int = 5000,
    seed: int = 0,
) -> None:
    """Latent scatter coloured by true class, plus one panel per predicted clustering.

    ``predictions`` maps a panel title (e.g. ``"vae+gmm"``) to cluster ids for the same
    points as ``z``. Unlabelled points (label -1) are grey.
    """
    labels = np.asarray(labels).ravel()
    predictions = dict(predictions or {})
    for name, pred in predictions.items():
        if len(pred) != len(z):
            raise ValueError(f"predictions {name!r} have {len(pred)} entries for {len(z)} points")
    if len(labels) != len(z):
        raise ValueError(f"{len(labels)} labels for {len(z)} points")
    pts, idx = project_2d(z, method=method, max_points=max_points, seed=seed)
    panels = [("true class", labels[idx])]
    panels += [(name, np.asarray(p).ravel()[idx]) for name, p in predictions.items()]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2), squeeze=False)
    d = np.asarray(z).reshape(len(z), -1).shape[1]
    axis = "z" if d <= 2 else method.upper()
    for ax, (name, lab) in zip(axes[0], panels, strict=True):
        _scatter_labelled(ax, pts, lab)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(f"{axis} 1", fontsize=8)
        ax.set_ylabel(f"{axis} 2", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(title)
    set_margins(fig, left=0.75, right=0.15, bottom=0.5, top=0.65, wspace=0.75)
    save_figure(fig, path)


# --- confusion ------------------------------------------------------------------------

def plot_confusion(y_true: np.ndarray, y_pred: np.ndarray, path: PathLike, title: str = "") -> None:
    """Class x cluster counts, clusters reordered by the Hungarian matching.

    Unlabelled points (label -1) are left out; colours are row-normalised.
    """
    from vaemix.metrics import confusion

    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    keep = y_true != UNLABELLED
    if not keep.any():
        raise ValueError("no labelled points to build a confusion matrix from")
    table = confusion(y_true[keep], y_pred[keep])
    classes = np.unique(y_true[keep])
    frac = table / np.maximum(table.sum(axis=1, keepdims=True), 1)
    n_rows, n_cols = table.shape
    fig, ax = plt.subplots(figsize=(max(3.5, 0.35 * n_cols + 1.5), max(3.0, 0.35 * n_rows + 1)))
    im = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto",
                   interpolation="nearest")
    if n_rows <= 20 and n_cols <= 30:
        for i in range(n_rows):
            for j in range(n_cols):
                if table[i, j]:
                    ax.text(j, i, str(int(table[i, j])), ha="center", va="center", fontsize=5,
                            color="white" if frac[i, j] > 0.5 else "black")
    ax.set_yticks(range(n_rows), [str(int(c)) for c in classes], fontsize=6)
    ax.set_xticks(range(n_cols), [str(j) for j in range(n_cols)], fontsize=6)
    ax.set_ylabel("true class")
    ax.set_xlabel("cluster (matched order)")
    set_margins(fig, left=0.65, right=0.75, bottom=0.55, top=0.35)
    cax = fig.add_axes((1 - 0.65 / fig.get_figwidth(), ax.get_position().y0,
                        0.12 / fig.get_figwidth(), ax.get_position().height))
    fig.colorbar(im, cax=cax, label="fraction of class")
    ax.set_title(title, fontsize=9)
    save_figure(fig, path)


# --- training curves ------------------------------------------------------------------

def read_curves(curves_dir: PathLike) -> dict[str, pd.DataFrame]:
    """The dvclive series under ``<curves_dir>/plots/metrics`` as name -> (step, value).

    A series ``train/loss`` lives in ``plots/metrics/train/loss.tsv``; its value column is
    the last one that is neither ``step`` nor ``timestamp``. Sorted by name.
    """
    base = Path(curves_dir) / "plots" / "metrics"
    out: dict[str, pd.DataFrame] = {}
    if not base.is_dir():
        return out
    for tsv in sorted(base.rglob("*.tsv")):
        name = tsv.relative_to(base).with_suffix("").as_posix()
        try:
            df = pd.read_csv(tsv, sep="\t")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
            raise DataError(f"{tsv}: not a readable TSV ({err})") from None
        values = [c for c in df.columns if c not in ("step", "timestamp")]
        if not values or df.empty:
            continue
        step = df["step"] if "step" in df.columns else pd.Series(range(len(df)))
        out[name] = pd.DataFrame({"step": step.to_numpy(), "value": df[values[-1]].to_numpy()})
    return out


def plot_curves(curves_dir: PathLike, path: PathLike, title: str = "") -> None:
    """One panel per dvclive series found under ``curves_dir``."""
    curves = read_curves(curves_dir)
    if not curves:
        raise DataError(f"{curves_dir}: no training curves (plots/metrics/**/*.tsv)")
    n = len(curves)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.6 * rows), squeeze=False)
    for ax, (name, df) in zip(axes.ravel(), curves.items(), strict=False):
        ax.plot(df["step"], df["value"], marker="." if len(df) < 30 else None, lw=1.2)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[n:]:
        ax.set_axis_off()
    fig.suptitle(title)
    set_margins(fig, left=0.75, right=0.15, bottom=0.45, top=0.7, wspace=0.75, hspace=0.7)
    save_figure(fig, path)


# --- samples per cluster --------------------------------------------------------------

def plot_samples_per_cluster(
    samples: np.ndarray,
    path: PathLike,
    title: str = "",
    data: np.ndarray | None = None,
    max_per_cluster: int = 16,
) -> None:
    """Generated samples ``[K, n, ...]``, one row per cluster.

    Images: row k is a strip of cluster k's samples. 2-D points: the samples scattered,
    coloured by cluster, over ``data`` (grey) when given. Other vectors: one heat map
    per cluster.
    """
    samples = np.asarray(samples)
    if samples.ndim < 3:
        raise ValueError(f"expected samples [K, n, ...], got shape {samples.shape}")
    k, n = samples.shape[:2]
    flat = samples.reshape(k * n, *samples.shape[2:])
    imgs = as_images(flat)
    if imgs is not None:
        m = min(n, max_per_cluster)
        imgs = imgs.reshape(k, n, *imgs.shape[1:])[:, :m].reshape(k * m, *imgs.shape[1:])
        fig = _grid_figure(image_grid(imgs, nrow=m), [str(i) for i in range(k)], title,
                           "cluster")
    elif is_points_2d(flat):
        fig, ax = plt.subplots(figsize=(4.8, 4.5))
        if data is not None:
            data = np.asarray(data)
            ax.scatter(data[:, 0], data[:, 1], s=3, color=_GREY, linewidths=0, label="data",
                       rasterized=True)
        _scatter_labelled(ax, flat, np.repeat(np.arange(k), n), size=8.0)
        ax.set_aspect("equal", adjustable="datalim")
    else:
        fig, axes = plt.subplots(k, 1, figsize=(6, 1.0 * k + 0.5), squeeze=False)
        for i, ax in enumerate(axes[:, 0]):
            ax.imshow(samples[i].reshape(n, -1), aspect="auto", cmap="viridis",
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_ylabel(str(i), rotation=0, fontsize=7, labelpad=8)
    if imgs is None:
        fig.suptitle(title)
        if is_points_2d(flat):
            set_margins(fig, bottom=0.45, top=0.45)
        else:  # a heat map per cluster, no ticks
            set_margins(fig, left=0.45, right=0.15, bottom=0.2, top=0.55, hspace=0.1)
    save_figure(fig, path, tight=imgs is not None)  # an image grid is cropped to its labels


# --- summary bars ---------------------------------------------------------------------

_KIND_COLORS = {"encoder": "tab:gray", "baseline": "tab:blue", "start": "tab:olive",
                "mixture": "tab:orange", "moe": "tab:green"}
_COLLAPSED = "0.82"  # the fill of a collapsed run's bar (hatched, labelled, never a result)


def _is_true(value: Any) -> bool:
    return isinstance(value, bool | np.bool_) and bool(value)


def plot_run_bars(
    runs: pd.DataFrame, metrics: tuple[str, ...], path: PathLike, title: str = ""
) -> None:
    """One panel per metric, a horizontal bar per run, sorted by the first metric (best on
    top; collapsed runs last).

    ``runs`` has ``method``, ``kind`` and the metric columns, optionally ``<metric>_std``
    (drawn as error bars), ``collapsed`` (bool) and ``note`` (text beside the bar, e.g.
    "effective K 7"). A collapsed run is drawn hatched in grey and labelled with its note
    instead of its value: it is not a result.
    """
    runs = runs.copy()
    runs["_collapsed"] = [_is_true(v) for v in runs.get("collapsed", [False] * len(runs))]
    key = pd.to_numeric(runs[metrics[0]], errors="coerce") if len(runs) else pd.Series()
    runs = runs.assign(_key=key.fillna(-1.0)).sort_values(
        ["_collapsed", "_key"], ascending=[True, False], kind="mergesort")
    n = max(len(runs), 1)
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.9 * len(metrics) + 1.6, 0.3 * n + 1.3),
                             sharey=True, squeeze=False)
    y = np.arange(len(runs))[::-1]  # the first row on top
    notes = runs["note"].fillna("").astype(str) if "note" in runs else pd.Series([""] * len(runs))
    for ax, metric in zip(axes[0], metrics, strict=True):
        values = pd.to_numeric(runs.get(metric, pd.Series(np.nan, index=runs.index)),
                               errors="coerce").to_numpy(dtype=float)
        std = pd.to_numeric(runs.get(f"{metric}_std", pd.Series(np.nan, index=runs.index)),
                            errors="coerce").to_numpy(dtype=float)
        down = runs["_collapsed"].to_numpy(dtype=bool)
        colors = [_COLLAPSED if c else _KIND_COLORS.get(str(k), "tab:purple")
                  for c, k in zip(down, runs["kind"], strict=True)]
        shown = np.nan_to_num(values)
        bars = ax.barh(y, shown, color=colors, height=0.7,
                       xerr=np.where(np.isnan(std) | down, 0.0, std), ecolor="0.3",
                       error_kw={"lw": 0.8, "capsize": 2})
        for bar, collapsed in zip(bars, down, strict=True):
            if collapsed:
                bar.set_hatch("////")
                bar.set_edgecolor("0.45")
        top = max(1.0, float(np.nanmax(values, initial=0.0)))
        ends = np.nan_to_num(values) + np.where(np.isnan(std) | down, 0.0, std)
        for yi, v, end, c, note in zip(y, values, ends, down, notes, strict=True):
            if c:
                text, style = note or "collapsed", "italic"
            elif np.isnan(v):
                text, style = "n/a", "normal"
            else:
                text, style = f"{v:.3f}" + (f"  ({note})" if note else ""), "normal"
            ax.text(end + 0.01 * top, yi, f" {text}", va="center", fontsize=7, style=style,
                    color="0.25" if c else "black")
        ax.set_xlim(0, top * 1.4)
        ax.set_xlabel(metric.upper(), fontsize=9)
        ax.set_title(metric.upper(), fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(y, [str(m) for m in runs["method"]], fontsize=8)
    axes[0][0].set_ylim(-0.7, len(runs) - 0.3)
    kinds = [k for k in _KIND_COLORS if k in set(runs["kind"].astype(str))]
    handles = [Patch(color=_KIND_COLORS[k], label=k) for k in kinds]
    if runs["_collapsed"].any():
        handles.append(Patch(facecolor=_COLLAPSED, edgecolor="0.45", hatch="////",
                             label="collapsed (not a result)"))
    if handles:  # the bars are sorted, so the lower right corner is free
        axes[0][-1].legend(handles=handles, loc="lower right", fontsize=7, framealpha=0.9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


_MARKERS = "osD^v<>ph*"


def plot_sweep(
    runs: pd.DataFrame, metrics: tuple[str, ...], path: PathLike, title: str = ""
) -> None:
    """The latent-dimension sweep: ``metric`` against the latent dim, one line per run.

    ``runs`` has ``run`` (the run without its ``_z<d>``, e.g. ``vae+gmm``), ``dim``,
    ``group`` (a panel column, e.g. "mixture models") and the metric columns, optionally
    ``collapsed`` (bool): a collapsed point is drawn as a grey cross, not a result.
    """
    groups = list(dict.fromkeys(runs["group"])) or [""]
    fig, axes = plt.subplots(len(metrics), len(groups), figsize=(5.2 * len(groups), 3.0 *
                             len(metrics) + 0.6), squeeze=False, sharex=True)
    dims = sorted({int(d) for d in runs["dim"]})
    any_collapsed = False
    for col, group in enumerate(groups):
        rows = runs[runs["group"] == group]
        names = list(dict.fromkeys(rows["run"]))
        palette = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
        for row_i, metric in enumerate(metrics):
            ax = axes[row_i][col]
            for i, name in enumerate(names):
                one = rows[rows["run"] == name].sort_values("dim")
                v = pd.to_numeric(one[metric], errors="coerce").to_numpy(dtype=float)
                if np.isnan(v).all():
                    continue
                d = one["dim"].to_numpy(dtype=float)
                down = np.array([_is_true(c) for c in one.get("collapsed",
                                                             [False] * len(one))])
                color = palette(i % palette.N)
                ax.plot(d, v, color=color, lw=1.2, alpha=0.35, zorder=1)
                ok = ~down & ~np.isnan(v)
                ax.plot(d[ok], v[ok], _MARKERS[i % len(_MARKERS)], color=color, ms=5,
                        label=name, lw=0, zorder=2)
                if down.any():
                    any_collapsed = True
                    ax.plot(d[down], v[down], "x", color="0.45", ms=8, mew=2, zorder=3)
            ax.set_xscale("log", base=2)
            ax.set_xticks(dims, [str(x) for x in dims])
            ax.set_xlim(dims[0] / 1.5, dims[-1] * 1.5)
            ax.minorticks_off()
            top = pd.to_numeric(rows[metric], errors="coerce").max()
            ax.set_ylim(0.0, max(1.0, float(top) if pd.notna(top) else 1.0) * 1.02)
            ax.set_ylabel(metric.upper(), fontsize=9)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            if row_i == 0:
                ax.set_title(str(group), fontsize=9)
            if row_i == len(metrics) - 1:
                ax.set_xlabel("latent dim", fontsize=8)
        handles, labels = axes[0][col].get_legend_handles_labels()
        if col == len(groups) - 1 and any_collapsed:
            handles.append(plt.Line2D([], [], marker="x", color="0.45", lw=0, ms=8, mew=2))
            labels.append("collapsed (not a result)")
        if handles:
            axes[0][col].legend(handles, labels, fontsize=6.5, frameon=False, loc="best",
                                ncol=1 if len(labels) <= 6 else 2)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)

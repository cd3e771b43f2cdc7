"""Atomic writes and the metrics files of the output contract.

Every file a stage writes goes through a temporary file in the same directory that is
renamed over the target only once it is complete, so that a crash never leaves a
half-written output that DVC would accept.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

METRICS_ROOT = Path("reports/metrics")

# A fixed timestamp for the members of .npz archives, so that the same arrays always
# give the same bytes (numpy's own savez stamps the current time).
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def _remove_stale(path: Path) -> None:
    """Remove temporaries of ``path`` left by a killed process (SIGKILL skips cleanup).

    Only one process writes a given output at a time (one DVC stage owns it), so any
    ``.<name>.*.tmp`` / ``.<name>.old`` beside it is a leftover. DVC ignores them anyway
    (``.dvcignore``); this keeps the workspace clean.
    """
    for stale in [*path.parent.glob(f".{path.name}.*.tmp"), path.with_name(f".{path.name}.old")]:
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        elif stale.exists():
            stale.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory next to ``path``; it replaces ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        return value.item()  # 0-d torch tensors
    return value


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as sorted, indented JSON (byte-identical for identical input)."""
    text = json.dumps(_jsonable(obj), indent=2, sort_keys=True, allow_nan=False) + "\n"
    write_text(path, text)


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """Save arrays as an uncompressed .npz whose bytes depend only on the arrays."""
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name in sorted(arrays):
                buf = io.BytesIO()
                np.lib.format.write_array(buf, np.asarray(arrays[name]), allow_pickle=False)
                info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
                info.external_attr = 0o644 << 16
                zf.writestr(info, buf.getvalue())


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def save_torch(path: str | os.PathLike, obj: Any) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 110, tight: bool = False) -> None:
    """Save a matplotlib figure atomically as PNG (no timestamp metadata) and close it.

    The figure is saved as laid out. ``tight`` crops it to what is drawn instead, at the
    cost of a second draw: matplotlib draws once to measure and once to save, and on a
    figure with many tick labels the two draws are most of the report stage's time.
    """
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight" if tight else None,
                    metadata={"Software": None})
    plt.close(fig)


def _check_finite(metrics: Mapping[str, Any], where: str) -> None:
    for key, value in metrics.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise FloatingPointError(f"metric '{key}' of {where} is {value}; refusing to write it")


def metrics_path(dataset: str, method: str, root: str | os.PathLike = METRICS_ROOT) -> Path:
    return Path(root) / dataset / f"{method}.json"


def write_metrics(
    dataset: str, method: str, metrics: Mapping[str, Any], root: str | os.PathLike = METRICS_ROOT
) -> Path:
    """Write one contract metrics file ``reports/metrics/<dataset>/<method>.json``.

    Values are converted to plain Python numbers; a NaN or infinite value raises instead
    of being written.
    """
    clean = _jsonable(dict(metrics))
    _check_finite(clean, f"{dataset}/{method}")
    path = metrics_path(dataset, method, root)
    write_json(path, clean)
    return path

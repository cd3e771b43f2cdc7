"""The summary table: every expected metrics file gathered into one frame.

:func:`expected_runs` lists the (dataset, method) pairs that ``params.yaml`` asks for;
:func:`collect` reads ``reports/metrics/<dataset>/<method>.json`` for each of them (files
of datasets or methods no longer in the params are stale and ignored) and
:func:`write_summary` writes ``reports/summary.csv`` and ``reports/summary.md``.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

from vaemix.config import Params
from vaemix.errors import DataError
from vaemix.io import METRICS_ROOT, metrics_path, write_text

# The metric keys of the output contract, in table order.
CONTRACT_KEYS = (
    "acc",
    "nmi",
    "ari",
    "completeness",
    "n_clusters_used",
    "test_recon_ll",
    "elbo",
    "test_mse",
    "train_seconds",
    "samples_per_second",
    "epochs",
    "seed",
)
INT_KEYS = ("n_clusters_used", "epochs", "seed", "n_seeds")
# Keys whose std over seeds is kept (``<key>_std`` columns; vaemix.seeds).
STD_KEYS = ("acc", "nmi", "ari", "completeness", "n_clusters_used", "test_recon_ll", "elbo",
            "test_mse", "train_seconds")
COLUMNS = ("dataset", "method", "kind", *CONTRACT_KEYS, "n_seeds",
           *(f"{k}_std" for k in STD_KEYS))
KINDS = ("encoder", "baseline", "mixture", "moe")


def moe_methods(params: Params, dataset: str) -> list[str]:
    """The MoE runs ``moe_<gate>_z<d>`` expected on ``dataset``: every gate of
    ``moe.gates`` at every latent dim of ``moe.latent_dims``, then every gate of
    ``moe.plain_gates`` once, with d = 0 (no latent space)."""
    moe = params.get("moe") or {}
    runs = [f"moe_{g}_z{d}" for g in moe.get("gates") or [] for d in moe.get("latent_dims") or []]
    return runs + [f"moe_{g}_z0" for g in moe.get("plain_gates") or []]


def sweep_methods(params: Params, dataset: str) -> list[str]:
    """The runs of the latent-dimension sweep on ``dataset`` (stages/sweep.py), per latent
    dim: the encoders, ``latent_sweep.runs``, the alternating network started from the
    GMVAE, and every baseline on every swept baseline encoder, each named ``<run>_z<d>``."""
    sweep = params.get("latent_sweep") or {}
    if dataset not in (sweep.get("datasets") or []):
        return []
    out = []
    for d in sweep.get("latent_dims") or []:
        out += [f"{e}_z{d}" for e in params["encoders"]]
        out += [f"{r}_z{d}" for r in sweep.get("runs") or []]
        if dataset in (sweep.get("from_gmvae") or []):
            out.append(f"gmvae_dpgmm_from_gmvae_z{d}")
        out += [f"{e}_z{d}+{b}" for e in sweep.get("baseline_encoders") or []
                for b in params["baselines"]]
    return out


def expected_runs(params: Params) -> list[tuple[str, str]]:
    """(dataset, method) pairs the params ask for, in a fixed order.

    Per dataset: the encoders, the mixture models, ``<encoder>+<baseline>`` for every
    baseline encoder and baseline, the MoE runs, then the latent-dimension sweep.
    """
    runs: list[tuple[str, str]] = []
    for ds in params["datasets"]:
        methods = [*params["encoders"], *params["methods"]]
        methods += [f"{enc}+{bl}" for enc in params["baseline_encoders"]
                    for bl in params["baselines"]]
        methods += moe_methods(params, ds)
        methods += sweep_methods(params, ds)
        runs += [(ds, m) for m in methods]
    return runs


def method_kind(method: str, params: Params) -> str:
    """``encoder``, ``baseline``, ``moe`` or ``mixture`` (sweep runs ``<run>_z<d>`` by
    their run)."""
    if method.startswith("moe_"):
        return "moe"
    if "+" in method:
        return "baseline"
    if re.sub(r"_z\d+$", "", method) in params["encoders"]:
        return "encoder"
    return "mixture"


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def read_metrics(path: str | os.PathLike) -> dict[str, Any]:
    """One metrics file as a dict; a missing or malformed file raises DataError naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: metrics file missing; run the stage that writes it")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object of metrics")
    return data


def collect(params: Params, root: str | os.PathLike = METRICS_ROOT) -> pd.DataFrame:
    """One row per expected (dataset, method): dataset, method, kind, contract keys (the
    mean over seeds), ``n_seeds`` and ``<key>_std`` (the std over seeds; NaN for one seed).

    Absent keys are NaN; the integer keys become nullable ``Int64`` columns when every
    present value is whole.
    """
    rows = []
    for ds, method in expected_runs(params):
        metrics = read_metrics(metrics_path(ds, method, root))
        row: dict[str, Any] = {"dataset": ds, "method": method,
                               "kind": method_kind(method, params)}
        row.update({k: _number(metrics.get(k)) for k in CONTRACT_KEYS})
        row["n_seeds"] = _number(metrics.get("n_seeds", 1))
        std = metrics.get("std") if isinstance(metrics.get("std"), dict) else {}
        row.update({f"{k}_std": _number(std.get(k)) for k in STD_KEYS})
        rows.append(row)
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    for key in COLUMNS[3:]:
        df[key] = df[key].astype("float64")
    for key in INT_KEYS:
        col = df[key]
        present = col.dropna()
        if (present == present.round()).all():
            df[key] = col.round().astype("Int64")
    return df


def _fmt(value: Any, key: str) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if key in INT_KEYS and float(value) == round(float(value)):
        return str(int(value))
    return f"{float(value):.3f}"


def _fmt_std(row: pd.Series, key: str) -> str:
    """``mean ± std`` when the run has a std over seeds, else the mean alone."""
    text = _fmt(row[key], key)
    std = row.get(f"{key}_std")
    if text and std is not None and not pd.isna(std):
        text += f" ± {float(std):.3f}"
    return text


def summary_markdown(df: pd.DataFrame) -> str:
    """A markdown table per dataset; numbers to 3 decimals (mean ± std over seeds), blank
    where absent."""
    header = ["method", "kind", *CONTRACT_KEYS, "n_seeds"]
    lines = ["# Summary", "",
             "Test-split metrics per (dataset, method), mean ± std over the seeds; blank = "
             "not defined for that method.", ""]
    for ds in dict.fromkeys(df["dataset"]):
        lines += [f"## {ds}", "", "| " + " | ".join(header) + " |",
                  "|" + "|".join(["---"] * 2 + ["---:"] * (len(CONTRACT_KEYS) + 1)) + "|"]
        for _, row in df[df["dataset"] == ds].iterrows():
            cells = [str(row["method"]), str(row["kind"])]
            cells += [_fmt_std(row, k) for k in CONTRACT_KEYS]
            cells.append(_fmt(row["n_seeds"], "n_seeds"))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def write_summary(df: pd.DataFrame, out_dir: str | os.PathLike = "reports") -> tuple[Path, Path]:
    """Write ``<out_dir>/summary.csv`` and ``<out_dir>/summary.md`` atomically."""
    out = Path(out_dir)
    csv_path, md_path = out / "summary.csv", out / "summary.md"
    write_text(csv_path, df.to_csv(index=False, lineterminator="\n"))
    write_text(md_path, summary_markdown(df))
    return csv_path, md_path

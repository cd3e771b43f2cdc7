"""The summary table: every expected metrics file gathered into one frame.

:func:`expected_runs` lists the (dataset, method) pairs that ``params.yaml`` asks for;
:func:`collect` reads ``reports/metrics/<dataset>/<method>.json`` for each of them (files
of datasets or methods no longer in the params are stale and ignored) and
:func:`write_summary` writes ``reports/summary.csv`` and ``reports/summary.md``.

Collapse. A clustering that uses fewer than ``ceil(collapse_fraction * K)`` of its K
clusters is collapsed (``collapsed`` in its metrics file, vaemix.metrics.mark_collapsed;
over seeds, collapsed when any seed is). Every table marks such a run, "collapsed: 1 of
10 clusters", and strikes its scores out instead of presenting them as a result
(:func:`cluster_note`, :func:`result_text`). Metrics files written before the flag get it
from ``n_clusters_used`` and K (:func:`collapse_of`). A run that learns its number of
clusters (its metrics file says ``learns_k``: the ``<encoder>+dpgmm`` baselines and the
methods whose class declares it, vaemix.models.base.Model.learns_k; :func:`learns_k`) is not
judged against K: it shows its effective K, and counts as collapsed only when it uses a
single cluster.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vaemix.config import Params
from vaemix.errors import DataError
from vaemix.io import METRICS_ROOT, metrics_path, write_text
from vaemix.metrics import min_clusters
from vaemix.protocols import moe_paper_run, other_start_run, paper_run
from vaemix.run_ids import RunId, run_name

# The metric keys of the output contract, in table order.
CONTRACT_KEYS = (
    "acc",
    "nmi",
    "ari",
    "train_acc",          # transductive: on the points the clustering was fitted on
    "train_nmi",
    "train_ari",
    "train_n_clusters_used",
    "completeness",
    "n_clusters_used",
    "test_recon_ll",
    "elbo",
    "test_mse",
    "train_seconds",
    "seconds_per_epoch",  # the fair comparison of two runs' time at unequal epochs
    "samples_per_second",
    "epochs",
    "seed",
)
INT_KEYS = ("n_clusters_used", "train_n_clusters_used", "epochs", "seed", "n_seeds")
# Keys whose std over seeds is kept (``<key>_std`` columns; vaemix.seeds).
STD_KEYS = ("acc", "nmi", "ari", "train_acc", "train_nmi", "train_ari", "completeness",
            "n_clusters_used", "test_recon_ll", "elbo", "test_mse", "train_seconds",
            "seconds_per_epoch")
# Whether a clustering collapsed, and what it is judged against (see the module docstring).
COLLAPSE_KEYS = ("n_clusters_expected", "n_seeds_collapsed", "n_components_effective")
# The mixture models' own clusters right after their start (AE copy, first clustering,
# warm-up; vaemix.runs), beside the end's, and what the start cost.
START_KEYS = ("start_acc", "start_nmi", "init_seconds")
# A paper run's metrics carry its paper's own score (vaemix.protocols.Published), quoted
# by the report beside ours: two numbers and two texts.
PUBLISHED_KEYS = ("published_acc", "published_nmi")
PUBLISHED_TEXT = ("published_on", "published_source")
COLUMNS = ("dataset", "method", "kind", "collapsed", "learns_k", *CONTRACT_KEYS, *START_KEYS,
           *COLLAPSE_KEYS, "n_seeds", *(f"{k}_std" for k in STD_KEYS), *PUBLISHED_KEYS,
           *PUBLISHED_TEXT)
KINDS = ("encoder", "baseline", "start", "mixture", "moe")
# Scores of a run's quality: struck out, never shown as a result, when the run collapsed.
RESULT_KEYS = ("acc", "nmi", "ari", "train_acc", "train_nmi", "train_ari", "completeness",
               "test_recon_ll", "elbo", "test_mse")
DEFAULT_COLLAPSE_FRACTION = 0.5  # params' collapse_fraction when the params lack it


def moe_methods(params: Params, dataset: str) -> list[str]:
    """The MoE runs ``moe_<gate>_z<d>`` expected on ``dataset``: every gate of
    ``moe.gates`` at every latent dim of ``moe.latent_dims``, then every gate of
    ``moe.plain_gates`` once, with d = 0 (no latent space); then the paper-protocol runs
    ``moe_<gate>_paper_z<d>`` of ``moe.paper_gates`` and ``moe.paper_plain_gates``."""
    moe = params.get("moe") or {}
    dims = moe.get("latent_dims") or []
    runs = [RunId.moe(g, d) for g in moe.get("gates") or [] for d in dims]
    runs += [RunId.moe(g, 0) for g in moe.get("plain_gates") or []]
    runs += [RunId.moe(moe_paper_run(g), d) for g in moe.get("paper_gates") or [] for d in dims]
    runs += [RunId.moe(moe_paper_run(g), 0) for g in moe.get("paper_plain_gates") or []]
    return [r.name for r in runs]


def sweep_methods(params: Params, dataset: str) -> list[str]:
    """The runs of the latent-dimension sweep on ``dataset`` (stages/sweep.py), per latent
    dim: ``latent_sweep.encoders``, ``latent_sweep.runs``, the alternating network started from the
    GMVAE, and every baseline on every swept baseline encoder, each named ``<run>_z<d>``.
    The sweep runs on every dataset of ``datasets``."""
    sweep = params.get("latent_sweep") or {}
    if dataset not in params["datasets"]:
        return []
    out = []
    for d in sweep.get("latent_dims") or []:
        out += [run_name(e, d) for e in sweep.get("encoders") or []]
        out += [run_name(r, d) for r in sweep.get("runs") or []]
        out += [run_name(f"{m}_from_gmvae", d) for m in sweep.get("from_gmvae") or []]
        out += [run_name(e, d, b) for e in sweep.get("baseline_encoders") or []
                for b in params["baselines"]]
    return out


def expected_runs(params: Params) -> list[tuple[str, str]]:
    """(dataset, method) pairs the params ask for, in a fixed order.

    Per dataset: the encoders, the start (vaemix.start), the mixture models under vaemix's
    protocol and then under their papers' (``<method>_paper``, vaemix.protocols),
    ``<encoder>+<baseline>`` for every
    baseline encoder and baseline, the MoE runs, then the latent-dimension sweep.
    """
    runs: list[tuple[str, str]] = []
    for ds in params["datasets"]:
        # start: the partition the mixture models start from (vaemix.start)
        methods = [*params["encoders"], *(["start"] if params["methods"] else []),
                   *params["methods"],
                   *(paper_run(m) for m in params["methods"]),
                   *(other_start_run(m) for m in params.get("paper_starts") or [])]
        methods += [run_name(enc, baseline=bl) for enc in params["baseline_encoders"]
                    for bl in params["baselines"]]
        methods += moe_methods(params, ds)
        methods += sweep_methods(params, ds)
        runs += [(ds, m) for m in methods]
    return runs


def method_kind(method: str, params: Params) -> str:
    """``encoder``, ``baseline``, ``start`` (vaemix.start), ``moe`` or ``mixture`` (sweep
    runs ``<run>_z<d>`` by their run)."""
    if method == "start":
        return "start"
    run = RunId.parse(method)
    if run.is_moe:
        return "moe"
    if run.baseline:
        return "baseline"
    if run.base in params["encoders"]:
        return "encoder"
    return "mixture"


def learns_k(record: Any) -> bool:
    """True for a clustering that learns its number of clusters (a DP-GMM), as its metrics
    file (or a summary row, a Series or dict) records it: ``learns_k`` true."""
    flag = record.get("learns_k")
    return flag is True or (isinstance(flag, bool | np.bool_) and bool(flag))


def collapse_fraction(params: Params) -> float:
    return float(params.get("collapse_fraction", DEFAULT_COLLAPSE_FRACTION))


def n_clusters_of(params: Params, dataset: str) -> int | None:
    """K of ``dataset`` (``model.<dataset>.n_clusters``), None when the params lack it."""
    k = ((params.get("model") or {}).get(dataset) or {}).get("n_clusters")
    return int(k) if isinstance(k, int | float) and not isinstance(k, bool) else None


def collapse_of(
    metrics: dict[str, Any], method: str, n_clusters: int | None, fraction: float
) -> tuple[bool | None, int | None]:
    """(collapsed, number of seeds collapsed) of one metrics file; (None, None) for a run
    that is not a clustering or whose collapse cannot be judged (no K).

    The file's own ``collapsed`` is used when present; files written before it get the
    flag from each seed's ``n_clusters_used`` (``per_seed``) or the run's. A run that
    learns K (:func:`learns_k`) is collapsed only where it uses a single cluster.
    """
    per_seed = metrics.get("per_seed") if isinstance(metrics.get("per_seed"), dict) else {}
    used = [_number(s.get("n_clusters_used")) for s in per_seed.values() if isinstance(s, dict)]
    used = [u for u in used if not math.isnan(u)] or [_number(metrics.get("n_clusters_used"))]
    used = [u for u in used if not math.isnan(u)]
    k = expected_clusters(metrics, n_clusters)
    flag, judged_on = metrics.get("collapsed"), _number(metrics.get("n_clusters_expected"))
    if (not learns_k(metrics) and isinstance(flag, bool)
            and (math.isnan(judged_on) or judged_on == k)):  # not a MoE judged on K
        n = _number(metrics.get("n_seeds_collapsed"))
        return flag, int(flag) if math.isnan(n) else int(n)
    if not used or (k is None and not learns_k(metrics)):
        return None, None
    least = 2 if learns_k(metrics) else min_clusters(int(k), fraction)
    n = sum(u < least for u in used)
    return n > 0, n


def expected_clusters(metrics: dict[str, Any], n_clusters: int | None) -> float | None:
    """K a run is judged against: a mixture of experts' ``n_experts``, else the file's
    ``n_clusters_expected``, else ``n_clusters`` (the dataset's K); None when unknown."""
    for key in ("n_experts", "n_clusters_expected"):
        k = _number(metrics.get(key))
        if not math.isnan(k):
            return k
    return None if n_clusters is None else float(n_clusters)


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def _float(value: float | None) -> float:
    return math.nan if value is None else float(value)


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
        row.update({k: _number(metrics.get(k)) for k in COLLAPSE_KEYS})
        row.update({k: _number(metrics.get(k)) for k in START_KEYS})
        k = n_clusters_of(params, ds)
        row["learns_k"] = learns_k(metrics)
        if not row["learns_k"]:
            row["n_clusters_expected"] = _float(expected_clusters(metrics, k))
        collapsed, n_collapsed = collapse_of(metrics, method, k, collapse_fraction(params))
        row["collapsed"] = pd.NA if collapsed is None else collapsed
        row["n_seeds_collapsed"] = math.nan if n_collapsed is None else float(n_collapsed)
        row["n_seeds"] = _number(metrics.get("n_seeds", 1))
        std = metrics.get("std") if isinstance(metrics.get("std"), dict) else {}
        row.update({f"{k}_std": _number(std.get(k)) for k in STD_KEYS})
        row.update({k: _number(metrics.get(k)) for k in PUBLISHED_KEYS})
        row.update({k: metrics.get(k) if isinstance(metrics.get(k), str) else None
                    for k in PUBLISHED_TEXT})
        rows.append(row)
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    for key in COLUMNS[5 : len(COLUMNS) - len(PUBLISHED_TEXT)]:
        df[key] = df[key].astype("float64")
    df["learns_k"] = df["learns_k"].astype(bool)
    df["collapsed"] = df["collapsed"].astype("boolean")
    for key in (*INT_KEYS, *COLLAPSE_KEYS):
        col = df[key]
        present = col.dropna()
        if (present == present.round()).all():
            df[key] = col.round().astype("Int64")
    return df


def fill_collapse(df: pd.DataFrame, params: Params) -> pd.DataFrame:
    """A summary frame (e.g. ``reports/summary.csv`` read back) with the collapse columns,
    filled where absent from ``n_clusters_used`` and K, as :func:`collapse_of` does for a
    metrics file (summaries written before the flag have no such columns)."""
    df = df.copy()
    for key in ("collapsed", "n_clusters_used", *COLLAPSE_KEYS, "n_seeds"):
        if key not in df.columns:
            df[key] = pd.NA if key == "collapsed" else math.nan
    if "learns_k" not in df.columns:
        df["learns_k"] = False
    flags = []
    for _, row in df.iterrows():
        flag = row["collapsed"]
        if isinstance(flag, str):  # a CSV column with blanks reads back as text
            flag = {"true": True, "false": False}.get(flag.strip().lower(), pd.NA)
        if pd.isna(flag):
            metrics = {k: row[k] for k in ("n_clusters_used", "n_clusters_expected")
                       if k in row and not pd.isna(row[k])}
            metrics["learns_k"] = learns_k(row)
            flag, _ = collapse_of(metrics, str(row["method"]),
                                  n_clusters_of(params, str(row["dataset"])),
                                  collapse_fraction(params))
        flags.append(pd.NA if flag is None or flag is pd.NA else bool(flag))
    df["collapsed"] = pd.array(flags, dtype="boolean")
    k = df["dataset"].astype(str).map(lambda ds: _float(n_clusters_of(params, ds)))
    fill = (df["n_clusters_expected"].isna() & df["n_clusters_used"].notna()
            & ~df.apply(learns_k, axis=1).astype(bool))
    df.loc[fill, "n_clusters_expected"] = k[fill]
    return df


def is_collapsed(row: Any) -> bool:
    """Whether a summary row (a Series or dict) is a collapsed run."""
    flag = row.get("collapsed")
    return flag is True or (isinstance(flag, bool | np.bool_) and bool(flag))


def _count(value: Any) -> str:
    value = float(value)
    return str(int(value)) if value == round(value) else f"{value:.1f}"


def cluster_note(row: Any) -> str:
    """How many clusters a summary row uses, for the tables: ``collapsed: 1 of 10
    clusters`` (``collapsed in 1 of 3 seeds: 4.7 of 10 clusters`` when some seeds held;
    the count is the mean over seeds), ``effective K 7`` for a run that learns K, ``9 of
    10`` otherwise; empty for a run that is not a clustering."""
    used, k = row.get("n_clusters_used"), row.get("n_clusters_expected")
    if used is None or pd.isna(used):
        return "collapsed" if is_collapsed(row) else ""
    of = "" if learns_k(row) or k is None or pd.isna(k) else f" of {_count(k)}"
    if is_collapsed(row):
        n, seeds = row.get("n_seeds_collapsed"), row.get("n_seeds")
        some = (n is not None and seeds is not None and not pd.isna(n) and not pd.isna(seeds)
                and 0 < float(n) < float(seeds))
        where = f" in {_count(n)} of {_count(seeds)} seeds" if some else ""
        noun = "cluster" if float(used) == 1 and not of else "clusters"
        return f"collapsed{where}: {_count(used)}{of} {noun}"
    if learns_k(row):
        eff = row.get("n_components_effective")
        eff = used if eff is None or pd.isna(eff) else eff
        return f"effective K {_count(eff)}"
    return f"{_count(used)}{of}"


def result_text(text: str, collapsed: bool) -> str:
    """A score as shown in a table: struck out (``~~0.115~~``) for a collapsed run."""
    return f"~~{text}~~" if collapsed and text else text


def _fmt(value: Any, key: str) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if key in (*INT_KEYS, *COLLAPSE_KEYS) and float(value) == round(float(value)):
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
    where absent. The ``clusters`` column says how many clusters a run uses
    (:func:`cluster_note`); a collapsed run's scores are struck out."""
    header = ["method", "kind", "clusters", "start_acc", *CONTRACT_KEYS, "n_seeds"]
    lines = ["# Summary", "",
             "Test-split metrics per (dataset, method), mean ± std over the seeds, and "
             "train_acc / train_nmi / train_ari, the same scores on the training points the "
             "clustering was fitted on (transductive, as deep clustering papers report); "
             "<method>_paper is the method as its paper trains it; blank = "
             "not defined for that method. A run marked **collapsed** uses too few of its "
             "clusters; its scores are struck out: they are not a result. start_acc is a "
             "mixture model's test ACC right after its start (before its own training).", ""]
    for ds in dict.fromkeys(df["dataset"]):
        lines += [f"## {ds}", "", "| " + " | ".join(header) + " |",
                  "|" + "|".join(["---"] * 3 + ["---:"] * (len(CONTRACT_KEYS) + 2)) + "|"]
        for _, row in df[df["dataset"] == ds].iterrows():
            collapsed = is_collapsed(row)
            note = cluster_note(row)
            cells = [str(row["method"]), str(row["kind"]), f"**{note}**" if collapsed else note,
                     _fmt(row.get("start_acc"), "start_acc")]
            cells += [result_text(_fmt_std(row, k), collapsed and k in RESULT_KEYS)
                      for k in CONTRACT_KEYS]
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

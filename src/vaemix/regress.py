"""Metric regression checks: the CI gate and the user's comparison with a git revision.

Both compare two sets of metrics files, ``{path: {metric: value}}``, with the per-metric
tolerances of ``tolerances.yaml``: a metric *moved* when
``|new - old| > abs + rel * |old|``; the direction it moved in is *better* or *worse* by
the metric's ``better`` (higher | lower). Timing keys (``train_seconds``,
``samples_per_second``) are never compared: they measure the machine, not the method.

Commands (run from the repository root)::

    python -m vaemix.regress diff [REV]     # workspace metrics vs REV (default HEAD), via
                                            # `dvc metrics diff --json --all REV`; exit 1 on
                                            # a regression (worse, or a file/metric missing)
    python -m vaemix.regress check --reference FILE [--metrics DIR] [--spread FILE]
                                            # DIR vs a committed reference; exit 1 when
                                            # anything moved (either way) or is missing;
                                            # with --spread, each metric may move by k x
                                            # its std over the spread file's runs
    python -m vaemix.regress update --reference FILE [--metrics DIR]
                                            # write DIR's metrics as the new reference

CI's gate is ``check`` against ``tests/reference/tiny_metrics.json`` on the metrics of the
end-to-end test's real ``dvc repro`` (tests/test_pipeline_e2e.py), with the tolerances set
by the spread of ``tests/reference/tiny_spread.json``: the same DAG over several seeds, on
portable and on the CPU's own kernels. A metric may move by
``max(abs + rel * |old|, k * std)``; one whose std passes its ``noise`` bound in
tolerances.yaml is noise by construction and is reported, not gated. ``bash
scripts/update_reference.sh`` remakes both files on purpose (scripts/gate_reference.py).
Metrics files that the reference lacks are reported as *new* and do not fail the gate;
reference files or metrics missing from the run do.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vaemix.io import write_json

TOLERANCES = Path("tolerances.yaml")
METRICS_ROOT = Path("reports/metrics")
Metrics = dict[str, dict[str, float]]

# The environment variables of scripts/portable_numerics.sh: which CPU kernels torch, MKL,
# oneDNN, OpenBLAS, NumPy and numba use (recorded with a reference, dropped for a run on
# the CPU's own kernels).
PINS = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA", "OPENBLAS_CORETYPE",
        "NUMBA_CPU_NAME", "NPY_DISABLE_CPU_FEATURES")
THREADS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")

FAIL_STRICT = ("moved", "worse", "better", "missing")  # the CI gate: any move past tolerance
FAIL_REGRESSION = ("moved", "worse", "missing")  # the user's diff: moves for the worse


@dataclass(frozen=True)
class Tolerance:
    abs: float = 0.0
    rel: float = 0.0
    better: str | None = None  # "higher", "lower" or None (no direction)
    # a metric whose measured spread (std over seeds and kernels) exceeds
    # noise_abs + noise_rel * |reference| is noise by construction: reported, not gated
    noise_abs: float | None = None
    noise_rel: float = 0.0

    def allowed(self, old: float) -> float:
        return self.abs + self.rel * abs(old)

    def is_noise(self, old: float, std: float) -> bool:
        return self.noise_abs is not None and std > self.noise_abs + self.noise_rel * abs(old)


@dataclass(frozen=True)
class Tolerances:
    default: Tolerance
    per_metric: Mapping[str, Tolerance]
    ignore: frozenset[str]
    spread_k: float = 4.0  # with a measured spread: allowed = max(abs + rel |old|, k * std)

    def of(self, metric: str) -> Tolerance:
        """The tolerance of ``metric``; a nested one (``per_seed.1.acc``) by its last part."""
        return self.per_metric.get(metric.rsplit(".", 1)[-1], self.default)

    def ignores(self, metric: str) -> bool:
        """Timing keys, at any depth, and the std over seeds (derived from the seeds')."""
        return metric.rsplit(".", 1)[-1] in self.ignore or metric.startswith("std.")


def _non_negative(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
        raise ValueError(f"{where}: expected a non-negative number, got {v!r}")
    return float(v)


def _tolerance(entry: Any, where: str, base: Tolerance | None = None) -> Tolerance:
    if not isinstance(entry, Mapping) or set(entry) - {"abs", "rel", "better", "noise"}:
        raise ValueError(f"{where}: expected a mapping with abs, rel, better and/or noise")
    base = base or Tolerance()
    values = {key: _non_negative(entry.get(key, getattr(base, key)), f"{where}.{key}")
              for key in ("abs", "rel")}
    better = entry.get("better", base.better)
    if better not in (None, "higher", "lower"):
        raise ValueError(f"{where}.better: expected higher, lower or null, got {better!r}")
    noise = entry.get("noise")
    if noise is None:
        return Tolerance(values["abs"], values["rel"], better, base.noise_abs, base.noise_rel)
    if not isinstance(noise, Mapping) or set(noise) - {"abs", "rel"}:
        raise ValueError(f"{where}.noise: expected a mapping with abs and/or rel")
    return Tolerance(values["abs"], values["rel"], better,
                     _non_negative(noise.get("abs", 0.0), f"{where}.noise.abs"),
                     _non_negative(noise.get("rel", 0.0), f"{where}.noise.rel"))


def load_tolerances(path: str | os.PathLike = TOLERANCES) -> Tolerances:
    """Read the tolerance file (see ``tolerances.yaml`` for its layout)."""
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    default = _tolerance(raw.get("default", {}), f"{path}: default")
    per_metric = {
        str(name): _tolerance(entry, f"{path}: metrics.{name}")
        for name, entry in (raw.get("metrics") or {}).items()
    }
    spread = raw.get("spread") or {}
    if not isinstance(spread, Mapping) or set(spread) - {"k"}:
        raise ValueError(f"{path}: spread: expected a mapping with k")
    k = _non_negative(spread.get("k", Tolerances.spread_k), f"{path}: spread.k")
    return Tolerances(default, per_metric, frozenset(raw.get("ignore") or ()), k)


def _numbers(obj: Mapping[str, Any], ignore: frozenset[str]) -> dict[str, float]:
    return {
        k: float(v) for k, v in obj.items()
        if k not in ignore and isinstance(v, int | float) and not isinstance(v, bool)
    }


def collect(root: str | os.PathLike, ignore: frozenset[str]) -> Metrics:
    """Every ``*.json`` under ``root`` as ``{relative path: {metric: number}}``."""
    root = Path(root)
    return {
        p.relative_to(root).as_posix(): _numbers(json.loads(p.read_text()), ignore)
        for p in sorted(root.rglob("*.json"))
    }


@dataclass(frozen=True)
class Row:
    path: str
    metric: str
    old: float | None
    new: float | None
    allowed: float | None
    status: str  # ok | moved | better | worse | new | missing | noise (not gated)

    @property
    def change(self) -> float | None:
        return None if self.old is None or self.new is None else self.new - self.old


def _status(old: float, new: float, tol: Tolerance, allowed: float) -> str:
    if old == new or (math.isnan(old) and math.isnan(new)):
        return "ok"
    if not (math.isfinite(old) and math.isfinite(new)):
        return "worse" if tol.better else "moved"
    if abs(new - old) <= allowed:
        return "ok"
    if tol.better is None:
        return "moved"
    up = new > old
    return "better" if up == (tol.better == "higher") else "worse"


def spread(runs: Mapping[str, Metrics]) -> Metrics:
    """The standard deviation (ddof 1) of each (file, metric) over the runs that hold it
    (at least two): the measured noise of a metric, across seeds and CPU kernels."""
    values: dict[tuple[str, str], list[float]] = {}
    for metrics in runs.values():
        for path, ms in metrics.items():
            for metric, v in ms.items():
                if math.isfinite(v):
                    values.setdefault((path, metric), []).append(v)
    out: Metrics = {}
    for (path, metric), vs in values.items():
        if len(vs) >= 2:
            mean = sum(vs) / len(vs)
            var = sum((v - mean) ** 2 for v in vs) / (len(vs) - 1)
            out.setdefault(path, {})[metric] = math.sqrt(var)
    return out


def _allowed(tolerances: Tolerances, tol: Tolerance, old: float,
             std: float | None) -> float | None:
    """What a metric may move by: its floor, or k times its measured spread; None when
    the spread says the metric is noise (not gated)."""
    if std is None:
        return tol.allowed(old)
    if tol.is_noise(old, std):
        return None
    return max(tol.allowed(old), tolerances.spread_k * std)


def compare(old: Metrics, new: Metrics, tolerances: Tolerances,
            noise: Metrics | None = None) -> list[Row]:
    """One row per (file, metric) in either set, sorted by path and metric. With ``noise``
    (:func:`spread` of repeated runs), a measured metric may move by k times its spread."""
    rows = []
    for path in sorted(set(old) | set(new)):
        before, after = old.get(path, {}), new.get(path, {})
        for metric in sorted(set(before) | set(after)):
            if metric in tolerances.ignore:
                continue
            a, b = before.get(metric), after.get(metric)
            tol = tolerances.of(metric)
            if a is None:
                rows.append(Row(path, metric, None, b, None, "new"))
            elif b is None:
                rows.append(Row(path, metric, a, None, tol.allowed(a), "missing"))
            else:
                std = (noise or {}).get(path, {}).get(metric)
                allowed = _allowed(tolerances, tol, a, std)
                status = "noise" if allowed is None else _status(a, b, tol, allowed)
                rows.append(Row(path, metric, a, b, allowed, status))
    return rows


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.5g}"


def markdown(rows: list[Row], old_label: str = "HEAD", new_label: str = "workspace") -> str:
    """A table in the style of ``dvc metrics diff --md``, with the tolerance and verdict."""
    lines = [
        f"| Path | Metric | {old_label} | {new_label} | Change | Allowed | Status |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        change = "-" if r.change is None else f"{r.change:+.5g}"
        allowed = "-" if r.allowed is None else f"±{r.allowed:.3g}"
        lines.append(f"| {r.path} | {r.metric} | {_fmt(r.old)} | {_fmt(r.new)} | {change} "
                     f"| {allowed} | {r.status} |")
    return "\n".join(lines)


def report(rows: list[Row], fail_on: tuple[str, ...], old_label: str, new_label: str) -> str:
    """The verdict and the table of what is not ``ok`` (moved, new or missing)."""
    shown = [r for r in rows if r.status not in ("ok", "noise")]
    failed = [r for r in rows if r.status in fail_on]
    n_files = len({r.path for r in rows})
    head = (f"{len(failed)} regression(s)" if failed else "no regression") + (
        f" in {len(rows)} metrics of {n_files} files "
        f"({sum(r.status == 'new' for r in rows)} new, "
        f"{sum(r.status in ('moved', 'better', 'worse') for r in rows)} moved past tolerance, "
        f"{sum(r.status == 'missing' for r in rows)} missing"
        + (f", {n_noise} not gated: noise by their measured spread)" if (
            n_noise := sum(r.status == "noise" for r in rows)) else ")")
    )
    return head if not shown else head + "\n\n" + markdown(shown, old_label, new_label)


def update_reference(metrics_root: str | os.PathLike, reference: str | os.PathLike,
                     tolerances: Tolerances) -> Metrics:
    """Write the metrics under ``metrics_root`` (timing keys dropped) as the reference,
    with the machine that made them."""
    current = collect(metrics_root, tolerances.ignore)
    write_json(reference, {"made_on": machine(), "metrics": current})
    return current


def load_reference(path: str | os.PathLike) -> tuple[Metrics, dict[str, Any]]:
    """A reference's metrics and the machine that made them ({} for a bare metrics file)."""
    raw = json.loads(Path(path).read_text())
    if "metrics" in raw and "made_on" in raw:
        return raw["metrics"], raw["made_on"]
    return raw, {}


def load_spread(path: str | os.PathLike) -> Metrics:
    """The per-metric spread of a spread file's runs (scripts/gate_reference.py)."""
    return spread(json.loads(Path(path).read_text())["runs"])


def machine() -> dict[str, Any]:
    """The CPU this process runs on and the kernel pins and thread counts in force."""
    info: dict[str, Any] = {"machine": platform.machine()}
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        fields = dict(line.split(":", 1) for line in cpuinfo.read_text().splitlines()
                      if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        flags = set(fields.get("flags", "").split())
        info.update(cpu=fields.get("model name", "?"), vendor=fields.get("vendor_id", "?"),
                    avx512=("avx512f" in flags), amx=("amx_tile" in flags))
    info["pins"] = {k: os.environ[k] for k in PINS if k in os.environ}
    info["threads"] = {k: os.environ[k] for k in THREADS if k in os.environ}
    return info


def describe(info: Mapping[str, Any], kernels: bool = True) -> str:
    """One line: the CPU and (``kernels``) whether its kernels were pinned."""
    isa = ", AVX-512" if info.get("avx512") else ""
    isa += ", AMX" if info.get("amx") else ""
    cpu = f"{info.get('cpu', '?')} ({info.get('vendor', '?')}{isa})"
    if not kernels:
        return cpu
    pinned = info.get("pins", {}).get("MKL_CBWR")
    return f"{cpu}, {'portable' if pinned else 'native'} kernels"


# --- the revision diff (through DVC) ----------------------------------------------------

def dvc_metrics_at(rev: str, cwd: str | os.PathLike = ".") -> tuple[Metrics, Metrics]:
    """(metrics at ``rev``, metrics in the workspace), from ``dvc metrics diff --json --all``.

    Paths are relative to ``reports/metrics`` when they lie under it.
    """
    cmd = [sys.executable, "-m", "dvc", "metrics", "diff", "--json", "--all", rev]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"dvc metrics diff {rev} failed: {detail}")
    diff = json.loads(proc.stdout or "{}")
    old: Metrics = {}
    new: Metrics = {}
    prefix = METRICS_ROOT.as_posix() + "/"
    for path, metrics in diff.items():
        name = path[len(prefix):] if path.startswith(prefix) else path
        for metric, d in metrics.items():
            for side, store in (("old", old), ("new", new)):
                v = d.get(side)
                if isinstance(v, int | float) and not isinstance(v, bool):
                    store.setdefault(name, {})[metric] = float(v)
    return old, new


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vaemix.regress", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--tolerances", default=str(TOLERANCES), help="the tolerance file")
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("diff", parents=[common], help="workspace metrics vs a git revision")
    d.add_argument("rev", nargs="?", default="HEAD")
    d.add_argument("--strict", action="store_true",
                   help="fail on any move past tolerance, improvements too")
    for name in ("check", "update"):
        c = sub.add_parser(name, parents=[common])
        c.add_argument("--reference", required=True)
        c.add_argument("--metrics", default=str(METRICS_ROOT))
        if name == "check":
            c.add_argument("--spread", help="runs whose spread sets the tolerances "
                                            "(tests/reference/tiny_spread.json)")
    args = parser.parse_args(argv)
    tolerances = load_tolerances(args.tolerances)

    if args.command == "update":
        written = update_reference(args.metrics, args.reference, tolerances)
        print(f"wrote {args.reference}: {len(written)} metrics files from {args.metrics}")
        return 0
    if args.command == "check":
        reference, made_on = load_reference(args.reference)
        if made_on:
            print(f"reference made on: {describe(made_on)}; this run: {describe(machine())}")
        noise = load_spread(args.spread) if args.spread else None
        rows = compare(reference, collect(args.metrics, tolerances.ignore), tolerances, noise)
        fail_on, labels = FAIL_STRICT, ("reference", "run")
    else:
        try:
            old, new = (
                {path: {k: v for k, v in m.items() if not tolerances.ignores(k)}
                 for path, m in side.items()}
                for side in dvc_metrics_at(args.rev))
        except RuntimeError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        rows = compare(old, new, tolerances)
        fail_on = FAIL_STRICT if args.strict else FAIL_REGRESSION
        labels = (args.rev, "workspace")
    print(report(rows, fail_on, *labels))
    return 1 if any(r.status in fail_on for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

"""Remake CI's regression-gate reference and the spread its tolerances come from.

Runs the gate's reference DAG (tests/test_pipeline_e2e.py, ``gate_params``: CI's `dvc repro`
plus the side runs that tests/test_gate_side_runs.py runs stage by stage) once per
training seed with the portable kernels of scripts/portable_numerics.sh, and once per
``--native-seeds`` seed with this CPU's own kernels (another CPU's rounding, as near as
one machine gets), ``--jobs`` at a time, each on one thread. Writes

- ``tests/reference/tiny_metrics.json``: the metrics of the portable seed-0 run (what CI
  runs) and the machine that made them;
- ``tests/reference/tiny_spread.json``: every run's metrics; the gate allows a metric to
  move by k times their standard deviation (tolerances.yaml, ``spread``).

With ``--add``, the reference and the runs already in the spread are kept and this
machine's runs join them, labelled with its CPU vendor (``seed0-portable-intel``): the
spread then holds the rounding of both CPU families CI may run on, measured rather than
guessed (the portable kernels alone do not give the same bits on an Intel Xeon and an AMD
EPYC: reports/benchmarks/regression_gate.md).

With ``--refresh FILE...`` (metrics files relative to reports/metrics, e.g.
``mnist/gmvae_dpgmm_paper.json``), only the stages writing those files (and what they
need) run, once per seed and kernel kind of ``--seeds`` / ``--native-seeds``; those files
are replaced in the reference and in every spread run of the same seed and kind, dropped
from the runs not remade, and the change is logged under ``refreshed``: a change to one
method remakes its reference in minutes instead of the whole DAG's hour.

Usage (scripts/update_reference.sh sources the pins first):
    python scripts/gate_reference.py [--seeds 0 1 2 3] [--native-seeds 0 1] [--jobs 2]
    python scripts/gate_reference.py --add --seeds 0 --native-seeds 0
    python scripts/gate_reference.py --refresh mnist/gmvae_dpgmm_paper.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.test_pipeline_e2e import build_gate_project  # noqa: E402
from vaemix.io import write_json  # noqa: E402
from vaemix.regress import PINS, collect, load_tolerances, machine  # noqa: E402

REFERENCE = ROOT / "tests/reference/tiny_metrics.json"
SPREAD = ROOT / "tests/reference/tiny_spread.json"
REFERENCE_RUN = "seed0-portable"


def run_dag(folder: Path, seed: int, portable: bool, files: list[str] | None = None) -> dict:
    """One `dvc repro` of the gate's DAG (with ``files``, of the stages writing them and
    what they need); its metrics (just ``files``, if given), timing keys and seed dropped."""
    env = {k: v for k, v in os.environ.items() if portable or k not in PINS}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", NUMBA_NUM_THREADS="1",
               DVC_NO_ANALYTICS="1", PATH=f"{Path(sys.executable).parent}:{env['PATH']}")
    build_gate_project(folder, seeds=[seed])
    targets = [] if files is None else stages_writing(folder, files)
    start = time.time()
    proc = subprocess.run([sys.executable, "-m", "dvc", "repro", *targets], cwd=folder,
                          env=env, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{folder}: dvc repro failed\n{proc.stderr[-3000:]}")
    print(f"{folder.name}: {time.time() - start:.0f} s", flush=True)
    ignore = load_tolerances(ROOT / "tolerances.yaml").ignore | {"seed"}
    metrics = collect(folder / "reports/metrics", ignore)
    return metrics if files is None else {f: metrics[f] for f in files}


def stages_writing(folder: Path, files: list[str]) -> list[str]:
    """The names of the stages of the DVC project at ``folder`` whose outputs are the
    metrics ``files`` (relative to reports/metrics); a file no stage writes is an error."""
    from dvc.repo import Repo

    wanted = {f"reports/metrics/{f}": f for f in files}
    found: dict[str, str] = {}
    with Repo(str(folder)) as repo:
        for stage in repo.index.stages:
            for out in stage.outs:
                if str(out.def_path) in wanted:
                    found[wanted[str(out.def_path)]] = stage.addressing   # with its file
    missing = sorted(set(files) - set(found))
    if missing:
        sys.exit(f"error: --refresh: no stage of the gate's DAG writes {', '.join(missing)}")
    return sorted(set(found.values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--native-seeds", type=int, nargs="*", default=[0, 1])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--refresh", nargs="+", metavar="FILE",
                        help="remake only these metrics files (relative to reports/metrics)")
    parser.add_argument("--add", action="store_true",
                        help="keep the reference and the spread's runs; add this machine's")
    args = parser.parse_args()
    if 0 not in args.seeds and not args.add:
        sys.exit("error: --seeds must include 0 (the reference CI compares against)")
    missing = [k for k in PINS if k not in os.environ and k != "NPY_DISABLE_CPU_FEATURES"]
    if missing:
        sys.exit(f"error: {', '.join(missing)} not set; source scripts/portable_numerics.sh")
    made_on = machine()
    suffix = f"-{vendor_tag(made_on)}" if args.add else ""
    runs = [(f"seed{s}-portable{suffix}", s, True) for s in args.seeds]
    runs += [(f"seed{s}-native{suffix}", s, False) for s in args.native_seeds]
    with tempfile.TemporaryDirectory(prefix="vaemix-gate-") as tmp, \
            ThreadPoolExecutor(args.jobs) as pool:
        futures = {label: pool.submit(run_dag, Path(tmp) / label, seed, portable, args.refresh)
                   for label, seed, portable in runs}
        results = {label: f.result() for label, f in futures.items()}
    command = "bash scripts/update_reference.sh " + " ".join(sys.argv[1:])
    if args.refresh:
        refresh_files(results, args.refresh, made_on, command)
        return
    if args.add:
        add_runs(results, made_on, command)
        return
    write_json(REFERENCE, {"made_on": made_on, "command": command,
                           "metrics": results[REFERENCE_RUN]})
    write_json(SPREAD, {"made_on": made_on, "command": command, "runs": results})
    print(f"wrote {REFERENCE.relative_to(ROOT)} and {SPREAD.relative_to(ROOT)} "
          f"({len(results)} runs)")


def vendor_tag(made_on: dict) -> str:
    """``intel``, ``amd`` or the vendor string lower-cased: the suffix of added runs."""
    vendor = str(made_on.get("vendor", "unknown"))
    return {"GenuineIntel": "intel", "AuthenticAMD": "amd"}.get(vendor, vendor.lower())


def add_runs(results: dict, made_on: dict, command: str) -> None:
    """Add ``results`` to the committed spread (the reference untouched), recording the
    machine and command that made them."""
    spread = json.loads(SPREAD.read_text())
    spread["runs"].update(results)
    spread.setdefault("added", []).append(
        {"runs": sorted(results), "made_on": made_on, "command": command})
    write_json(SPREAD, spread)
    print(f"added {', '.join(sorted(results))} to {SPREAD.name} "
          f"({len(spread['runs'])} runs)")

def refresh_files(results: dict, files: list[str], made_on: dict, command: str) -> None:
    """Put the remade ``files`` (``results``: label -> metrics, labels ``seed<s>-<kind>``)
    into the reference and into every spread run of the same seed and kind; drop them from
    the spread runs of a seed or kind not remade; log what was done under ``refreshed``."""
    by_kind = {re.match(r"seed\d+-(portable|native)", label)[0]: m
               for label, m in results.items()}
    reference = json.loads(REFERENCE.read_text())
    reference["metrics"].update(by_kind[REFERENCE_RUN])
    spread = json.loads(SPREAD.read_text())
    replaced, dropped = [], []
    for label, metrics in spread["runs"].items():
        match = re.match(r"seed\d+-(portable|native)", label)
        new = by_kind.get(match[0]) if match else None
        for f in files:
            if new is not None:
                metrics[f] = new[f]
            else:
                metrics.pop(f, None)
        (replaced if new is not None else dropped).append(label)
    spread.setdefault("refreshed", []).append(
        {"files": sorted(files), "runs_remade": sorted(replaced), "runs_dropped": sorted(dropped),
         "made_on": made_on, "command": command})
    reference.setdefault("refreshed", []).append(
        {"files": sorted(files), "made_on": made_on, "command": command})
    write_json(REFERENCE, reference)
    write_json(SPREAD, spread)
    print(f"refreshed {len(files)} files in {REFERENCE.name} and in {len(replaced)} runs of "
          f"{SPREAD.name} (dropped from {len(dropped)})")


if __name__ == "__main__":
    main()

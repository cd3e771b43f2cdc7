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

Usage (scripts/update_reference.sh sources the pins first):
    python scripts/gate_reference.py [--seeds 0 1 2 3] [--native-seeds 0 1] [--jobs 2]
    python scripts/gate_reference.py --add --seeds 0 --native-seeds 0
"""

from __future__ import annotations

import argparse
import json
import os
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


def run_dag(folder: Path, seed: int, portable: bool) -> dict:
    """One whole `dvc repro` of the gate's DAG; its metrics, timing keys and seed dropped."""
    env = {k: v for k, v in os.environ.items() if portable or k not in PINS}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", NUMBA_NUM_THREADS="1",
               DVC_NO_ANALYTICS="1", PATH=f"{Path(sys.executable).parent}:{env['PATH']}")
    build_gate_project(folder, seeds=[seed])
    start = time.time()
    proc = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=folder, env=env,
                          capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{folder}: dvc repro failed\n{proc.stderr[-3000:]}")
    print(f"{folder.name}: {time.time() - start:.0f} s", flush=True)
    ignore = load_tolerances(ROOT / "tolerances.yaml").ignore | {"seed"}
    return collect(folder / "reports/metrics", ignore)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--native-seeds", type=int, nargs="*", default=[0, 1])
    parser.add_argument("--jobs", type=int, default=2)
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
        futures = {label: pool.submit(run_dag, Path(tmp) / label, seed, portable)
                   for label, seed, portable in runs}
        results = {label: f.result() for label, f in futures.items()}
    command = "bash scripts/update_reference.sh " + " ".join(sys.argv[1:])
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

if __name__ == "__main__":
    main()

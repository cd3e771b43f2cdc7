"""DVC's own overhead: a `dvc repro` with nothing to do, and one after a single method's
param changed (only that method, evaluate and report should rerun), timed; and what each
stage of the first `dvc repro` costs at tiny sizes, where a stage's time is mostly its
process starting (Python, imports, DVC's hashing of its outputs).

The project is copied into a temporary git repository with the end-to-end test's tiny
profile on spiral (every method, encoder, baseline and MoE gate: the full width of the
DAG, tiny sizes), reproduced once, then:

1. `dvc status` and `dvc repro` with nothing changed;
2. `train.vade.lr` changed, `dvc repro`: which stages ran, and how long it took.

The stages run the copied ``src`` (``PYTHONPATH``), so running this script from another
checkout measures that checkout's code.

    python bench/pipeline_overhead.py

writes ``reports/benchmarks/pipeline_overhead.md`` and ``pipeline_overhead.json``.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tiny profile lives with the end-to-end test
from tests.test_pipeline_e2e import tiny_params  # noqa: E402
from vaemix.io import write_json, write_text  # noqa: E402


def _env(cwd: Path) -> dict[str, str]:
    return dict(os.environ, DVC_NO_ANALYTICS="1", PYTHONPATH=str(cwd / "src"),
                PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")


def sh(cmd: list[str], cwd: Path) -> tuple[float, str]:
    """Run ``cmd``; return (wall seconds, stdout + stderr). Stops on failure."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=_env(cwd), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return seconds, proc.stdout + proc.stderr


def timed_repro(cmd: list[str], cwd: Path) -> tuple[float, dict[str, float]]:
    """Run ``dvc repro``; return (wall seconds, seconds of each stage), a stage lasting from
    its "Running stage" line to the next one (the last: to the end)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=_env(cwd), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    seconds: dict[str, float] = {}
    current, since, tail = None, start, []
    for line in proc.stdout:
        tail = [*tail[-50:], line]
        match = re.match(r"Running stage '([^']+)'", line)
        if match:
            now = time.perf_counter()
            if current:
                seconds[current] = now - since
            current, since = match.group(1), now
    end = time.perf_counter()
    if current:
        seconds[current] = end - since
    if proc.wait() != 0:
        sys.exit(f"error: {' '.join(cmd)} failed:\n{''.join(tail)}")
    return end - start, seconds


def import_seconds(module: str, cwd: Path) -> float:
    """Wall seconds of ``python -c "import <module>"``, the best of three."""
    return min(sh([sys.executable, "-c", f"import {module}"], cwd)[0] for _ in range(3))


def by_kind(seconds: dict[str, float]) -> list[tuple[str, int, float, float]]:
    """(kind, stages, mean s, max s) per stage kind (the name before ``@``)."""
    kinds: dict[str, list[float]] = {}
    for stage, s in seconds.items():
        kinds.setdefault(stage.split("@")[0], []).append(s)
    return [(k, len(v), statistics.mean(v), max(v)) for k, v in kinds.items()]


def stages_run(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


def main() -> None:
    dvc = [sys.executable, "-m", "dvc"]
    with tempfile.TemporaryDirectory(prefix="vaemix-overhead-") as scratch:
        proj = Path(scratch)
        for name in ("dvc.yaml", "pyproject.toml", ".gitignore"):
            shutil.copy(ROOT / name, proj / name)
        for folder in ("stages", "src", "pipelines"):
            shutil.copytree(ROOT / folder, proj / folder,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        params = tiny_params()
        params["datasets"] = ["spiral"]
        params["latent_sweep"]["latent_dims"] = []  # the sweep is MNIST's
        (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        for cmd in (["git", "init", "-q"], ["git", "config", "user.email", "b@example.com"],
                    ["git", "config", "user.name", "bench"], [*dvc, "init", "-q"],
                    ["git", "add", "-A"], ["git", "commit", "-qm", "tiny"]):
            sh(cmd, proj)
        imports = {m: import_seconds(m, proj) for m in ("numpy", "sklearn", "torch")}
        full_s, per_stage = timed_repro([*dvc, "repro"], proj)
        n_stages = len(per_stage)
        status_s, _ = sh([*dvc, "status"], proj)
        noop_s, out = sh([*dvc, "repro"], proj)
        assert not stages_run(out), out
        params["train"]["vade"]["lr"] = float(params["train"]["vade"]["lr"]) * 2
        (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        changed_s, out = sh([*dvc, "repro"], proj)
        reran = stages_run(out)

    result = {
        "command": "python bench/pipeline_overhead.py",
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "date": time.strftime("%Y-%m-%d"),
        "n_stages": n_stages, "full_repro_s": full_s, "status_s": status_s,
        "noop_repro_s": noop_s, "one_param_repro_s": changed_s, "reran": reran,
        "stage_seconds": per_stage, "import_seconds": imports,
    }
    kinds = by_kind(per_stage)
    out_dir = ROOT / "reports" / "benchmarks"
    write_json(out_dir / "pipeline_overhead.json", result)
    write_text(out_dir / "pipeline_overhead.md", "\n".join([
        "# DVC pipeline overhead",
        "",
        f"The end-to-end test's tiny profile on spiral ({n_stages} stages: every method, "
        f"encoder, baseline and MoE gate at tiny sizes), CPU ({result['machine']}).",
        "",
        "| run | wall s | stages run |",
        "|---|---:|---|",
        f"| first `dvc repro` (everything) | {full_s:.1f} | {n_stages} |",
        f"| `dvc status`, nothing changed | {status_s:.1f} | — |",
        f"| `dvc repro`, nothing changed | {noop_s:.1f} | none |",
        f"| `dvc repro` after `train.vade.lr` changed | {changed_s:.1f} | "
        + ", ".join(f"`{s}`" for s in reran) + " |",
        "",
        "",
        "Seconds per stage of the first `dvc repro`, by kind (from one \"Running stage\" "
        "line to the next):",
        "",
        "| stage kind | stages | mean s | max s |",
        "|---|---:|---:|---:|",
        *[f"| `{k}` | {n} | {mean:.1f} | {top:.1f} |" for k, n, mean, top in kinds],
        "",
        "For scale, `python -c \"import M\"` (best of 3): "
        + ", ".join(f"{m} {s:.1f} s" for m, s in imports.items()) + ".",
        "",
        f"Command: `{result['command']}` ({result['date']}).",
    ]) + "\n")
    print(result)


if __name__ == "__main__":
    main()

"""DVC's own overhead: a `dvc repro` with nothing to do, and one after a single method's
param changed (only that method, evaluate and report should rerun), timed.

The project is copied into a temporary git repository with the end-to-end test's tiny
profile on spiral (every method, encoder, baseline and MoE gate: the full width of the
DAG, tiny sizes), reproduced once, then:

1. `dvc status` and `dvc repro` with nothing changed;
2. `train.vade.lr` changed, `dvc repro`: which stages ran, and how long it took.

    python bench/pipeline_overhead.py

writes ``reports/benchmarks/pipeline_overhead.md`` and ``pipeline_overhead.json``.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
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


def sh(cmd: list[str], cwd: Path) -> tuple[float, str]:
    """Run ``cmd``; return (wall seconds, stdout + stderr). Stops on failure."""
    env = dict(os.environ, DVC_NO_ANALYTICS="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return seconds, proc.stdout + proc.stderr


def stages_run(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


def main() -> None:
    dvc = [sys.executable, "-m", "dvc"]
    with tempfile.TemporaryDirectory(prefix="vaemix-overhead-") as scratch:
        proj = Path(scratch)
        for name in ("dvc.yaml", "pyproject.toml", ".gitignore"):
            shutil.copy(ROOT / name, proj / name)
        for folder in ("stages", "src"):
            shutil.copytree(ROOT / folder, proj / folder,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        params = tiny_params()
        params["datasets"] = ["spiral"]
        (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        for cmd in (["git", "init", "-q"], ["git", "config", "user.email", "b@example.com"],
                    ["git", "config", "user.name", "bench"], [*dvc, "init", "-q"],
                    ["git", "add", "-A"], ["git", "commit", "-qm", "tiny"]):
            sh(cmd, proj)
        full_s, out = sh([*dvc, "repro"], proj)
        n_stages = len(stages_run(out))
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
    }
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
        f"Command: `{result['command']}` ({result['date']}).",
    ]) + "\n")
    print(result)


if __name__ == "__main__":
    main()

"""Peak memory (resident set size) of every stage at full MNIST size: 60,000 training and
10,000 test images.

No network here, so the 70,000 images are the official MNIST test split tiled: its 10,000
images six times as the training split, once as the test split. Memory depends on the
sizes and the networks, not on which digits they are. Each stage of the DAG for
``datasets: [mnist]`` runs as its own process in a scratch project (the real
``stages/*.py``, with ``params.yaml`` at its committed networks and batch sizes, every
method, one epoch each); the peak RSS of each process is read from ``wait4``. Target
(issue 7): under 3 GiB for the MLP models.

    python bench/peak_memory.py --mnist-t10k ../shared/data/mnist-t10k

writes ``reports/benchmarks/peak_memory.md`` and ``peak_memory.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from vaemix.data.mnist import FILES, IMAGE_MAGIC, LABEL_MAGIC, idx_bytes, raw_dir, read_idx
from vaemix.io import write_json, write_text

ROOT = Path(__file__).resolve().parents[1]
TARGET_GIB = 3.0


def write_full_size_mnist(t10k: Path, root: Path, copies: int = 6) -> None:
    """Raw IDX files of 10,000 × ``copies`` training and 10,000 test images."""
    x = read_idx(t10k / f"{FILES['test'][0]}.gz", IMAGE_MAGIC)
    y = read_idx(t10k / f"{FILES['test'][1]}.gz", LABEL_MAGIC)
    dest = raw_dir(root)
    dest.mkdir(parents=True, exist_ok=True)
    for split, (xs, ys) in (("train", (np.tile(x, (copies, 1, 1)), np.tile(y, copies))),
                            ("test", (x, y))):
        (dest / FILES[split][0]).write_bytes(idx_bytes(xs))
        (dest / FILES[split][1]).write_bytes(idx_bytes(ys))


def stage_commands(params: dict) -> list[list[str]]:
    """Every stage of the DAG on MNIST, in an order that respects its dependencies."""
    cmds = [["prepare.py", "mnist"]]
    cmds += [["pretrain.py", "mnist", enc] for enc in params["encoders"]]
    cmds += [["train.py", "mnist", m] for m in params["methods"]]
    cmds += [["baselines.py", "mnist", enc, bl]
             for enc in params["baseline_encoders"] for bl in params["baselines"]]
    cmds += [["moe.py", "mnist", g, str(d)]
             for g in params["moe"]["gates"] for d in params["moe"]["latent_dims"]]
    cmds += [["moe.py", "mnist", g, "0"] for g in params["moe"]["plain_gates"]]
    return cmds + [["evaluate.py"], ["report.py"]]


def run_measured(cmd: list[str], cwd: Path, log) -> tuple[float, float]:
    """Run a stage; return (peak RSS in GiB, wall seconds). Stops on a failed stage."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(ROOT / "stages" / cmd[0]), *cmd[1:]],
                            cwd=cwd, stdout=log, stderr=log)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"error: stage {' '.join(cmd)} failed with exit code {proc.returncode}; "
                 f"see {log.name}")
    return usage.ru_maxrss / 2**20, seconds  # ru_maxrss is in KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mnist-t10k", type=Path, default=ROOT.parent / "shared/data/mnist-t10k")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks")
    args = ap.parse_args()

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["datasets"] = ["mnist"]
    params["moe"]["latent_dims"] = [2]  # memory does not depend on the latent dim's value
    params["budget"]["epoch_scale"] = 1e-6  # one epoch of every stage (at least one)
    rows = []
    with tempfile.TemporaryDirectory(prefix="vaemix-mem-") as scratch:
        project = Path(scratch)
        write_full_size_mnist(args.mnist_t10k, project / "data" / "raw")
        params["data"]["mnist"].update(root=str(project / "data" / "raw"), download=False)
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
        log_path = args.out / "peak_memory.log"
        args.out.mkdir(parents=True, exist_ok=True)
        with open(log_path, "w") as log:
            for cmd in stage_commands(params):
                gib, seconds = run_measured(cmd, project, log)
                rows.append({"stage": " ".join(cmd), "peak_rss_gib": gib, "seconds": seconds})
                print(f"{rows[-1]['stage']}: {gib:.2f} GiB, {seconds:.0f} s", flush=True)
        log_path.unlink()  # the stages' progress bars; kept only when a stage fails

    meta = {
        "command": "python bench/peak_memory.py --mnist-t10k ../shared/data/mnist-t10k "
                   f"--threads {args.threads}",
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "date": time.strftime("%Y-%m-%d"),
    }
    write_json(args.out / "peak_memory.json", {"meta": meta, "rows": rows})
    lines = [
        "# Peak memory of each stage at full MNIST size",
        "",
        "60,000 training and 10,000 test images (the official test split tiled; see the "
        "script's docstring), `params.yaml` networks and batch sizes, one epoch per "
        f"training stage, CPU ({meta['machine']}, {args.threads} thread(s)). Peak resident "
        f"set size of the stage's process; target under {TARGET_GIB:g} GiB for the MLP "
        "models.",
        "",
        "| stage | peak RSS (GiB) | under target | wall s |",
        "|---|---:|---|---:|",
    ]
    for r in rows:
        ok = "yes" if r["peak_rss_gib"] < TARGET_GIB else "no"
        lines.append(f"| `{r['stage']}` | {r['peak_rss_gib']:.2f} | {ok} | "
                     f"{r['seconds']:.0f} |")
    lines += ["", f"Command: `{meta['command']}` ({meta['date']})."]
    write_text(args.out / "peak_memory.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

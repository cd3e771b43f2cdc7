"""Parameter sweeps through DVC's experiment queue, as the README documents them.

A one-method project (tiny spiral, `vade` and the AE with its N2D start) in a temporary git repo,
reproduced once and its dvc.lock files committed; one `dvc exp run --queue -S
'train.vade.lr=A,B'` queues a two-point grid, `dvc queue start --jobs 2` runs it with two
workers, each of which restores the unchanged stages from DVC's cache and runs only VaDE's
training, evaluate and report; `dvc exp show` must then list both experiments with their
learning rate and a finite test ACC of their own.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.test_pipeline_e2e import ROOT, run, stages_run, tiny_params

pytestmark = pytest.mark.slow
LRS = (0.001, 0.003)   # both unlike the committed run's lr


def dvc(proj: Path, *args: str) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "dvc", *args], proj)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    proj = tmp_path_factory.mktemp("sweep")
    for name in ("dvc.yaml", "pyproject.toml", ".gitignore", "tolerances.yaml"):
        shutil.copy(ROOT / name, proj / name)
    for folder in ("stages", "src", "pipelines"):
        shutil.copytree(ROOT / folder, proj / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    params = tiny_params()
    params.update(datasets=["spiral"], encoders=["ae", "ae_da"], methods=["vade"], paper_starts=[],
                  baselines=["umap_gmm"],  # the start of every model
                  baseline_encoders=["ae", "ae_da"])
    params["moe"].update(gates=[], plain_gates=[])
    params["latent_sweep"]["latent_dims"] = []
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], proj)
    run(["git", "config", "user.email", "ci@example.com"], proj)
    run(["git", "config", "user.name", "ci"], proj)
    dvc(proj, "init", "-q")
    dvc(proj, "config", "core.analytics", "false")
    run(["git", "add", "-A"], proj)
    run(["git", "commit", "-qm", "one-method profile"], proj)
    dvc(proj, "repro")                     # the baseline every queued run starts from
    run(["git", "add", "-A"], proj)        # its dvc.lock files; the outputs are in the cache
    run(["git", "commit", "-qm", "reproduced"], proj)
    return proj


def experiments(proj: Path) -> dict[str, dict]:
    """name -> the experiment's data in `dvc exp show --json`."""
    shown = json.loads(dvc(proj, "exp", "show", "--json").stdout)
    return {exp["name"]: exp["revs"][0]["data"]
            for row in shown for exp in (row.get("experiments") or [])}


def test_queued_grid_runs_with_two_workers(project):
    committed = yaml.safe_load((project / "params.yaml").read_text())["train"]["vade"]["lr"]
    assert committed not in LRS   # each point of the grid must rerun VaDE's training
    queued = dvc(project, "exp", "run", "--queue", "-S", "train.vade.lr=" + ",".join(map(str, LRS)))
    assert queued.stdout.count("Queued experiment") == len(LRS), queued.stdout
    dvc(project, "queue", "start", "--jobs", "2")
    deadline = time.monotonic() + 900
    while True:
        status = dvc(project, "queue", "status").stdout
        if "Queued" not in status and "Running" not in status:
            break
        assert time.monotonic() < deadline, status
        time.sleep(3)
    assert status.count("Success") == len(LRS), status

    exps = experiments(project)
    assert len(exps) == len(LRS), exps.keys()
    for name in exps:   # the committed stages come from the cache; only what lr changes runs
        ran = stages_run(dvc(project, "queue", "logs", name).stdout)
        assert ran == {"train@spiral-vade", "evaluate", "report"}, (name, ran)
    seen = {}
    for name, data in exps.items():
        lr = data["params"]["params.yaml"]["data"]["train"]["vade"]["lr"]
        acc = data["metrics"]["reports/metrics/spiral/vade.json"]["data"]["acc"]
        assert math.isfinite(acc) and 0.0 <= acc <= 1.0, (name, acc)
        seen[lr] = acc
    assert sorted(seen) == sorted(LRS)

    table = dvc(project, "exp", "show", "--md", "--drop",
                r"^(?!Experiment$|train\.vade\.lr$|.*spiral/vade\.json:acc$).*").stdout
    for name in exps:
        assert name in table
    print(table)  # what the README shows a user

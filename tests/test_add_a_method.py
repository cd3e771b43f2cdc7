"""README's "Add a method", followed in a copy of the project: the worked example becomes a
method by one file and one name in params.yaml, and runs through a real ``dvc repro`` on a
tiny spiral. Then ``dvc status`` after edits: a change to the report's plotting module
leaves every stage that does not import it up to date, and a change to ``models/vade.py``
makes only VaDE's stages stale."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.test_pipeline_e2e import ROOT, tiny_params

pytestmark = pytest.mark.slow

DVC = [sys.executable, "-m", "dvc"]


def run(cmd: list[str], proj: Path) -> subprocess.CompletedProcess:
    """``cmd`` in the copy, importing the copy's package (its src/ ahead of the editable
    install's), as a user's checkout would."""
    env = dict(os.environ, PYTHONPATH=str(proj / "src"), DVC_NO_ANALYTICS="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run(cmd, cwd=proj, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def toy_params() -> dict:
    """The tiny profile on the spiral alone, with VaDE and the new method ``toy``."""
    params = tiny_params()
    params.update(datasets=["spiral"], encoders=["ae", "ae_da"], methods=["vade", "toy"],
                  paper_starts=[], baselines=["umap_gmm"], baseline_encoders=["ae", "ae_da"])
    params["moe"].update(gates=[], plain_gates=[], paper_gates=[], paper_plain_gates=[])
    params["latent_sweep"].update(latent_dims=[], runs=[], from_gmvae=[],
                                  baseline_encoders=[])
    params["train"]["toy"] = {}   # the README's step: the declared defaults
    return params


@pytest.fixture(scope="module")
def toy_project(tmp_path_factory) -> Path:
    proj = tmp_path_factory.mktemp("toy")
    for name in ("dvc.yaml", "pyproject.toml", ".gitignore"):
        shutil.copy(ROOT / name, proj / name)
    for folder in ("stages", "src", "scripts", "examples", "pipelines"):
        shutil.copytree(ROOT / folder, proj / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    # README, "Add a method": the module, then its name in `methods`
    shutil.copy(proj / "examples/toy_method.py", proj / "src/vaemix/models/toy.py")
    (proj / "params.yaml").write_text(yaml.safe_dump(toy_params(), sort_keys=False))
    run([sys.executable, "scripts/code_deps.py", "--check"], proj)   # no dvc.yaml needs an edit
    run(["git", "init", "-q"], proj)
    run(["git", "config", "user.email", "ci@example.com"], proj)
    run(["git", "config", "user.name", "ci"], proj)
    run([*DVC, "init", "-q"], proj)
    run(["git", "add", "-A"], proj)
    run(["git", "commit", "-qm", "toy"], proj)
    run([*DVC, "repro"], proj)
    return proj


def stale(proj: Path) -> set[str]:
    """The stages ``dvc status`` reports changed (by name, without their dvc.yaml file)."""
    out = run([*DVC, "status", "--json"], proj).stdout
    return {name.split(":")[-1] for name in json.loads(out or "{}")}


def test_the_new_method_runs_under_both_protocols_and_reaches_the_report(toy_project):
    for run_id in ("toy", "toy_paper"):
        m = json.loads((toy_project / f"reports/metrics/spiral/{run_id}.json").read_text())
        assert 0.0 <= m["acc"] <= 1.0 and m["epochs"] >= 1, (run_id, m)
        assert (toy_project / f"artifacts/spiral/{run_id}/pred.npz").is_file()
        assert not (toy_project / f"artifacts/spiral/{run_id}/samples.npz").exists()
    summary = (toy_project / "reports/summary.csv").read_text()
    assert "spiral,toy," in summary and "spiral,toy_paper," in summary
    headline = (toy_project / "reports/tables/headline.md").read_text()
    assert "| spiral | toy |" in headline
    assert stale(toy_project) == set()


def edit(path: Path) -> str:
    text = path.read_text()
    path.write_text(text + "\n# an edit\n")
    return text


def stages_importing(proj: Path, rel: str) -> set[str]:
    """The stages of the dvc.yaml files (by template name) whose code deps cover ``rel``."""
    stages = {name: s for path in [proj / "dvc.yaml", *proj.glob("pipelines/*/dvc.yaml")]
              for name, s in yaml.safe_load(path.read_text())["stages"].items()}
    return {name for name, s in stages.items()
            if any(rel == str(d) or rel.startswith(str(d).rstrip("/") + "/")
                   for d in s["deps"])}


def test_an_edit_to_the_plots_leaves_the_training_up_to_date(toy_project):
    plots = toy_project / "src/vaemix/report/plots.py"
    old = edit(plots)
    try:
        changed = stale(toy_project)
    finally:
        plots.write_text(old)
    templates = {name.split("@")[0] for name in changed}
    assert templates and templates <= stages_importing(toy_project, "src/vaemix/report/plots.py")
    assert "report" in changed
    assert not any(name.startswith(("train", "pretrain", "baselines", "prepare"))
                   for name in changed), changed


def test_an_edit_to_vade_makes_only_vades_stages_stale(toy_project):
    vade = toy_project / "src/vaemix/models/vade.py"
    old = edit(vade)
    try:
        changed = stale(toy_project)
    finally:
        vade.write_text(old)
    assert changed == {"train@spiral-vade", "train_paper@spiral-vade"}, changed

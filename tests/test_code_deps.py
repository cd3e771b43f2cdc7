"""Every stage of the DAG's dvc.yaml files depends on all the package code its script can run.

For each stage, the script of its ``cmd`` (``stages/<x>.py``) is parsed with ``ast`` and its
imports are followed transitively inside ``src/vaemix`` (imports inside functions included,
``from vaemix.a import b`` where ``b`` may be a submodule, and the ``__init__.py`` of every
package on the way). Each file of that closure must be covered by one of the stage's deps:
the file itself or a folder above it. Otherwise a change to that file would leave the stage
"up to date" with its old outputs.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from scripts.code_deps import DVC_YAMLS, METHOD_ITEM, SCRIPT_RE, stage_files
from vaemix.imports import SRC, import_closure
from vaemix.registry import method_file, method_names

ROOT = Path(__file__).resolve().parents[1]


def all_stages() -> dict:
    """Every stage template of the DAG's dvc.yaml files (the root's and pipelines/*/), by name."""
    stages: dict = {}
    for path in DVC_YAMLS:
        for name, stage in yaml.safe_load(path.read_text(encoding="utf-8"))["stages"].items():
            assert name not in stages, f"{path}: stage {name} is defined twice"
            stages[name] = stage
    return stages


def test_the_dag_is_split_into_files_that_run_in_the_root():
    """pipelines/<group>/dvc.yaml (each its own, smaller dvc.lock): every stage runs in the
    project root and reads the root's params.yaml, so paths and params are the root's."""
    assert [p.relative_to(ROOT).as_posix() for p in DVC_YAMLS] == [
        "dvc.yaml", *(f"pipelines/{g}/dvc.yaml" for g in
                      ("baselines", "moe", "paper", "sweep", "train"))]
    for path in DVC_YAMLS[1:]:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert spec["vars"] == ["../../params.yaml"], path
        assert all(stage["wdir"] == "../.." for stage in spec["stages"].values()), path
    assert len(all_stages()) == 17


def _covers(dep: str, rel: str) -> bool:
    dep = dep.rstrip("/")
    return rel == dep or rel.startswith(dep + "/")


def uncovered(dvc_yaml: str) -> dict[str, list[str]]:
    """Per stage, the files of its script's import closure that none of its deps covers; a
    stage that runs one method by name (``${item.method}``) is checked for every method,
    with that method's module imported and its name put into the deps."""
    missing: dict[str, list[str]] = {}
    for name, stage in yaml.safe_load(dvc_yaml)["stages"].items():
        match = SCRIPT_RE.search(stage["cmd"])
        assert match, f"stage {name}: no 'python stages/<x>.py' in its cmd"
        script = match.group(1)
        deps = [str(d) for d in stage.get("deps", [])]
        assert script in deps, f"stage {name}: does not depend on its script {script}"
        runs = method_names() if METHOD_ITEM in stage["cmd"] else [None]
        for method in runs:
            extra = [method_file(method)] if method else []
            files = sorted(p.relative_to(ROOT).as_posix()
                           for p in import_closure(ROOT / script, *extra))
            named = [d.replace(METHOD_ITEM, method) if method else d for d in deps]
            bad = [f for f in files if not any(_covers(d, f) for d in named)]
            if bad:
                missing[f"{name} ({method})" if method else name] = bad
    return missing


def test_every_stage_depends_on_all_the_code_it_imports():
    for path in DVC_YAMLS:
        missing = uncovered(path.read_text(encoding="utf-8"))
        assert not missing, f"{path}: stages miss code deps: " + "; ".join(
            f"{stage}: {', '.join(files)}" for stage, files in missing.items())


def test_the_closure_follows_imports_inside_functions_and_submodules():
    closure = {p.relative_to(SRC).as_posix() for p in import_closure(ROOT / "stages/train.py")}
    # stages/train.py imports vaemix.* inside main(); config and the data readers come
    # from there, the models through vaemix.runs
    assert {"vaemix/__init__.py", "vaemix/cli.py", "vaemix/config.py",
            "vaemix/data/__init__.py", "vaemix/runs.py", "vaemix/training.py"} <= closure
    assert any(p.startswith("vaemix/models/") and p != "vaemix/models/__init__.py"
               for p in closure)


def test_hand_listed_deps_that_miss_a_file_are_caught():
    """The deps of the old dvc.yaml: train@ listed the model code but not config.py."""
    old = """
stages:
  train:
    cmd: python stages/train.py ${item.dataset} ${item.method}
    deps:
      - stages/train.py
      - data/prepared/${item.dataset}/data.npz
      - src/vaemix/runs.py
      - src/vaemix/training.py
      - src/vaemix/models
  evaluate:
    cmd: python stages/evaluate.py
    deps:
      - stages/evaluate.py
      - src/vaemix/
"""
    missing = uncovered(old)
    assert list(missing) == [f"train ({m})" for m in method_names()]   # checked per method
    assert "src/vaemix/config.py" in missing["train (vade)"]
    assert "src/vaemix/models/vade.py" not in missing["train (vade)"]  # under a listed folder
    assert "src/vaemix/training.py" not in missing["train (vade)"]     # listed itself


def test_a_method_module_missing_from_the_deps_is_caught():
    """Listing the shared model code but not ${item.method}'s module leaves each method's
    own file uncovered."""
    old = """
stages:
  train:
    cmd: python stages/train.py ${item.dataset} ${item.method}
    deps:
      - stages/train.py
      - src/vaemix/__init__.py
"""
    missing = uncovered(old)
    assert "src/vaemix/models/vade.py" in missing["train (vade)"]
    assert "src/vaemix/models/vade.py" not in missing["train (dmvae)"]


def test_each_stage_lists_exactly_its_own_code():
    """dvc.yaml names, per stage, the files of its import closure and no others (so an edit
    to a module reruns exactly the stages that import it); scripts/code_deps.py writes them."""
    from scripts.code_deps import rewritten

    for path in DVC_YAMLS:
        text = path.read_text(encoding="utf-8")
        assert rewritten(text) == text, f"{path}: run python scripts/code_deps.py"
    stages = all_stages()
    assert "src/vaemix" not in [str(d).rstrip("/") for s in stages.values() for d in s["deps"]]
    # evaluate and report read metrics files and draw: no model, no training loop
    for name in ("evaluate", "report", "baselines", "prepare"):
        code = [str(d) for d in stages[name]["deps"] if str(d).startswith("src/")]
        assert "src/vaemix/training.py" not in code, name
        assert not any(d.startswith("src/vaemix/models/") for d in code), (name, code)


def test_a_listed_file_the_stage_does_not_import_is_dropped():
    """A stale entry (a file the script no longer imports) or the whole folder is replaced by
    the closure, so the check above fails on either."""
    from scripts.code_deps import rewritten, stage_deps

    old = """stages:
  evaluate:
    cmd: python stages/evaluate.py
    deps:
      - stages/evaluate.py
      - src/vaemix/training.py
      - reports/metrics
"""
    new = rewritten(old)
    assert "src/vaemix/training.py" not in new
    assert [ln.strip()[2:] for ln in new.splitlines() if "src/vaemix" in ln] == stage_deps(
        "python stages/evaluate.py")


def test_a_stage_that_trains_one_method_depends_on_that_module_alone():
    """train@<ds>-<m> lists models/${item.method}.py and the code the method modules share,
    not the other methods: an edit to vade.py leaves dmvae's stages up to date."""
    stages = all_stages()
    for name in ("train", "train_paper", "train_paper_start"):
        code = {str(d) for d in stages[name]["deps"] if str(d).startswith("src/")}
        assert "src/vaemix/models/${item.method}.py" in code, name
        assert {"src/vaemix/models/__init__.py", "src/vaemix/models/base.py",
                "src/vaemix/models/init.py"} <= code, name
        for solo in ("vade", "dmvae", "movae", "idec"):   # no other method imports them
            assert f"src/vaemix/models/{solo}.py" not in code, (name, solo)
        # the GMVAE family builds on gmvae.py, IDEC on dec.py: shared by every train stage
        assert {"src/vaemix/models/gmvae.py", "src/vaemix/models/dec.py"} <= code, name
    # a stage that builds models from other names (the sweep's runs) lists them all
    sweep = {str(d) for d in stages["train_z"]["deps"]}
    assert {"src/vaemix/models/vade.py", "src/vaemix/models/dmvae.py"} <= sweep or \
        "src/vaemix/models" in sweep


def test_stage_files_follow_the_method_named_in_the_command():
    files, by_name = stage_files("python stages/train.py ${item.dataset} ${item.method}")
    assert by_name and method_file("vade") not in files
    files, by_name = stage_files("python stages/evaluate.py")
    assert not by_name and not any(p.parent.name == "models" for p in files)
    assert SRC in method_file("vade").parents


def test_resume_keys_hash_the_runs_own_code_not_the_report():
    """A checkpoint's key hashes the import closure of the training code and the method's
    module (vaemix.runs.code_digest): an edit to the report or another method keeps it."""
    from vaemix import runs

    files = {p.relative_to(SRC).as_posix()
             for p in import_closure(Path(runs.__file__), method_file("vade"))}
    assert {"vaemix/runs.py", "vaemix/training.py", "vaemix/models/vade.py"} <= files
    assert not any(f.startswith("vaemix/report/") for f in files)
    assert "vaemix/models/dmvae.py" not in files
    assert runs.code_digest("vade") != runs.code_digest("dmvae")
    assert runs.code_digest("vade") == runs.code_digest("vade")


def test_the_sweep_pretrains_only_its_encoders_and_its_runs_need_no_autoencoder():
    """pretrain_z@ runs over latent_sweep.encoders (not every encoder), and train_z@ reads
    no pretrained artifact: its runs start from random networks (stages/sweep.py refuses a
    recipe that does not)."""
    stages = all_stages()
    assert stages["pretrain_z"]["matrix"]["encoder"] == "${latent_sweep.encoders}"
    assert not [d for d in stages["train_z"]["deps"] if str(d).startswith("artifacts/")]
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    assert params["latent_sweep"]["encoders"] == ["vae"]

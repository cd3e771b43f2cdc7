"""Every stage of dvc.yaml depends on all the package code its script can run.

For each stage, the script of its ``cmd`` (``stages/<x>.py``) is parsed with ``ast`` and its
imports are followed transitively inside ``src/vaemix`` (imports inside functions included,
``from vaemix.a import b`` where ``b`` may be a submodule, and the ``__init__.py`` of every
package on the way). Each file of that closure must be covered by one of the stage's deps:
the file itself or a folder above it. Otherwise a change to that file would leave the stage
"up to date" with its old outputs.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
_SCRIPT_RE = re.compile(r"\bpython\s+(stages/\S+\.py)")


def module_file(name: str) -> Path | None:
    """The file of module ``name`` (``vaemix.a.b``) under src/, or None (not ours)."""
    if name.split(".")[0] != "vaemix":
        return None
    base = SRC.joinpath(*name.split("."))
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def _package_of(path: Path) -> list[str]:
    """The dotted package a file under src/ belongs to (for relative imports)."""
    if not path.is_relative_to(SRC):
        return []
    return list(path.relative_to(SRC).parent.parts)


def imported_modules(path: Path) -> set[str]:
    """Every module name a file may import, anywhere in it (functions included); for
    ``from m import x`` both ``m`` and ``m.x`` (x may be a submodule); every parent package
    of each name too (importing ``a.b.c`` runs ``a/__init__.py`` and ``a/b/__init__.py``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            parts = _package_of(path)
            if node.level:
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    parents = {".".join(n.split(".")[:i]) for n in names for i in range(1, n.count(".") + 1)}
    return names | parents


def import_closure(script: Path) -> set[Path]:
    """The files of src/vaemix that running ``script`` may import, transitively."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        for name in imported_modules(todo.pop()):
            path = module_file(name)
            if path is not None and path not in seen:
                seen.add(path)
                todo.append(path)
    return seen


def _covers(dep: str, rel: str) -> bool:
    dep = dep.rstrip("/")
    return rel == dep or rel.startswith(dep + "/")


def uncovered(dvc_yaml: str) -> dict[str, list[str]]:
    """Per stage, the files of its script's import closure that none of its deps covers."""
    missing: dict[str, list[str]] = {}
    for name, stage in yaml.safe_load(dvc_yaml)["stages"].items():
        match = _SCRIPT_RE.search(stage["cmd"])
        assert match, f"stage {name}: no 'python stages/<x>.py' in its cmd"
        script = match.group(1)
        deps = [str(d) for d in stage.get("deps", [])]
        assert script in deps, f"stage {name}: does not depend on its script {script}"
        files = sorted(p.relative_to(ROOT).as_posix() for p in import_closure(ROOT / script))
        bad = [f for f in files if not any(_covers(d, f) for d in deps)]
        if bad:
            missing[name] = bad
    return missing


def test_every_stage_depends_on_all_the_code_it_imports():
    missing = uncovered((ROOT / "dvc.yaml").read_text(encoding="utf-8"))
    assert not missing, "dvc.yaml: stages miss code deps: " + "; ".join(
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
    assert list(missing) == ["train"]
    assert "src/vaemix/config.py" in missing["train"]
    assert "src/vaemix/models/vade.py" not in missing["train"]  # under a listed folder
    assert "src/vaemix/training.py" not in missing["train"]     # listed itself


def test_each_stage_lists_exactly_its_own_code():
    """dvc.yaml names, per stage, the files of its import closure and no others (so an edit
    to a module reruns exactly the stages that import it); scripts/code_deps.py writes them."""
    from scripts.code_deps import rewritten

    text = (ROOT / "dvc.yaml").read_text(encoding="utf-8")
    assert rewritten(text) == text, "dvc.yaml: run python scripts/code_deps.py"
    stages = yaml.safe_load(text)["stages"]
    assert "src/vaemix" not in [str(d).rstrip("/") for s in stages.values() for d in s["deps"]]
    # evaluate and report read metrics files and draw: no model, no training loop
    for name in ("evaluate", "report", "baselines", "prepare"):
        code = [str(d) for d in stages[name]["deps"] if str(d).startswith("src/")]
        assert "src/vaemix/training.py" not in code, name
        assert not any(d.startswith("src/vaemix/models/") for d in code), (name, code)


def test_a_listed_file_the_stage_does_not_import_is_dropped():
    """A stale entry (a file the script no longer imports) or the whole folder is replaced by
    the closure, so the check above fails on either."""
    from scripts.code_deps import closure_of, rewritten

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
    assert [ln.strip()[2:] for ln in new.splitlines() if "src/vaemix" in ln] == closure_of(
        "stages/evaluate.py")

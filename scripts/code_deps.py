"""Write each stage's own code into the dvc.yaml files: its script's import closure in src/vaemix.

Every stage of the DAG's dvc.yaml files (``DVC_YAMLS``: the root's and pipelines/*/) lists,
instead of the whole package folder, the files of src/vaemix that its script (``python
stages/<x>.py`` in its ``cmd``) may import, transitively (vaemix.imports: imports inside
functions included). An edit to a plotting module then reruns only the stages that import it.

Method modules are imported by name (vaemix.models.model_class), which no import statement
shows. A stage that uses the registry and runs one method, ``${item.method}`` in its
``cmd`` (train@, train_paper@, train_paper_start@), depends on that method's module
(``src/vaemix/models/${item.method}.py``) and on what the method modules import: the shared
model code, and the method modules that other methods build on (the GMVAE family, DEC for
IDEC). A stage that runs an encoder (``${item.encoder}``) depends on vaemix.models.ae, one
whose script names the methods it builds (``BUILDS = ("dec",)``, start@) on those; any other
stage that uses the registry depends on every method module.

Run after changing what a stage imports; ``--check`` only says whether the files are up to
date (tests/test_code_deps.py does too).

    python scripts/code_deps.py [--check]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from vaemix.imports import SRC, import_closure  # noqa: E402
from vaemix.registry import method_file, method_names  # noqa: E402

DVC_YAMLS = [ROOT / "dvc.yaml", *sorted(ROOT.glob("pipelines/*/dvc.yaml"))]
SCRIPT_RE = re.compile(r"\bpython\s+(stages/\S+\.py)")
METHOD_ITEM = "${item.method}"
METHOD_DEP = f"src/vaemix/models/{METHOD_ITEM}.py"
REGISTRY = SRC / "vaemix" / "models" / "__init__.py"
_STAGE = re.compile(r"^  ([A-Za-z_][\w-]*):")
_CODE_DEP = re.compile(r"^(\s+)- src/vaemix(/\S*)?\s*$")
# a stage script that builds only some methods by name says which: BUILDS = ("dec",)
_BUILDS = re.compile(r"^BUILDS\s*=\s*\(([^)]*)\)", re.MULTILINE)


def _module_closures() -> dict[str, set[Path]]:
    """Each method's module with what it imports, and the autoencoders' (``ae``)."""
    return {m: import_closure(method_file(m)) for m in (*method_names(), "ae")}


def stage_files(cmd: str) -> tuple[set[Path], bool]:
    """The package files the stage with command ``cmd`` may run, and whether it runs one
    method by name (``${item.method}``: its module is the templated METHOD_DEP, not in the
    set)."""
    script = ROOT / SCRIPT_RE.search(cmd).group(1)
    files = import_closure(script)
    if REGISTRY not in files:
        return files, False
    closures = _module_closures()
    if "${item.encoder}" in cmd:   # pretrain@: the autoencoders alone
        return files | closures["ae"], False
    if named := _BUILDS.search(script.read_text(encoding="utf-8")):   # start@: DEC alone
        return files.union(*(closures[m] for m in re.findall(r"\w+", named.group(1)))), False
    if METHOD_ITEM not in cmd:
        return files.union(*closures.values()), False
    own = {method_file(m) for m in method_names()}
    imported = set().union(*(c - {method_file(m)} for m, c in closures.items()))
    shared = set().union(*closures.values()) - (own - imported)
    return files | shared, True


def closure_of(files: set[Path]) -> list[str]:
    """``files`` as dvc.yaml paths, sorted; a package folder whose every module is among
    them is listed as the folder (fewer paths for DVC to hash and lock per stage, the same
    set of files)."""
    folders = sorted({p.parent for p in files if p.parent != SRC / "vaemix"},
                     key=lambda f: len(f.parts))
    whole: list[Path] = []
    for folder in folders:
        if any(folder.is_relative_to(w) for w in whole):
            continue
        if set(folder.rglob("*.py")) <= files:
            whole.append(folder)
    rest = [p for p in files if not any(p.is_relative_to(w) for w in whole)]
    return sorted(p.relative_to(ROOT).as_posix() for p in [*whole, *rest])


def stage_deps(cmd: str) -> list[str]:
    """The src/vaemix deps dvc.yaml lists for the stage with command ``cmd``."""
    files, by_name = stage_files(cmd)
    return sorted(closure_of(files) + ([METHOD_DEP] if by_name else []))


def rewritten(text: str) -> str:
    """``text`` (dvc.yaml) with every stage's src/vaemix deps replaced by its closure."""
    cmds = {name: stage["cmd"] for name, stage in yaml.safe_load(text)["stages"].items()}
    out: list[str] = []
    stage = None
    written: set[str] = set()
    for line in text.splitlines():
        if m := _STAGE.match(line):
            stage = m.group(1)
        code = _CODE_DEP.match(line)
        if code is None or stage is None:
            out.append(line)
            continue
        if stage not in written:   # the first src/vaemix dep of the stage: all its files
            out += [f"{code.group(1)}- {path}" for path in stage_deps(cmds[stage])]
            written.add(stage)
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    stale = []
    for path in DVC_YAMLS:
        text = path.read_text(encoding="utf-8")
        new = rewritten(text)
        if new == text:
            continue
        stale.append(path.relative_to(ROOT).as_posix())
        if "--check" not in argv:
            path.write_text(new, encoding="utf-8")
    if stale and "--check" in argv:
        print(f"{', '.join(stale)}: code deps differ from the stages' imports; run "
              "python scripts/code_deps.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

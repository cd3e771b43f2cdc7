"""Write each stage's own code into dvc.yaml: its script's import closure inside src/vaemix.

Every stage of dvc.yaml lists, instead of the whole package folder, the files of src/vaemix
that its script (``python stages/<x>.py`` in its ``cmd``) may import, transitively
(tests/test_code_deps.py: imports inside functions included). An edit to a plotting module
then reruns only the stages that import it. Run after changing what a stage imports;
``--check`` only says whether dvc.yaml is up to date (tests/test_code_deps.py does too).

    python scripts/code_deps.py [--check]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.test_code_deps import _SCRIPT_RE, SRC, import_closure  # noqa: E402

DVC_YAML = ROOT / "dvc.yaml"
_STAGE = re.compile(r"^  ([A-Za-z_][\w-]*):")
_CODE_DEP = re.compile(r"^(\s+)- src/vaemix(/\S*)?\s*$")


def closure_of(script: str) -> list[str]:
    """The files of src/vaemix that ``script`` may import, as dvc.yaml paths, sorted; a
    package folder whose every module is imported is listed as the folder (fewer paths for
    DVC to hash and lock per stage, the same set of files)."""
    files = import_closure(ROOT / script)
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


def rewritten(text: str) -> str:
    """``text`` (dvc.yaml) with every stage's src/vaemix deps replaced by its closure."""
    scripts = {name: _SCRIPT_RE.search(stage["cmd"]).group(1)
               for name, stage in yaml.safe_load(text)["stages"].items()}
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
            out += [f"{code.group(1)}- {path}" for path in closure_of(scripts[stage])]
            written.add(stage)
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    text = DVC_YAML.read_text(encoding="utf-8")
    new = rewritten(text)
    if "--check" in argv:
        if new != text:
            print("dvc.yaml: code deps differ from the stages' imports; run "
                  "python scripts/code_deps.py", file=sys.stderr)
            return 1
        return 0
    DVC_YAML.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The package files a script or module may import, read from the source with ``ast``.

Followed transitively inside ``vaemix``: imports inside functions included, ``from
vaemix.a import b`` where ``b`` may be a submodule, and the ``__init__.py`` of every package
on the way. A method module imported by name (:func:`vaemix.models.model_class`) is not
seen here; its callers add it (scripts/code_deps.py, :func:`vaemix.runs.code_digest`).
"""

from __future__ import annotations

import ast
from pathlib import Path

import vaemix

SRC = Path(vaemix.__file__).resolve().parents[1]


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


def import_closure(*scripts: Path) -> set[Path]:
    """The files of src/vaemix that running ``scripts`` may import, transitively (a script
    under src/ counts itself)."""
    seen = {s.resolve() for s in scripts if s.resolve().is_relative_to(SRC)}
    todo = list(scripts)
    while todo:
        for name in imported_modules(todo.pop()):
            path = module_file(name)
            if path is not None and path not in seen:
                seen.add(path)
                todo.append(path)
    return seen

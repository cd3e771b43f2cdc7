"""Which mixture models exist, found without importing them.

A method is one module of :mod:`vaemix.models` whose file sets ``METHOD`` at its top level
(``METHOD = VaDE``); its id is the module's name (``vaemix/models/vade.py`` is ``vade``).
The other modules there (``base``, ``init``, the autoencoders of ``ae``) are shared code.
Discovery reads the files' text, so that the params checks, the summary and the report can
list the methods without importing torch or any model; :mod:`vaemix.models` imports a
method's module only when that method is built, by name.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

MODELS_DIR = Path(__file__).parent / "models"
_DECLARES = re.compile(r"^METHOD\s*(:[^=\n]*)?=", re.MULTILINE)


@cache
def method_names() -> tuple[str, ...]:
    """The ids of every method module in ``vaemix/models``, sorted."""
    return tuple(sorted(
        p.stem for p in MODELS_DIR.glob("*.py")
        if not p.stem.startswith("_") and _DECLARES.search(p.read_text(encoding="utf-8"))
    ))


def method_file(name: str) -> Path:
    """The module file of method ``name``."""
    return MODELS_DIR / f"{name}.py"

"""Shared entry-point plumbing for the thin scripts in ``stages/``."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from vaemix.errors import VaemixError

# No telemetry from DVC or dvclive, and no attempt to reach the network for it.
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


def run_stage(main: Callable[[list[str]], None], argv: list[str] | None = None) -> None:
    """Run a stage's ``main``; a ``VaemixError`` becomes one line on stderr and exit 2."""
    args = sys.argv[1:] if argv is None else argv
    try:
        main(args)
    except VaemixError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)

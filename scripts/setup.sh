#!/usr/bin/env bash
# Idempotent set-up: a virtual environment in .venv with the exact pins of
# requirements.lock and vaemix installed in editable mode.  Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.lock.sha256
want=$(sha256sum requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  # (the local package mirror warns about every index page it lacks; hide only that;
  # --no-compile: Python compiles a module when it is first imported, not every file of torch
  # now, 91 -> 58 s on a fresh 2-core machine)
  {
    .venv/bin/python -m pip install --quiet --no-compile -r requirements.lock
    .venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
  } 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  echo "$want" > "$stamp"
fi

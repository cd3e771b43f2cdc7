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
  # (the local package mirror warns about every index page it lacks; hide only that.)
  # pip compiles every module to bytecode here, about 30 s: never --no-compile, since where
  # PYTHONDONTWRITEBYTECODE is set (as on CI's machines) nothing caches it later and every
  # process compiles torch anew (import torch 5.7 s instead of 2.7 s; CI 1332 s instead of
  # about 900 s: reports/benchmarks/README.md)
  {
    .venv/bin/python -m pip install --quiet -r requirements.lock
    .venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
  } 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  echo "$want" > "$stamp"
fi

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
  # Every module is compiled to bytecode once, here, on all cores (pip's own compiling is
  # serial: 142 s in all instead of about 90): where PYTHONDONTWRITEBYTECODE is set (as on
  # CI's machines) nothing caches it later, and every stage would compile torch anew (import
  # torch 5.7 s instead of 2.7 s; CI 1332 s: reports/benchmarks/README.md)
  {
    .venv/bin/python -m pip install --quiet --no-compile -r requirements.lock
    .venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
  } 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  .venv/bin/python -m compileall -q -j 0 .venv/lib > /dev/null || true
  echo "$want" > "$stamp"
fi

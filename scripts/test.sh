#!/usr/bin/env bash
# Sets up the environment (if needed) and runs lint and the whole test suite, on two
# pytest-xdist workers of one thread each (the end-to-end `dvc repro` on one, the rest on
# the other; tests/conftest.py orders the slow modules first).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check src stages tests bench scripts examples
# the same kernels on every x86-64 CPU (the gate's reference may come from another one)
. scripts/portable_numerics.sh
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1
.venv/bin/python -c "from vaemix.regress import describe, machine; print('CPU:', describe(machine()))"
.venv/bin/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder "$@"

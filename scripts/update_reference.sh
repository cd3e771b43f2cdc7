#!/usr/bin/env bash
# Remake, on purpose, the reference metrics of CI's regression gate and the spread its
# tolerances come from (scripts/gate_reference.py): the end-to-end test's DAG once per seed
# with the portable kernels, and twice with this CPU's own; about 40 minutes on 2 cores.
# Review `git diff tests/reference/` and commit it with the change that moved the metrics.
# Arguments go to gate_reference.py (--seeds, --native-seeds, --jobs; --refresh FILE... remakes
# only the metrics files a change moved, in minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# CI's numerics (scripts/test.sh): portable kernels, one thread each
. scripts/portable_numerics.sh
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1
.venv/bin/python scripts/gate_reference.py "$@"
git diff --stat -- tests/reference/ || true

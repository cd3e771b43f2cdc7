#!/usr/bin/env bash
# Sets up the environment (if needed) and runs the whole pipeline with `dvc repro`.
# Extra arguments go to `dvc repro` (e.g. a stage name).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
dvc repro "$@"

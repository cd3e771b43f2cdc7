#!/usr/bin/env bash
# Sets up the environment (if needed) and runs the whole pipeline with `dvc repro`.
#   bash scripts/repro.sh                   the full run (params.yaml as committed)
#   bash scripts/repro.sh --profile quick   a named profile (profiles/quick.yaml: the CPU
#                                           run), as a DVC experiment: dvc exp run -S ...
#   bash scripts/repro.sh --portable ...    first pin the CPU kernels (scripts/
#                                           portable_numerics.sh): the same bits on any
#                                           x86-64 CPU at the same thread count, slower
# Other arguments go to dvc (e.g. a stage name, or --force).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
if [ "${1:-}" = "--portable" ]; then
  . scripts/portable_numerics.sh
  shift
fi
if [ "${1:-}" = "--profile" ]; then
  if [ $# -lt 2 ]; then
    echo "error: --profile needs a name (one of: $(ls profiles | sed 's/\.yaml$//' | tr '\n' ' '))" >&2
    exit 2
  fi
  name=$2
  shift 2
  # the profile's keys as -S arguments, checked against params.yaml before anything runs
  overrides=$(python -m vaemix.profiles "$name") || exit 2
  mapfile -t args <<< "$overrides"
  exec dvc exp run "${args[@]}" "$@"
fi
exec dvc repro "$@"

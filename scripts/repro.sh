#!/usr/bin/env bash
# Sets up the environment (if needed) and runs the whole pipeline with `dvc repro`.
#   bash scripts/repro.sh                   the full run (params.yaml as committed)
#   bash scripts/repro.sh --profile quick   a named profile (profiles/quick.yaml: the CPU
#                                           run), as a DVC experiment: dvc exp run -S ...
#   bash scripts/repro.sh --portable ...    first pin the CPU kernels (scripts/
#                                           portable_numerics.sh): the same bits on any
#                                           x86-64 CPU at the same thread count, slower
#   bash scripts/repro.sh --jobs N ...      stages at once (default 2 on 2 or more cores):
#                                           scripts/parallel_repro.py runs the DAG, each
#                                           stage with cores/N threads; --jobs 1 is plain
#                                           `dvc repro`, one stage at a time
# Other arguments go to dvc (e.g. a stage name, or --force); then stages run one at a time.
# A stage name outside the root dvc.yaml gets its file (train@spiral-vade becomes
# pipelines/train/dvc.yaml:train@spiral-vade), as DVC addresses it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
profile=""
jobs=$(( $(nproc) >= 2 ? 2 : 1 ))
while [ $# -gt 0 ]; do
  case "$1" in
    --portable) . scripts/portable_numerics.sh; shift ;;
    --profile)
      if [ $# -lt 2 ]; then
        echo "error: --profile needs a name (one of: $(ls profiles | sed 's/\.yaml$//' | tr '\n' ' '))" >&2
        exit 2
      fi
      profile=$2; shift 2 ;;
    --jobs)
      if ! [[ "${2:-}" =~ ^[1-9][0-9]*$ ]]; then
        echo "error: --jobs needs a whole number of stages, at least 1 (got '${2:-}')" >&2
        exit 2
      fi
      jobs=$2; shift 2 ;;
    *) break ;;
  esac
done
address() {   # a stage's name as DVC addresses it (its dvc.yaml file when not the root's)
  local family=${1%%@*} file
  if [[ "$1" != -* && "$1" != *:* ]]; then
    for file in pipelines/*/dvc.yaml; do
      if grep -q "^  ${family}:" "$file"; then echo "$file:$1"; return; fi
    done
  fi
  echo "$1"
}
targets=()
for arg in "$@"; do targets+=("$(address "$arg")"); done
set -- "${targets[@]}"
args=()
if [ -n "$profile" ]; then
  # the profile's keys as -S arguments, checked against params.yaml before anything runs
  overrides=$(python -m vaemix.profiles "$profile") || exit 2
  mapfile -t args <<< "$overrides"
fi
if [ $# -eq 0 ] && [ "$jobs" -gt 1 ]; then
  python scripts/parallel_repro.py --jobs "$jobs" "${args[@]}"
fi
if [ -n "$profile" ]; then
  exec dvc exp run "${args[@]}" "$@"   # after the parallel run: records it, reruns nothing
fi
exec dvc repro "$@"

#!/usr/bin/env bash
# Sets up the environment (if needed) and runs lint and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check src stages tests bench scripts
.venv/bin/python -m pytest -q "$@"

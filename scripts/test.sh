#!/usr/bin/env bash
# Set up .venv with the test tools, then lint, type-check and run the default test suite.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -m slow` for the real-model runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
.venv/bin/ruff check evalsuite tests bench scripts
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"

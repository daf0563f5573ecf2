"""The default suite, run once per test session (cold cache), for end-to-end tests.

``default_run`` is the results folder of ``evalsuite run tasks/default.yaml`` written
into a temporary folder with a temporary embedding cache; tests that need the same
suite again (a warm re-run, a degraded variant) use ``default_cache`` so they do not
re-encode.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from evalsuite.cli import main

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SUITE = REPO / "tasks" / "default.yaml"


@pytest.fixture(scope="session")
def default_workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A temporary folder; the suite's baseline file (``$EVALSUITE_BASELINE``) points into it."""
    folder = tmp_path_factory.mktemp("default-suite")
    before = os.environ.get("EVALSUITE_BASELINE")
    os.environ["EVALSUITE_BASELINE"] = str(folder / "baseline.json")
    yield folder
    if before is None:
        os.environ.pop("EVALSUITE_BASELINE", None)
    else:
        os.environ["EVALSUITE_BASELINE"] = before


@pytest.fixture(scope="session")
def default_cache(default_workdir: Path) -> Path:
    return default_workdir / "cache"


@pytest.fixture(scope="session")
def default_run(default_workdir: Path, default_cache: Path) -> Path:
    """Results folder of the shipped default suite (gates evaluated, no baseline yet)."""
    out = default_workdir / "reports"
    code = main(["run", str(DEFAULT_SUITE), "--output", str(out), "--cache-dir", str(default_cache),
                 "--no-progress", "--quiet"])
    assert code == 0, "the default suite must pass its own gates on a fresh checkout"
    latest = out / "default" / "latest"
    folder = latest.resolve() if latest.is_symlink() else out / "default" / latest.read_text().strip()
    assert (folder / "results.json").is_file()
    return folder

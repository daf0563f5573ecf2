"""Every bad input of the corpus (cases.py): the contracted exit code, exactly one line on stderr naming
the file (and line or field), no traceback, and nothing left behind (no results folder, store row or
``latest`` change: the whole working folder is compared before and after)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.badinput.cases import CASES, Case
from tests.badinput.runner import run_case
from tests.badinput.world import build


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("world")
    build(root)
    return root


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 80 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, world: Path, tmp_path: Path) -> None:
    outcome = run_case(case, world, tmp_path / "case")
    if case.pending and outcome.verdict(case) != "clean":
        pytest.xfail(f"pending {case.pending}")
    assert outcome.code == case.code, outcome.stderr
    assert "Traceback" not in outcome.stderr
    assert len(outcome.lines) == 1, outcome.stderr
    line = outcome.lines[0]
    assert line.startswith("evalsuite: error: "), line
    for where in case.where:
        assert where in line, line
    assert outcome.changed == [], outcome.changed

"""The CI story end to end, as a team would live it (issue 12), in fresh clones of this repository:

1. first run with ``--update-baseline``: ``baselines/ci.json`` is written where git keeps it;
   commit it;
2. CI checks out a fresh copy; the data path breaks (``EVALSUITE_DATA_DIR`` unset): the optional
   task is skipped, and the regression gate FAILS (exit 1) naming the missing task/system pairs;
3. data back, a degraded retriever: the regression gate FAILS (exit 1);
4. unchanged: exit 0.

Fast: BM25 and the small packaged ONNX model (paraphrase-MiniLM-L3-v2, embeddings from the
session's cache when the default suite ran first) on the shipped golden set, which also plays the
"external data" task through a copy in a temporary data folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from evalsuite.cli import main
from tests.e2e.conftest import REPO

SUITE = """name: ci
k: 100
metrics: [ndcg@10, recall@100]
tasks:
  - {name: shipped, type: golden, path: ../golden_sets/cranfield-50}
  - {name: external, type: beir, path: "${EVALSUITE_DATA_DIR:-../../no-data-here}/c50", optional: true}
retrievers:
  - {name: bm25, type: bm25}
  - {name: small, type: dense, params: {model: paraphrase-MiniLM-L3-v2}}
gates:
  - {name: no-ndcg-regression, metric: ndcg@10, max_drop: 0.02}
"""
# embeddings truncated to 16 of 384 dimensions: a plausible bug, and a clear drop
DEGRADED = SUITE.replace("model: paraphrase-MiniLM-L3-v2}", "model: paraphrase-MiniLM-L3-v2, dim: 16}")

GIT_ENV = {"GIT_AUTHOR_NAME": "ci", "GIT_AUTHOR_EMAIL": "ci@example.org", "GIT_COMMITTER_NAME": "ci",
           "GIT_COMMITTER_EMAIL": "ci@example.org"}


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV})
    return done.stdout


def clone(source: Path, target: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(source), str(target)], check=True, capture_output=True)
    return target


def failures(junit: Path) -> list[str]:
    root = ET.parse(junit).getroot()
    return [str(c.get("name")) for c in root.iter("testcase") if c.find("failure") is not None]


@pytest.fixture
def ci_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, default_cache: Path,
           default_run: Path) -> dict[str, Path]:
    """A data folder, and the session's embedding cache (warm once ``default_run`` has run)."""
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout: the CI story starts from a clone of this repository")
    data = tmp_path / "data"
    shutil.copytree(REPO / "golden_sets" / "cranfield-50", data / "c50")
    monkeypatch.setenv("EVALSUITE_CACHE_DIR", str(default_cache))
    monkeypatch.delenv("EVALSUITE_BASELINE", raising=False)
    return {"tmp": tmp_path, "data": data}


def test_ci_story(ci_env: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                  capsys: pytest.CaptureFixture[str]) -> None:
    tmp, data = ci_env["tmp"], ci_env["data"]
    dev = clone(REPO, tmp / "dev")
    (dev / "tasks" / "ci.yaml").write_text(SUITE)

    # 1. first run, with the data, ratchets the baseline; it lands where git keeps it; commit it
    monkeypatch.chdir(dev)
    monkeypatch.setenv("EVALSUITE_DATA_DIR", str(data))
    assert main(["run", "tasks/ci.yaml", "--update-baseline", "--quiet", "--no-report"]) == 0
    captured = capsys.readouterr()
    assert "no baseline yet" in captured.out and "baseline updated: " in captured.err
    baseline = dev / "baselines" / "ci.json"
    assert baseline.is_file() and baseline.stat().st_size < 200_000  # aggregates + per-query values only
    assert git(dev, "status", "--porcelain", "--", "baselines") == "?? baselines/ci.json\n"  # not gitignored
    git(dev, "add", "tasks/ci.yaml", "baselines/ci.json")
    git(dev, "commit", "-q", "-m", "ci suite and its baseline")

    # 2. CI: a fresh checkout, and the data path is broken
    ci = clone(dev, tmp / "ci")
    monkeypatch.chdir(ci)
    monkeypatch.delenv("EVALSUITE_DATA_DIR")
    junit = tmp / "gates.xml"
    summary = tmp / "summary.md"
    code = main(["run", "tasks/ci.yaml", "--junit", str(junit), "--markdown", str(summary), "--no-report"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "skipped task external" in out
    assert "gates: 2 failed, 0 warnings, 2 passed" in out
    for system in ("bm25", "small"):
        assert f"FAIL  no-ndcg-regression [external / {system}]: MISSING: baseline" in out
        assert f"no-ndcg-regression [external / {system}]" in failures(junit)
    assert "the task was skipped" in summary.read_text()

    # 3. the data is back, and someone degraded BM25: the regression gate fails
    monkeypatch.setenv("EVALSUITE_DATA_DIR", str(data))
    (ci / "tasks" / "ci.yaml").write_text(DEGRADED)
    code = main(["run", "tasks/ci.yaml", "--junit", str(junit), "--no-report"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert sorted(failures(junit)) == ["no-ndcg-regression [external / small]", "no-ndcg-regression [shipped / small]"]
    assert "FAIL  no-ndcg-regression [shipped / small]: REGRESSION: ndcg@10 dropped by" in out

    # 4. unchanged: green
    git(ci, "checkout", "--", "tasks/ci.yaml")
    code = main(["run", "tasks/ci.yaml", "--junit", str(junit), "--no-report"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert failures(junit) == [] and "gates: 0 failed, 0 warnings, 4 passed" in out

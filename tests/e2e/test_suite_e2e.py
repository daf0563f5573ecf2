"""End to end, as CI would use it: the default suite, a warm re-run, a baseline, a regression.

1. ``evalsuite run tasks/default.yaml`` on a fresh cache (the session fixture ``default_run``);
2. a second run re-uses every embedding (0 documents or queries encoded) with identical numbers;
3. ``evalsuite gate --update-baseline`` saves the baseline;
4. a degraded dense retriever (embeddings truncated to 32 dimensions) makes the regression gate
   exit 1, and the JUnit file names the failing gate; the unchanged suite exits 0.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from evalsuite.cli import main
from evalsuite.results import load_results
from tests.conftest import data_dir
from tests.e2e.conftest import DEFAULT_SUITE, REPO


def latest(out: Path, suite: str = "default") -> Path:
    link = out / suite / "latest"
    return link.resolve() if link.is_symlink() else out / suite / link.read_text().strip()


def variant(tmp: Path, *, dim: int | None = None) -> Path:
    """The default suite with absolute paths (so it can live elsewhere), optionally degraded."""
    text = DEFAULT_SUITE.read_text()
    text = text.replace("../golden_sets/cranfield-50", str(REPO / "golden_sets" / "cranfield-50"))
    text = text.replace("../../shared/data", str(data_dir()))
    marker = "  - name: minilm-l6\n    type: dense             # packaged all-MiniLM-L6-v2, exact cosine\n"
    assert marker in text
    if dim is not None:
        text = text.replace(marker, marker + f"    params: {{dim: {dim}}}\n")
    path = tmp / ("default-degraded.yaml" if dim else "default-copy.yaml")
    path.write_text(text)
    return path


def test_default_suite_results(default_run: Path) -> None:
    results = load_results(default_run)
    systems = {s["name"] for s in results.systems}
    assert {"bm25", "minilm-l6", "hybrid"} <= systems
    golden = {c.system: c.aggregate for c in results.cells if c.task == "cranfield-50"}
    assert golden["hybrid"]["ndcg@10"] > max(golden["bm25"]["ndcg@10"], golden["minilm-l6"]["ndcg@10"])
    fine_tune = [g for g in results.gates if g["gate"] == "fine-tune-needed"]
    assert fine_tune and fine_tune[0]["decision"] in ("FINE-TUNE RECOMMENDED", "BASELINE ADEQUATE")
    assert all(g["status"] != "fail" for g in results.gates)


def test_warm_rerun_encodes_nothing_and_agrees(default_run: Path, default_cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    code = main(["run", str(DEFAULT_SUITE), "--output", str(out), "--cache-dir", str(default_cache),
                 "--no-progress", "--quiet"])
    assert code == 0
    cold, warm = load_results(default_run), load_results(latest(out))
    dense = [c for c in warm.cells if c.kind == "retrieval" and "docs_encoded" in c.stats]
    assert dense, "the default suite has dense retrievers"
    for cell in dense:
        assert cell.stats["docs_encoded"] == 0 and cell.stats["queries_encoded"] == 0, (cell.task, cell.system)
        assert cell.stats["docs_from_cache"] > 0
    for cell in warm.cells:
        assert cell.aggregate == pytest.approx(cold.cell(cell.task, cell.system).aggregate, abs=1e-12)


def test_regression_gate_blocks_a_degraded_retriever(default_run: Path, default_cache: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    baseline = Path(os.environ["EVALSUITE_BASELINE"])
    code = main(["gate", str(default_run), "--suite", str(DEFAULT_SUITE), "--update-baseline", str(baseline)])
    capsys.readouterr()
    assert code == 0 and json.loads(baseline.read_text())["run_id"] == load_results(default_run).run_id

    out = tmp_path / "reports"
    args = ["--output", str(out), "--cache-dir", str(default_cache), "--no-progress", "--quiet",
            "--task", "cranfield-50"]
    code = main(["run", str(variant(tmp_path, dim=32)), *args])
    printed = capsys.readouterr().out
    assert code == 1, printed
    junit = ET.parse(latest(out) / "gates.junit.xml").getroot()
    failed = [case.get("name") for case in junit.iter("testcase") if case.find("failure") is not None]
    assert "no-ndcg-regression [cranfield-50 / minilm-l6]" in failed
    assert all("minilm-l3" not in name and "bm25]" not in name for name in failed)  # untouched systems pass
    assert "FAIL  no-ndcg-regression [cranfield-50 / minilm-l6]" in printed

    code = main(["run", str(variant(tmp_path)), *args])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "FAIL" not in printed

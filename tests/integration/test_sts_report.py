"""Real data: the STS task of a suite run (STS Benchmark test pairs, the two packaged dense
models) gets a tested verdict, in the report `evalsuite run` writes and in the one
`evalsuite report` re-renders from results.json: a CI over sentence pairs and a paired
bootstrap, never "no test: these results hold no per-pair scores"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalsuite.cli import main
from evalsuite.report import build_report
from evalsuite.results import load_results
from tests.conftest import data_dir

PAIRS = 150  # the first pairs of sts-test.csv: enough for a CI, quick to encode with both models


@pytest.fixture(scope="module")
def sts_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = data_dir() / "stsb" / "sts-test.csv"
    if not source.is_file():
        pytest.skip(f"STS Benchmark not found at {source} (set EVALSUITE_DATA_DIR; see README 'Data')")
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)[:PAIRS]
    path = tmp_path_factory.mktemp("stsb") / "sts-test.csv"
    path.write_text("".join(lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def run_folder(sts_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("suite")
    suite = root / "sts.yaml"
    suite.write_text(f"""
name: sts
metrics: [ndcg@10]
tasks:
  - name: stsb
    type: sts
    path: {sts_file}
retrievers:
  - name: bm25
    type: bm25
  - name: minilm-l6
    type: dense
  - name: minilm-l3
    type: dense
    params:
      model: paraphrase-MiniLM-L3-v2
output: out
""")
    code = main(["run", str(suite), "--cache-dir", str(root / "cache"), "--no-progress", "-q"])
    assert code == 0
    (folder,) = (p for p in (root / "out" / "sts").iterdir() if p.is_dir() and not p.is_symlink())
    return folder


def _assert_tested(markdown: str, html: str) -> None:
    assert "no per-pair scores" not in markdown and "no per-pair scores" not in html
    assert "no test" not in markdown
    headline = next(line for line in markdown.splitlines() if line.startswith("**stsb: "))
    assert "95% CI" in headline and f"over {PAIRS} sentence pairs" in headline
    assert "paired bootstrap over sentence pairs" in markdown
    assert "p = " in markdown


def test_results_json_keeps_the_pair_scores(run_folder: Path) -> None:
    data = json.loads((run_folder / "results.json").read_text())
    scored = {c["system"]: c.get("pair_scores") or {} for c in data["results"] if c["task"] == "stsb"}
    for system in ("minilm-l6", "minilm-l3"):
        assert len(scored[system]["predicted"]) == len(scored[system]["gold"]) == PAIRS
    assert not scored["bm25"]


def test_sts_verdict_is_tested_in_the_run_report(run_folder: Path) -> None:
    _assert_tested((run_folder / "report.md").read_text(), (run_folder / "report.html").read_text())
    verdict = next(v for v in build_report(load_results(run_folder), n_resamples=200).verdicts
                   if v.task == "stsb")
    assert verdict.ci is not None and verdict.n == PAIRS
    (standing,) = verdict.standings
    assert standing.tested and not standing.reason


def test_sts_verdict_is_tested_when_re_rendered_from_results_json(run_folder: Path, tmp_path: Path) -> None:
    html, md = tmp_path / "again.html", tmp_path / "again.md"
    assert main(["report", str(run_folder / "results.json"), "-o", str(html), "--markdown", str(md),
                 "--resamples", "500"]) == 0
    _assert_tested(md.read_text(), html.read_text())

"""The suite runner and the run / gate / history commands, on small suites that need no model."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from evalsuite.cli import main
from evalsuite.config import load_suite
from evalsuite.io import read_qrels, read_run
from evalsuite.metrics.evaluate import evaluate
from evalsuite.results import load_results
from evalsuite.runner import RunOptions, run_suite
from evalsuite.store import ResultsStore

GOLDEN = Path(__file__).resolve().parents[2] / "golden_sets" / "cranfield-50"

SUITE = f"""
name: small
metrics: [ndcg@10, recall@100, mrr@10]
tasks:
  - name: golden
    type: golden
    path: {GOLDEN}
retrievers:
  - name: bm25
    type: bm25
  - name: bm25-k1
    type: bm25
    params: {{k1: 0.9, b: 0.4}}
  - name: fused
    type: hybrid
    params: {{retrievers: [bm25, bm25-k1], method: rrf}}
gates:
  - name: floor
    metric: ndcg@10
    below: 0.99
    system: bm25
    decision: NEVER
    on_fire: warn
output: out
"""


def write_suite(folder: Path, text: str = SUITE, name: str = "small.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def result_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_dir() and p.name != "runs" and p.name != "details"
                  and not p.is_symlink() and p.parent.name != "out") if root.exists() else []


def test_run_writes_everything_and_numbers_match_the_run_files(tmp_path: Path) -> None:
    suite = load_suite(write_suite(tmp_path))
    results = run_suite(suite, RunOptions(progress=False))
    folder = Path(results.path or "").parent
    assert folder.parent == tmp_path / "out" / "small"
    assert (folder.parent / "latest").resolve() == folder.resolve()
    saved = load_results(folder)
    assert saved.run_id == results.run_id and {c.system for c in saved.cells} == {"bm25", "bm25-k1", "fused"}
    qrels = read_qrels(GOLDEN / "qrels" / "test.tsv")
    for cell in saved.cells:
        assert cell.run_file is not None
        run = read_run(folder / cell.run_file)
        again = evaluate(qrels, run, ["ndcg@10", "recall@100", "mrr@10"])
        for metric, value in again.aggregate.items():
            assert cell.aggregate[metric] == pytest.approx(value, abs=1e-12)
    with open(folder / "per_query.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 * 50 and set(rows[0]) == {"task", "system", "query_id", "ndcg@10", "recall@100", "mrr@10"}
    details = json.loads((folder / "details" / "golden.json").read_text())
    assert len(details["queries"]) == 50 and details["docs"]
    info = saved.tasks[0]
    assert info["content_hash"] and info["n_queries"] == 50 and "leakage" in info
    env = saved.environment
    assert env["evalsuite"] and "numpy" in env["packages"]
    assert saved.systems[2]["meta"]["kind"] == "hybrid"
    stored = ResultsStore(tmp_path / "out" / "history.sqlite").get(results.run_id)
    assert stored.cell("golden", "bm25").aggregate == saved.cell("golden", "bm25").aggregate


def test_cli_run_prints_table_gates_and_exits_zero_on_warn(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "run", str(write_suite(tmp_path)), "--no-progress")
    assert code == 0, err
    assert "bm25" in out and "ndcg@10" in out
    assert "WARN  floor [golden / bm25]: NEVER" in out
    folder = Path(out.strip().splitlines()[-1].split("results: ")[1])
    gates = json.loads((folder / "gates.json").read_text())
    assert gates["exit_code"] == 0 and gates["counts"]["warn"] == 1
    assert load_results(folder).gates[0]["decision"] == "NEVER"
    assert "<testcase" in (folder / "gates.junit.xml").read_text()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("type: bm25\n  - name: bm25-k1", "type: bm52\n  - name: bm25-k1"), "did you mean 'bm25'"),
        (("[ndcg@10, recall@100, mrr@10]", "[ndgc@10]"), "did you mean 'ndcg@10'"),
        ((str(GOLDEN), "/nonexistent/golden"), "data not found"),
        (("params: {k1: 0.9, b: 0.4}", "params: {k1: 0.9, bb: 0.4}"), "has no parameter 'bb'; did you mean 'b'"),
        (("retrievers: [bm25, bm25-k1]", "retrievers: [bm25, bm26]"), "'bm26' is neither a retriever"),
    ],
)
def test_bad_suite_is_one_line_exit_2_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         edit: tuple[str, str], message: str) -> None:
    assert edit[0] in SUITE
    path = write_suite(tmp_path, SUITE.replace(*edit))
    code, _, err = run_cli(capsys, "run", str(path), "--no-progress")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("evalsuite: error: ") and message in lines[0], err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("results.json"))


def test_failure_mid_run_leaves_no_partial_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad-golden"
    bad.mkdir()
    for name in ("corpus.jsonl", "queries.jsonl"):
        (bad / name).write_text((GOLDEN / name).read_text())
    (bad / "qrels").mkdir()
    (bad / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\t184\tmany\n")
    text = SUITE.replace("tasks:\n", f"tasks:\n  - name: broken\n    type: golden\n    path: {bad}\n")
    code, _, err = run_cli(capsys, "run", str(write_suite(tmp_path, text)), "--no-progress")
    assert code == 2 and "test.tsv:2" in err
    suite_folder = tmp_path / "out" / "small"
    assert not suite_folder.exists() or list(suite_folder.iterdir()) == []


def test_optional_task_with_missing_data_is_skipped_with_a_note(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    text = SUITE.replace("tasks:\n", "tasks:\n  - name: extra\n    type: beir\n    path: ${NO_SUCH_VAR:-/nonexistent}"
                                     "/cranfield\n    optional: true\n")
    code, out, _ = run_cli(capsys, "run", str(write_suite(tmp_path, text)), "--no-progress", "--system", "bm25")
    assert code == 0
    assert "skipped task extra" in out and "/nonexistent/cranfield" in out


def test_history_lists_shows_and_compares(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_suite(tmp_path)
    first = run_suite(load_suite(path), RunOptions(progress=False))
    second = run_suite(load_suite(path), RunOptions(progress=False, only_systems=["bm25"]))
    store = str(tmp_path / "out" / "history.sqlite")
    code, out, _ = run_cli(capsys, "history", "--store", store)
    assert code == 0 and first.run_id in out and second.run_id in out
    code, out, _ = run_cli(capsys, "history", first.run_id[:20], "--store", store)
    assert code == 0 and "bm25-k1" in out
    code, out, _ = run_cli(capsys, "history", first.run_id, second.run_id, "--store", store)
    assert code == 0
    rows = [line.split() for line in out.splitlines()[2:]]
    assert {r[1] for r in rows} == {"bm25"} and all(r[5] == "+0.0000" for r in rows)
    code, _, err = run_cli(capsys, "history", "nope", "--store", store)
    assert code == 2 and "no run with id 'nope'" in err


def test_gate_command_ratchets_the_baseline_explicitly(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the default baseline is baselines/<suite>.json in the current directory
    text = SUITE + "  - name: regress\n    metric: ndcg@10\n    max_drop: 0.01\n"
    text = text.replace("output: out\n", "") + "output: out\n"
    path = write_suite(tmp_path, text)
    results = run_suite(load_suite(path), RunOptions(progress=False))
    folder = str(Path(results.path or "").parent)
    baseline = tmp_path / "baseline.json"
    junit = tmp_path / "gates.xml"
    code, out, _ = run_cli(capsys, "gate", folder, "--suite", str(path), "--junit", str(junit))
    # no baseline named, and baselines/small.json not there yet: a warning that says how to create it
    assert code == 0 and f"no baseline yet: {tmp_path / 'baselines' / 'small.json'} does not exist" in out
    code, _, err = run_cli(capsys, "gate", folder, "--suite", str(path), "--baseline", folder,
                           "--update-baseline", str(baseline))
    assert code == 0 and baseline.is_file() and "baseline updated" in err
    code, out, _ = run_cli(capsys, "gate", folder, "--suite", str(path), "--baseline", str(baseline),
                           "--junit", str(junit))
    assert code == 0 and "PASS  regress [golden / fused]" in out
    assert junit.read_text().count("<testcase") == 4


def test_mteb_task_in_a_suite_agrees_with_the_native_task(tmp_path: Path) -> None:
    text = SUITE.replace("tasks:\n", f"tasks:\n  - name: golden-mteb\n    type: mteb\n    mteb_task: Cranfield50\n"
                                     f"    path: {GOLDEN}\n")
    suite = load_suite(write_suite(tmp_path, text))
    results = run_suite(suite, RunOptions(progress=False, only_systems=["bm25"]))
    native, mteb = results.cell("golden", "bm25"), results.cell("golden-mteb", "bm25")
    assert set(mteb.aggregate) == {"ndcg@10", "recall@100", "mrr@10"}
    for metric, value in native.aggregate.items():
        assert mteb.aggregate[metric] == pytest.approx(value, abs=1e-5)  # mteb rounds to 5 decimals
    assert any("computed by mteb" in note for note in mteb.notes)
    assert mteb.run_file is not None and (Path(results.path or "").parent / mteb.run_file).is_file()


def test_rerank_over_a_suite_retriever_runs_in_a_suite(tmp_path: Path) -> None:
    """A composite whose first stage is also a system of the suite: indexed once, reranked."""
    from tests._tinymodel import save_tiny_bert

    model = save_tiny_bert(tmp_path / "ce")
    spec = f"  - name: reranked\n    type: rerank\n    params: {{first_stage: bm25, model: {model}, top_n: 5}}\n"
    text = SUITE.replace("gates:", spec + "gates:")
    results = run_suite(load_suite(write_suite(tmp_path, text)), RunOptions(progress=False))
    first, reranked = results.cell("golden", "bm25"), results.cell("golden", "reranked")
    assert reranked.aggregate["recall@100"] == pytest.approx(first.aggregate["recall@100"], abs=1e-12)
    label = next(s["meta"]["label"] for s in results.systems if s["name"] == "reranked")
    assert str(model) in label or Path(model).name in label

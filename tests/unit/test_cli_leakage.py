"""`evalsuite check-leakage` and `evalsuite validate` on the shipped golden set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalsuite.cli import main
from evalsuite.tasks.golden import load_golden_set

GOLDEN = Path(__file__).resolve().parents[2] / "golden_sets" / "cranfield-50"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write_pairs(path: Path, pairs: list[tuple[str, str]]) -> Path:
    path.write_text("".join(json.dumps({"query": q, "positive": p}) + "\n" for q, p in pairs))
    return path


def test_overlap_fails_the_rate_gate_and_names_the_queries(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = load_golden_set(GOLDEN)
    ids = data.queries.ids.tolist()[:5]
    leaked = [(str(data.queries[q]).upper(), "some unrelated positive text about turbines") for q in ids]
    pairs = write_pairs(tmp_path / "train.jsonl", [*leaked, ("how do birds fly", "wings generate lift")])
    code, out, _ = run_cli(capsys, "check-leakage", str(GOLDEN), "--train", str(pairs), "--max-rate", "0.05")
    assert code == 1
    assert "leakage rate 10.0% (5 evaluated queries affected)" in out and "FAIL" in out
    code, out, _ = run_cli(capsys, "check-leakage", str(GOLDEN), "--train", str(pairs), "--format", "json")
    report = json.loads(out)
    exact = next(f for f in report["findings"] if f["check"] == "train_eval_query_exact")
    assert code == 0 and exact["count"] == 5 and exact["affected_queries"] == 5


def test_clean_pairs_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pairs = write_pairs(tmp_path / "train.jsonl", [("how do birds fly", "wings generate lift"),
                                                   ("what is a good espresso grind", "fine, like table salt")])
    code, out, _ = run_cli(capsys, "check-leakage", str(GOLDEN), "--train", str(pairs), "--max-rate", "0")
    assert code == 0 and "PASS: leakage rate 0.0%" in out


def test_bad_training_file_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "train.jsonl"
    bad.write_text('{"query": "q", "positive": "p"}\n{"query": "q2"}\n')
    code, _, err = run_cli(capsys, "check-leakage", str(GOLDEN), "--train", str(bad))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "train.jsonl:2" in err


def test_validate_lists_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "validate", str(GOLDEN))
    assert code == 0 and "50 queries" in out
    (tmp_path / "corpus.jsonl").write_text('{"_id": "d1", "text": "a"}\n{"_id": "d1", "text": "b"}\n')
    (tmp_path / "queries.jsonl").write_text('{"_id": "q1", "text": ""}\n')
    (tmp_path / "judgements.tsv").write_text("query_id\tdoc_id\tgrade\nq1\td9\t1\nq1\td1\ttwo\n")
    code, out, err = run_cli(capsys, "validate", str(tmp_path))
    assert len(err.strip().splitlines()) == 1 and "problem(s)" in err
    lines = out.strip().splitlines()
    assert code == 2
    assert any("corpus.jsonl:2" in line for line in lines) and any("queries.jsonl:1" in line for line in lines)
    assert any("judgements.tsv:2" in line for line in lines) and any("judgements.tsv:3" in line for line in lines)

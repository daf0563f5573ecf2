"""The command line: output formats, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evalsuite.cli import main

GOLDEN = Path(__file__).resolve().parents[2] / "golden_sets" / "cranfield-50"
QRELS = str(GOLDEN / "qrels" / "test.tsv")
BM25 = str(GOLDEN / "runs" / "bm25.trec")
MINILM = str(GOLDEN / "runs" / "minilm.trec")


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_table_has_a_row_per_run(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "evaluate", "--qrels", QRELS, "--run", BM25, "--run", MINILM,
                             "-m", "ndcg@10", "-m", "recall@100")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["run", "ndcg@10", "recall@100", "queries"]
    assert [line.split()[0] for line in lines[1:]] == ["bm25", "minilm"]
    assert all(len(cell.split(".")[-1]) == 4 for cell in lines[1].split()[1:3])  # rounded for display only


def test_positional_form_and_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "evaluate", QRELS, BM25)
    assert code == 0
    assert out.splitlines()[0].split() == ["run", "ndcg@10", "recall@100", "map", "mrr@10", "P@10", "queries"]


def test_json_carries_full_precision_and_per_query(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "evaluate", QRELS, BM25, "-m", "map", "-q", "--format", "json")
    assert code == 0
    payload = json.loads(out)
    run = payload["runs"][0]
    assert run["run"] == "bm25" and len(run["per_query"]) == 50
    mean = sum(v["map"] for v in run["per_query"].values()) / 50
    assert run["aggregate"]["map"] == pytest.approx(mean, abs=1e-12)


def test_csv_per_query_ends_with_all_row(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "evaluate", QRELS, BM25, "-m", "P@5", "-q", "--format", "csv")
    assert code == 0
    rows = out.splitlines()
    assert rows[0] == "run,query_id,P@5" and rows[-1].startswith("bm25,all,") and len(rows) == 52


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["evaluate", QRELS, BM25, "-m", "ndgc@10"], "unknown metric 'ndgc@10'; did you mean 'ndcg@10'"),
        (["evaluate", QRELS], "needs a qrels file and at least one run file"),
        (["evaluate", "/no/such/qrels", BM25], "/no/such/qrels: qrels file not found"),
    ],
)
def test_user_errors_are_one_line_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert err.startswith("evalsuite: error: ") and message in err and err.count("\n") == 1


def test_bad_run_file_from_a_real_process(tmp_path: Path) -> None:
    bad = tmp_path / "bad.trec"
    bad.write_text("q1 Q0 d1 1 0.5 t\nq1 Q0 d2 2 high t\n")
    proc = subprocess.run([sys.executable, "-m", "evalsuite", "evaluate", QRELS, str(bad)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert proc.stderr == f"evalsuite: error: {bad}:2: score 'high' is not a number " \
                          "(each line must be: query_id Q0 doc_id rank score run_tag)\n"
    assert proc.stdout == ""


def test_notes_about_missing_and_ignored_queries(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    run = tmp_path / "partial.trec"
    run.write_text("".join(line + "\n" for line in Path(BM25).read_text().splitlines()[:150])
                   + "zzz Q0 1 1 1.0 bm25\n")
    code, _, err = run_cli(capsys, "evaluate", QRELS, str(run), "-m", "map")
    assert code == 0
    assert "judged queries missing from the run scored 0" in err and "1 run query not in the qrels ignored" in err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    with pytest.raises(SystemExit) as info:
        main(["evaluate", "--format", "xml", QRELS, BM25])
    assert info.value.code == 2


def test_metrics_listing(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "metrics")
    assert code == 0 and "ndcg@k" in out and "recip_rank" in out
    assert "``" not in out and "map@10" not in out  # plain text; map is listed as map, map@k


SWEEP_SUITE = ("name: s\ntasks:\n  - {name: t, type: golden, path: nowhere}\nretrievers:\n"
               "  - {name: bm25, type: bm25}\n"
               "  - {name: m, type: dense, sweep: {dim: [128, 64], precision: [float32, int8]}}\n"
               "  - {name: full, type: dense, sweep: {precision: [ubinary]}}\n")


def test_baseline_system_may_name_a_sweep_point(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from evalsuite.cli import _check_baseline_system
    from evalsuite.config import load_suite
    from evalsuite.errors import ConfigError, UnknownNameError

    path = tmp_path / "s.yaml"
    path.write_text(SWEEP_SUITE)
    suite = load_suite(path)
    for name in ("bm25", "m@128/int8/flat", "m@64/float32/flat", "full@384/ubinary/flat"):
        _check_baseline_system(suite, name, [])  # no error
    _check_baseline_system(suite, "m@128/int8/flat", ["m"])  # --system m keeps all of m's points
    _check_baseline_system(suite, "m@128/int8/flat", ["m@128/int8/flat"])
    with pytest.raises(UnknownNameError, match=r"did you mean 'm@128/int8/flat'"):
        _check_baseline_system(suite, "m@128/int9/flat", [])
    with pytest.raises(UnknownNameError, match="--baseline-system 'm@128/int8/flat'"):
        _check_baseline_system(suite, "m@128/int8/flat", ["bm25"])  # left out by --system
    with pytest.raises(ConfigError, match=r"'m' is a sweep of 4 points.*'m@128/float32/flat'"):
        _check_baseline_system(suite, "m", [])
    # through the command line: refused before any work (the task's path does not exist)
    assert main(["run", str(path), "-q", "--baseline-system", "m@128/int9/flat"]) != 0
    assert "did you mean 'm@128/int8/flat'" in capsys.readouterr().err


def test_point_names_of_the_full_dimension_match_any_dimension() -> None:
    from evalsuite.retrievers.sweep import matches_point_name, point_names

    names = point_names("full", {"precision": ["ubinary"], "rescore": [1, 4]})
    assert names == ["full@full/ubinary/flat", "full@full/ubinary+rescore4/flat"]
    assert matches_point_name("full@768/ubinary+rescore4/flat", names[1])
    assert not matches_point_name("full@768/ubinary/flat", names[1])
    assert not matches_point_name("full@x/ubinary/flat", names[0])
    assert not matches_point_name("fullish@384/ubinary/flat", names[0])


def test_a_full_disk_names_the_file_and_only_a_flag_the_command_has() -> None:
    """``evaluate > /dev/full`` fails writing standard output: no file to name, and evaluate has
    no --output, so the hint must not send the user to one."""
    import errno

    from evalsuite.exitcodes import describe_os_error

    to_stdout = describe_os_error(OSError(errno.ENOSPC, "No space left on device"))
    assert to_stdout == "No space left on device (free some space or write the output elsewhere)"
    to_file = describe_os_error(OSError(errno.ENOSPC, "No space left on device", "/mnt/r/results.json"))
    assert to_file == "/mnt/r/results.json: No space left on device (free some space or choose another --output)"
    read_only = describe_os_error(OSError(errno.EROFS, "Read-only file system", "/mnt/r/x"))
    assert read_only.endswith("(the file system is read-only; choose another --output or --cache-dir)")


def test_gate_outputs_dash_is_standard_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """``gate --markdown -`` (as ``report --markdown -``) prints the summary; it wrote a file named '-'."""
    from tests.badinput.world import build, run_folder

    build(tmp_path)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    code = main(["gate", str(run_folder(tmp_path)), "--markdown", "-", "--json", "-"])
    out = capsys.readouterr().out
    assert code == 0 and not (tmp_path / "-").exists()
    assert out.index("gates:") < out.index("| ") < out.index('"gates"')  # the gates, the Markdown, the JSON


def test_a_full_disk_hint_names_the_flag_that_chose_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """``gate --markdown /dev/full`` said '(free some space or choose another --output)': gate has no
    --output; the flag that named the file is --markdown."""
    from tests.badinput.world import build, run_folder

    build(tmp_path)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["gate", str(run_folder(tmp_path)), "--markdown", "/dev/full"]) == 2
    err = capsys.readouterr().err
    assert "/dev/full: No space left on device (free some space or choose another --markdown)" in err, err
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", "/dev/full")  # appended to, not replaced: named all the same
    assert main(["gate", str(run_folder(tmp_path)), "--markdown", "/dev/full"]) == 2
    err = capsys.readouterr().err
    assert "/dev/full: No space left on device (free some space or choose another --markdown)" in err, err


def test_own_warnings_are_one_line_others_as_python_prints_them(capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import warnings

    import evalsuite
    from evalsuite.cli import _show_own_warnings_as_lines

    passed_on: list[tuple[str, int]] = []
    monkeypatch.setattr(warnings, "showwarning", lambda message, category, filename, lineno, file=None, line=None:
                        passed_on.append((filename, lineno)))
    before = warnings.showwarning
    inside = str(Path(evalsuite.__file__).parent / "metrics" / "memo.py")
    undo = _show_own_warnings_as_lines()
    try:
        warnings.showwarning(RuntimeWarning("memo not usable (read-only)"), RuntimeWarning, inside, 154)
        warnings.showwarning(UserWarning("from elsewhere"), UserWarning, "/elsewhere/pkg/mod.py", 7)
    finally:
        undo()
    assert warnings.showwarning is before
    assert capsys.readouterr().err == "evalsuite: warning: memo not usable (read-only)\n"
    assert passed_on == [("/elsewhere/pkg/mod.py", 7)]

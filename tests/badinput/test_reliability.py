"""The reliability rules of issue 13 that are not a single bad input: the exit-code contract for crashes,
literal run-id prefixes and a locked store, the leakage-rate denominator, TSV without quoting (and the
golden TSV reader agreeing with the BEIR one), the STS CSV/TSV reader, bounded corrupt cache files,
killed ONNX exports, and bounded YAML alias expansion."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalsuite.cli import main
from evalsuite.errors import DataError
from tests.badinput.cases import alias_bomb


def test_an_unexpected_exception_exits_3_with_one_line_and_the_traceback_in_a_file(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import evalsuite.cli as cli

    def boom(args: object) -> int:
        raise RuntimeError("something impossible")

    monkeypatch.setattr(cli, "_cmd_metrics", boom)
    assert main(["metrics"]) == 3
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "internal error (a bug in evalsuite" in lines[0] and "--debug" in lines[0]
    crash = Path(lines[0].split("traceback written to ")[1].split(";")[0])
    try:
        text = crash.read_text()
        assert "Traceback" in text and "RuntimeError: something impossible" in text and "boom" in text
    finally:
        crash.unlink()
    assert main(["--debug", "metrics"]) == 3
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert main(["metrics", "--debug"]) == 3
    err += capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "RuntimeError: something impossible" in err
    for leftover in Path(err.split("traceback written to ")[1].split(";")[0].strip()).parent.glob(
            "evalsuite-crash-*"):
        if "something impossible" in leftover.read_text():
            leftover.unlink()


def _store_with(path: Path, ids: list[str]) -> None:
    from evalsuite.results import SuiteResults
    from evalsuite.store import ResultsStore

    store = ResultsStore(path)
    for run_id in ids:
        store.add(SuiteResults(suite="s", run_id=run_id, created="2026", metrics=["map"], environment={}, tasks=[],
                               systems=[], cells=[]))


def test_run_id_prefixes_match_literally(tmp_path: Path) -> None:
    from evalsuite.store import ResultsStore

    _store_with(tmp_path / "h.sqlite", ["a_b", "axb", "Abc"])
    store = ResultsStore(tmp_path / "h.sqlite")
    assert store.get("a_").run_id == "a_b"  # '_' is not a wildcard
    for pattern in ("%", "_", "a%", "ab"):  # '%' is not a wildcard; no case folding ('ab' is not 'Abc')
        with pytest.raises(DataError, match="no run with id"):
            store.get(pattern)
    with pytest.raises(DataError, match="matches 2 runs"):
        store.get("a")


def test_a_locked_store_is_waited_for_then_reported_as_locked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import evalsuite.store as store_module

    _store_with(tmp_path / "h.sqlite", ["r1"])
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT", 0.2)
    holder = sqlite3.connect(tmp_path / "h.sqlite")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        with pytest.raises(DataError, match="locked by another process") as info:
            store_module.ResultsStore(tmp_path / "h.sqlite").check()
        assert time.monotonic() - started >= 0.15 and "not a readable" not in str(info.value)
    finally:
        holder.rollback()
        holder.close()


def _golden(folder: Path, judgements: str) -> Path:
    folder.mkdir()
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": f"d{i}", "text": f"document number {i} text"})
                                                 + "\n" for i in range(1, 6)))
    queries = ["how do swept wings produce lift", "shock waves in supersonic flow", "laminar boundary heat",
               "panel flutter at high speed"]
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{i}", "text": t}) + "\n"
                                                  for i, t in enumerate(queries, 1)))
    (folder / "judgements.tsv").write_text(judgements)
    return folder


def test_leakage_rate_counts_only_evaluated_queries(tmp_path: Path) -> None:
    from evalsuite.metrics.leakage import TrainingPairs, check_leakage
    from evalsuite.tasks.golden import load_golden_set

    # q1 and q2 have relevant judgements; q3 is judged not relevant only; q4 is not judged
    data = load_golden_set(_golden(tmp_path / "g", "query_id\tdoc_id\tgrade\nq1\td1\t1\nq2\td2\t2\nq3\td3\t0\n"))
    training = TrainingPairs(("How do swept wings produce lift?", "panel flutter at high speed",
                              "laminar boundary heat"), ("a", "b", "c"), (None, None, None))
    report = check_leakage(data, training)
    exact = next(f for f in report.findings if f.check == "train_eval_query_exact")
    assert exact.count == 1 and exact.affected_queries == {"q1"}  # q3, q4 are not evaluated: no leak reported
    assert report.n_queries == 4 and report.n_evaluated == 2
    assert report.leakage_rate == pytest.approx(1 / 2)  # not 1/4


def test_tab_separated_files_are_read_without_quoting(tmp_path: Path) -> None:
    from evalsuite.metrics.leakage import read_training_pairs
    from evalsuite.tasks.sts import load_sts

    pairs = tmp_path / "p.tsv"
    pairs.write_text('query\tpositive\n"quoted start\tit says "hi"\nplain\tsecond "line\n')
    read = read_training_pairs(pairs)
    assert read.queries == ('"quoted start', "plain") and read.positives == ('it says "hi"', 'second "line')
    sts = tmp_path / "s.tsv"
    sts.write_text('sentence1\tsentence2\tscore\n"a\tb"\t1.5\nc\td\t2\n')
    data = load_sts(sts)
    assert data.sentences1 == ('"a', "c") and data.sentences2 == ('b"', "d") and list(data.scores) == [1.5, 2.0]


def test_sts_reader_reads_csv_and_tsv_with_a_header(tmp_path: Path) -> None:
    from evalsuite.tasks.sts import load_sts

    csv_file = tmp_path / "s.csv"
    csv_file.write_text('sentence1,sentence2,score\n"a, b",c,1\nd,e,4.5\n')
    data = load_sts(csv_file)
    assert data.sentences1 == ("a, b", "d") and list(data.scores) == [1.0, 4.5]
    tsv = tmp_path / "t.tsv"
    tsv.write_text("score\ttext1\ttext2\n3\tx\ty\n1\tz\tw\n")
    assert load_sts(tsv).sentences2 == ("y", "w")


ID = st.text(alphabet=st.sampled_from('ab1_-."\' \u00e9\x07'), min_size=0, max_size=4)
GRADE = st.one_of(st.integers(-3, 5).map(str), st.sampled_from(["1.0", "x", "", "99999999999999999999", "1e30",
                                                                 " 2", "1.5"]))


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(ID, ID, GRADE), min_size=1, max_size=6))
def test_golden_tsv_and_beir_readers_agree(rows: list[tuple[str, str, str]]) -> None:
    """The same qrels TSV read as a golden set's judgements and as BEIR qrels: same judgements, or both refuse."""
    import shutil
    import tempfile

    from evalsuite.io import read_beir_qrels
    from evalsuite.tasks.golden import _Builder, _read_judgements

    folder = Path(tempfile.mkdtemp())
    try:
        path = folder / "judgements.tsv"
        path.write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{g}\n" for q, d, g in rows))
        try:
            beir: dict[str, dict[str, int]] | None = read_beir_qrels(path).to_dict()
        except DataError:
            beir = None
        builder = _Builder()
        _read_judgements(builder, path)
        if builder.problems.items:
            golden = None
        else:
            golden = {}
            for (q, d), g in builder.judgements.items():
                golden.setdefault(q, {})[d] = g
        assert golden == beir, (rows, golden, beir)
    finally:
        shutil.rmtree(folder)


def test_corrupt_cache_files_are_bounded(tmp_path: Path) -> None:
    from evalsuite.retrievers.cache import KEEP_CORRUPT, EmbeddingCache

    cache = EmbeddingCache(tmp_path)
    fingerprint = {"model": "m"}
    path = cache.path_for(fingerprint)
    for i in range(KEEP_CORRUPT + 3):
        path.write_bytes(b"this is not a database" * 100)
        old = path.with_suffix(f".corrupt-{1000 + i}")
        if i < 3:  # older leftovers from earlier runs
            old.write_bytes(b"x")
            os.utime(old, (1000 + i, 1000 + i))
        cache.put_many(fingerprint, {})  # no-op: nothing to store
        cache.get_many(fingerprint, ["k"])  # opens it: detects the damage, moves it aside
    assert len(list(tmp_path.glob("*.corrupt-*"))) <= KEEP_CORRUPT


def test_exports_left_by_dead_processes_are_removed(tmp_path: Path) -> None:
    from evalsuite.retrievers.encoders import _remove_dead_partials

    target = tmp_path / "model.onnx"
    dead = tmp_path / ".model.onnx.999999999.partial"  # no such pid
    mine = tmp_path / f".model.onnx.{os.getpid()}.partial"
    live = tmp_path / ".model.onnx.1.partial"  # pid 1 is alive
    for f in (dead, mine, live):
        f.write_bytes(b"x" * 10)
    _remove_dead_partials(target)
    assert not dead.exists() and mine.exists() and live.exists()


def test_yaml_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    from evalsuite.config import load_suite
    from evalsuite.errors import ConfigError

    path = tmp_path / "suite.yaml"
    path.write_text(alias_bomb(9))
    started = time.monotonic()
    with pytest.raises(ConfigError, match="aliases expand") as info:
        load_suite(path)
    assert time.monotonic() - started < 5 and len(str(info.value)) < 300


def test_long_values_are_cut_in_error_lines(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text("name: [" + ", ".join(["x" * 50] * 2000) + "]\n")
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and len(err) <= 1100


@pytest.mark.parametrize("damage", ["truncated-safetensors", "pickled-bin"])
def test_damaged_model_folder_is_a_one_line_error(tmp_path: Path, damage: str) -> None:
    """A model folder whose weights are truncated, or only a pickled ``.bin`` (not loaded: unsafe), on the ONNX
    backend: a ConfigError naming the folder, never a traceback."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from evalsuite.errors import ConfigError
    from evalsuite.retrievers.encoders import export_onnx
    from tests._tinymodel import save_tiny_bert

    folder = save_tiny_bert(tmp_path / "model", head=False)
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 32,
                                                                   "pooling_mode_mean_tokens": True}))
    weights = folder / "model.safetensors"
    if damage == "truncated-safetensors":
        weights.write_bytes(weights.read_bytes()[:1000])
    else:
        weights.unlink()
        torch.save({"not": "a model"}, folder / "pytorch_model.bin")
    with pytest.raises(ConfigError) as info:
        export_onnx(folder, tmp_path / "out" / "model.onnx")
    assert str(folder) in str(info.value) and "\n" not in str(info.value)
    assert not list((tmp_path / "out").glob(".*.partial"))

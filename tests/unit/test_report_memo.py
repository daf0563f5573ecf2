"""The report's statistics memo: a hit gives exactly what a fresh computation gives, a changed
input misses, no cache folder and a damaged or read-only one fall back to computing."""

from __future__ import annotations

import dataclasses
import math
import os
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from evalsuite.metrics import correlation
from evalsuite.metrics.memo import MEMO_VERSION, StatsMemo
from evalsuite.report import Report, build_report
from evalsuite.report import model as report_model
from evalsuite.results import SuiteResults
from tests._sqlitedamage import swapped_index_keys
from tests.unit.test_report import RESAMPLES, _write_fixture


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> SuiteResults:
    return _write_fixture(tmp_path_factory.mktemp("memo-results"))


@pytest.fixture(scope="module")
def fresh(results: SuiteResults) -> Report:
    return build_report(results, n_resamples=RESAMPLES)


def _numbers(report: Report) -> list[Any]:
    """Every statistic the report shows: CIs of the table cells and every pairwise cell."""
    out: list[Any] = []
    for view in report.tasks:
        for row in view.rows:
            for mv in row.values:
                out.append((view.name, row.system.key, mv.metric, mv.value,
                            dataclasses.astuple(mv.ci) if mv.ci is not None else None))
        for metric, cells in sorted(view.pairwise.items()):
            for (a, b), cell in sorted(cells.items()):
                out.append((view.name, metric, a, b, cell.delta, cell.ci_low, cell.ci_high, cell.p, cell.p_holm,
                            cell.n))
    return out


def _same(a: list[Any], b: list[Any]) -> None:
    """Equal bit for bit (NaN equal to NaN), types included."""
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert repr(x) == repr(y)


def _forbid_resampling(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("a statistic was computed again instead of read from the memo")

    monkeypatch.setattr(report_model, "bootstrap_ci", boom)
    monkeypatch.setattr(report_model, "randomization_test", boom)
    monkeypatch.setattr(correlation, "bootstrap_correlation", boom)
    monkeypatch.setattr(correlation, "paired_bootstrap_correlation", boom)


def test_second_report_reads_every_statistic_from_the_memo(results: SuiteResults, fresh: Report, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    first = build_report(results, n_resamples=RESAMPLES, cache_dir=tmp_path)
    assert (tmp_path / "statistics" / f"memo-v{MEMO_VERSION}.sqlite").is_file()
    _same(_numbers(first), _numbers(fresh))
    # the STS task's correlation CIs and paired bootstrap are among them
    sts = next(v for v in first.tasks if v.kind == "sts")
    assert any(mv.ci is not None for r in sts.rows for mv in r.values) and sts.pairwise
    _forbid_resampling(monkeypatch)
    second = build_report(results, n_resamples=RESAMPLES, cache_dir=tmp_path)
    _same(_numbers(second), _numbers(fresh))
    with pytest.raises(AssertionError, match="computed again"):  # the guard does bite without the memo
        build_report(results, n_resamples=RESAMPLES)


def test_other_parameters_miss(results: SuiteResults, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build_report(results, n_resamples=RESAMPLES, cache_dir=tmp_path)
    _forbid_resampling(monkeypatch)
    with pytest.raises(AssertionError, match="computed again"):
        build_report(results, n_resamples=RESAMPLES + 1, cache_dir=tmp_path)
    with pytest.raises(AssertionError, match="computed again"):
        build_report(results, n_resamples=RESAMPLES, seed=1, cache_dir=tmp_path)


def test_changed_input_misses(tmp_path: Path) -> None:
    x = np.linspace(0.0, 1.0, 40)
    calls: list[int] = []

    def compute() -> list[float]:
        calls.append(1)
        return [float(x.sum())]

    with StatsMemo(tmp_path) as memo:
        memo.remember("k", [x], {"seed": 0}, compute)
    with StatsMemo(tmp_path) as memo:
        memo.remember("k", [x], {"seed": 0}, compute)  # hit
        assert memo.hits == 1
        y = x.copy()
        y[7] = np.nextafter(y[7], 2.0)  # one ulp
        memo.remember("k", [y], {"seed": 0}, compute)
        memo.remember("k", [x], {"seed": 1}, compute)
        memo.remember("other", [x], {"seed": 0}, compute)
        memo.remember("k", [x[:20], x[20:]], {"seed": 0}, compute)  # same bytes, split otherwise
        assert memo.misses == 4
    assert len(calls) == 5


def test_values_come_back_bit_for_bit(tmp_path: Path) -> None:
    values = [0.1 + 0.2, math.nan, -0.0, 1e-310, math.inf, 2.0 ** 53 + 1]
    with StatsMemo(tmp_path) as memo:
        memo.remember("k", [], {}, lambda: values)
    with StatsMemo(tmp_path) as memo:
        got = memo.remember("k", [], {}, lambda: [0.0])
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got.view(np.int64), np.asarray(values, dtype=np.float64).view(np.int64))


def test_no_cache_dir_computes_and_writes_nothing(results: SuiteResults, fresh: Report, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _same(_numbers(build_report(results, n_resamples=RESAMPLES, cache_dir=None)), _numbers(fresh))
    assert not list(tmp_path.rglob("*.sqlite"))


def test_corrupt_memo_falls_back(results: SuiteResults, fresh: Report, tmp_path: Path) -> None:
    build_report(results, n_resamples=RESAMPLES, cache_dir=tmp_path)
    path = tmp_path / "statistics" / f"memo-v{MEMO_VERSION}.sqlite"
    # damaged rows: checksums no longer match, so they are recomputed (and rewritten)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE memo SET value = zeroblob(length(value))")
    _same(_numbers(build_report(results, n_resamples=RESAMPLES, cache_dir=tmp_path)), _numbers(fresh))
    with StatsMemo(tmp_path) as memo:  # rewritten: hits again
        assert memo._get(next(iter(_keys(path)))) is not None
    # not a database at all: deleted and rebuilt
    path.write_bytes(b"this is not sqlite" * 100)
    _same(_numbers(build_report(results, n_resamples=RESAMPLES, cache_dir=tmp_path)), _numbers(fresh))
    assert _keys(path)


def _keys(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [k for (k,) in conn.execute("SELECT key FROM memo")]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes read-only folders")
def test_read_only_cache_falls_back(results: SuiteResults, fresh: Report, tmp_path: Path) -> None:
    tmp_path.chmod(0o500)
    try:
        _same(_numbers(build_report(results, n_resamples=RESAMPLES, cache_dir=tmp_path / "cache")), _numbers(fresh))
    finally:
        tmp_path.chmod(0o700)


def test_unusable_cache_falls_back(results: SuiteResults, fresh: Report, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    with pytest.warns(RuntimeWarning, match="statistics memo not usable .*; computing without it"):
        _same(_numbers(build_report(results, n_resamples=RESAMPLES, cache_dir=blocker)), _numbers(fresh))
    # a read-only memo (a CI cache restored read-only): read, nothing written, the report still built
    build_report(results, n_resamples=RESAMPLES, cache_dir=tmp_path / "c")
    path = tmp_path / "c" / "statistics" / f"memo-v{MEMO_VERSION}.sqlite"
    keys = _keys(path)
    monkeypatch.setattr(StatsMemo, "_open", staticmethod(
        lambda p: sqlite3.connect(f"file:{p}?mode=ro", uri=True)))
    _forbid_resampling(monkeypatch)
    _same(_numbers(build_report(results, n_resamples=RESAMPLES, cache_dir=tmp_path / "c")), _numbers(fresh))
    monkeypatch.undo()
    _same(_numbers(build_report(results, n_resamples=RESAMPLES + 1, cache_dir=tmp_path / "c")),
          _numbers(build_report(results, n_resamples=RESAMPLES + 1)))
    assert len(_keys(path)) > len(keys)
    monkeypatch.setattr(StatsMemo, "_open", staticmethod(
        lambda p: sqlite3.connect(f"file:{p}?mode=ro", uri=True)))
    with pytest.warns(RuntimeWarning, match="statistics not kept in the memo .*readonly"):
        computed = build_report(results, n_resamples=RESAMPLES + 2, cache_dir=tmp_path / "c")
    _same(_numbers(computed), _numbers(build_report(results, n_resamples=RESAMPLES + 2)))  # computed, not kept


def test_a_damaged_page_is_rebuilt_not_kept_broken(tmp_path: Path) -> None:
    """Each page of a memo file in turn overwritten (the header kept): values never wrong, and
    the next memo is whole again (quick_check's verdict read: on damaged pages it reports without
    raising, and the file stayed damaged for good, every later report computing again)."""
    inputs = [np.arange(i, i + 5, dtype=np.float64) for i in range(300)]

    def fill(memo: StatsMemo) -> None:
        for i, x in enumerate(inputs):
            got = memo.remember("k", [x], {"i": i}, lambda i=i: np.full(40, float(i)))  # type: ignore[misc]
            np.testing.assert_array_equal(got, np.full(40, float(i)))

    with StatsMemo(tmp_path / "built") as memo:
        fill(memo)
    clean = (tmp_path / "built" / "statistics" / f"memo-v{MEMO_VERSION}.sqlite").read_bytes()
    page = int.from_bytes(clean[16:18], "big")
    assert len(clean) // page >= 10
    for number in range(1, len(clean) // page):
        folder = tmp_path / f"page{number}"
        path = folder / "statistics" / f"memo-v{MEMO_VERSION}.sqlite"
        path.parent.mkdir(parents=True)
        damaged = bytearray(clean)
        damaged[number * page:(number + 1) * page] = b"\xa5" * page
        path.write_bytes(bytes(damaged))
        with StatsMemo(folder) as memo:
            fill(memo)
        with StatsMemo(folder) as memo:
            fill(memo)
            assert memo.hits == len(inputs), f"page {number}"


def test_a_row_reached_under_another_key_is_not_served(tmp_path: Path) -> None:
    """Damage that points a key at another statistic's row (two neighbouring keys swapped in the
    key index: PRAGMA quick_check finds nothing, the row's own checksum holds, and the lookup of
    one of them lands on the other's row) is not served as the statistic asked for: the checksum
    covers the key too."""
    inputs = [np.arange(i, i + 5, dtype=np.float64) for i in range(50)]

    def value(i: int) -> NDArray[np.float64]:
        return np.full(4, float(i))

    with StatsMemo(tmp_path / "built") as memo:
        keys = sorted(memo.key("k", [x], {}) for x in inputs)
        for i, x in enumerate(inputs):
            memo.remember("k", [x], {}, lambda i=i: value(i))  # type: ignore[misc]
    path = tmp_path / "built" / "statistics" / f"memo-v{MEMO_VERSION}.sqlite"
    for j, damaged in swapped_index_keys(path, "memo", keys):  # 50 keys: the whole index on one page
        folder = tmp_path / f"swap{j}"
        (folder / "statistics").mkdir(parents=True)
        (folder / "statistics" / path.name).write_bytes(damaged)
        with sqlite3.connect(folder / "statistics" / path.name) as conn:
            assert conn.execute("PRAGMA quick_check").fetchone() == ("ok",)
        with StatsMemo(folder) as memo:
            for i, x in enumerate(inputs):
                got = memo.remember("k", [x], {}, lambda i=i: value(i))  # type: ignore[misc]
                np.testing.assert_array_equal(got, value(i), err_msg=f"keys {j} and {j + 1} swapped")

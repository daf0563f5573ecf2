"""The embedding cache: hits, exact invalidation, corruption never served."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from evalsuite.retrievers.cache import EmbeddingCache, cached_encode, default_cache_dir, text_key
from tests._sqlitedamage import swapped_index_keys

FP = {"model": "toy", "weights": "abc", "dim": 3}


class CountingEncoder:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, texts: list[str]) -> list[np.ndarray]:
        self.seen.extend(texts)
        return [np.array([len(t), t.count("a"), 1.0], dtype=np.float32) for t in texts]


def test_second_pass_encodes_nothing_and_a_changed_text_only_itself(cache_dir: Path) -> None:
    cache, enc = EmbeddingCache(cache_dir), CountingEncoder()
    texts = ["alpha", "beta", "gamma", "beta"]
    values, stats = cached_encode(texts, enc, cache=cache, fingerprint=FP)
    assert enc.seen == ["alpha", "beta", "gamma"]  # the duplicate is encoded once
    assert (stats.requested, stats.hits, stats.encoded) == (4, 0, 3)
    np.testing.assert_array_equal(values[1], values[3])

    enc2 = CountingEncoder()
    again, stats = cached_encode(texts, enc2, cache=cache, fingerprint=FP)
    assert enc2.seen == [] and stats.encoded == 0 and stats.hits == 4
    for a, b in zip(values, again):
        np.testing.assert_array_equal(a, b)

    enc3 = CountingEncoder()
    _, stats = cached_encode(["alpha", "BETA", "gamma"], enc3, cache=cache, fingerprint=FP)
    assert enc3.seen == ["BETA"] and stats.encoded == 1


def test_another_fingerprint_is_another_namespace(cache_dir: Path) -> None:
    cache = EmbeddingCache(cache_dir)
    cached_encode(["x"], CountingEncoder(), cache=cache, fingerprint=FP)
    enc = CountingEncoder()
    cached_encode(["x"], enc, cache=cache, fingerprint={**FP, "dim": 2})
    assert enc.seen == ["x"]
    assert cache.path_for(FP) != cache.path_for({**FP, "dim": 2})


def test_tuples_and_matrices_round_trip(cache_dir: Path) -> None:
    cache = EmbeddingCache(cache_dir)
    sparse = (np.array([3, 17], dtype=np.int32), np.array([0.5, 1.25], dtype=np.float32))
    tokens = np.arange(12, dtype=np.float16).reshape(4, 3)
    cache.put_many(FP, {"s": sparse, "t": tokens})
    found, corrupt = cache.get_many(FP, ["s", "t", "missing"])
    assert corrupt == 0 and set(found) == {"s", "t"}
    np.testing.assert_array_equal(found["s"][0], sparse[0])
    np.testing.assert_array_equal(found["s"][1], sparse[1])
    assert found["t"].dtype == np.float16 and found["t"].shape == (4, 3)


def test_a_damaged_row_is_dropped_and_re_encoded(cache_dir: Path) -> None:
    cache = EmbeddingCache(cache_dir)
    values, _ = cached_encode(["alpha", "beta"], CountingEncoder(), cache=cache, fingerprint=FP)
    with sqlite3.connect(cache.path_for(FP)) as conn:
        blob = conn.execute("SELECT value FROM entries WHERE text_key = ?", (text_key("beta"),)).fetchone()[0]
        damaged = blob[:-8] + bytes(8)  # same length, different bytes: only the checksum can tell
        conn.execute("UPDATE entries SET value = ? WHERE text_key = ?", (damaged, text_key("beta")))
    enc = CountingEncoder()
    again, stats = cached_encode(["alpha", "beta"], enc, cache=cache, fingerprint=FP)
    assert enc.seen == ["beta"] and stats.corrupt == 1 and stats.hits == 1
    np.testing.assert_array_equal(again[1], values[1])


def test_a_row_reached_under_another_key_is_not_served(tmp_path: Path) -> None:
    """Damage that points a text's key at another text's row (two neighbouring keys swapped in
    the key index: PRAGMA quick_check finds nothing, the row's own checksum holds, and the
    lookup of one of them lands on the other's row) is not served for that text: the checksum
    covers the key too. The latency store is the same kind of file: there it would charge one
    query's encoding time to another."""
    texts = [f"text {i}" for i in range(50)]
    expected = CountingEncoder()(texts)
    built = EmbeddingCache(tmp_path / "built")
    cached_encode(texts, CountingEncoder(), cache=built, fingerprint=FP)
    # 50 keys: the whole index on one page
    for j, damaged in swapped_index_keys(built.path_for(FP), "entries", [text_key(t) for t in texts]):
        cache = EmbeddingCache(tmp_path / f"swap{j}")
        cache.path_for(FP).parent.mkdir(parents=True)
        cache.path_for(FP).write_bytes(damaged)
        with sqlite3.connect(cache.path_for(FP)) as conn:
            assert conn.execute("PRAGMA quick_check").fetchone() == ("ok",)
        values, _ = cached_encode(texts, CountingEncoder(), cache=cache, fingerprint=FP)
        for text, got, want in zip(texts, values, expected):
            np.testing.assert_array_equal(got, want, err_msg=f"{text!r}, keys {j} and {j + 1} swapped")


def test_rows_written_before_the_key_was_checksummed_are_still_served(cache_dir: Path) -> None:
    """A cache written by an earlier version (checksum of the bytes alone) is not re-encoded."""
    cache = EmbeddingCache(cache_dir)
    values, _ = cached_encode(["alpha", "beta"], CountingEncoder(), cache=cache, fingerprint=FP)
    with sqlite3.connect(cache.path_for(FP)) as conn:
        for key, blob in conn.execute("SELECT text_key, value FROM entries").fetchall():
            old = hashlib.blake2b(blob, digest_size=8).digest()
            conn.execute("UPDATE entries SET checksum = ? WHERE text_key = ?", (old, key))
    enc = CountingEncoder()
    again, stats = cached_encode(["alpha", "beta"], enc, cache=cache, fingerprint=FP)
    assert enc.seen == [] and stats.hits == 2 and stats.corrupt == 0
    np.testing.assert_array_equal(again[1], values[1])


def test_a_file_that_is_not_a_database_is_moved_aside_and_rebuilt(cache_dir: Path) -> None:
    cache = EmbeddingCache(cache_dir)
    cached_encode(["alpha"], CountingEncoder(), cache=cache, fingerprint=FP)
    path = cache.path_for(FP)
    path.write_bytes(b"this is not sqlite" * 100)
    enc = CountingEncoder()
    values, stats = cached_encode(["alpha"], enc, cache=cache, fingerprint=FP)
    assert enc.seen == ["alpha"] and stats.encoded == 1
    assert values[0][0] == 5
    assert list(cache_dir.glob("*.corrupt-*"))  # kept for inspection
    enc2 = CountingEncoder()
    cached_encode(["alpha"], enc2, cache=cache, fingerprint=FP)
    assert enc2.seen == []


def test_any_damaged_page_is_set_aside_never_a_crash(tmp_path: Path) -> None:
    """Each page of a cache file in turn overwritten (the header kept): the damage is found when
    the file is opened (quick_check, whose verdict must be read: on some pages it reports
    without raising, and the lookup then failed with 'database disk image is malformed'), the
    file set aside and every text encoded again, with the right values."""
    texts = [f"text number {i} " * 20 for i in range(400)]
    expected = CountingEncoder()(texts)
    built = EmbeddingCache(tmp_path / "built")
    cached_encode(texts, CountingEncoder(), cache=built, fingerprint=FP)
    clean = built.path_for(FP).read_bytes()
    page = int.from_bytes(clean[16:18], "big")
    assert len(clean) // page >= 10
    for number in range(1, len(clean) // page):
        folder = tmp_path / f"page{number}"
        cache = EmbeddingCache(folder)
        damaged = bytearray(clean)
        damaged[number * page:(number + 1) * page] = b"\xa5" * page
        cache.path_for(FP).parent.mkdir(parents=True)
        cache.path_for(FP).write_bytes(bytes(damaged))
        enc = CountingEncoder()
        values, stats = cached_encode(texts, enc, cache=cache, fingerprint=FP)
        for got, want in zip(values, expected):
            np.testing.assert_array_equal(got, want)
        assert stats.encoded + stats.hits == len(texts)


def test_no_cache_encodes_everything(cache_dir: Path) -> None:
    enc = CountingEncoder()
    cached_encode(["a", "b"], enc, cache=None, fingerprint=FP)
    cached_encode(["a", "b"], enc, cache=None, fingerprint=FP)
    assert enc.seen == ["a", "b", "a", "b"] and not cache_dir.exists()


def test_wrong_number_of_encodings_is_an_error(cache_dir: Path) -> None:
    with pytest.raises(RuntimeError, match="returned 1 encodings for 2 texts"):
        cached_encode(["a", "b"], lambda texts: [np.zeros(3)], cache=EmbeddingCache(cache_dir), fingerprint=FP)


def test_default_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EVALSUITE_CACHE_DIR", str(tmp_path / "here"))
    assert default_cache_dir() == tmp_path / "here"
    monkeypatch.delenv("EVALSUITE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "evalsuite"


def test_row_format_round_trips_reads_old_npz_rows_and_rejects_truncation() -> None:
    import io

    from evalsuite.retrievers.cache import _pack, _unpack

    value = (np.arange(6, dtype=np.int32).reshape(2, 3), np.array([0.5, -1.25], dtype=np.float16),
             np.zeros((0, 4), dtype=np.float32))
    back = _unpack(_pack(value))
    assert isinstance(back, tuple) and len(back) == 3
    for a, b in zip(value, back):
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    vector = np.linspace(0, 1, 384, dtype=np.float32)
    single = _unpack(_pack(vector))
    assert isinstance(single, np.ndarray) and np.array_equal(single, vector)
    single[0] = 7  # rows are independent, writable copies
    old = io.BytesIO()
    np.savez(old, vector)
    assert np.array_equal(_unpack(old.getvalue()), vector)
    with pytest.raises(ValueError):
        _unpack(_pack(vector)[:-4])


def test_own_writes_keep_the_file_checked_and_a_change_by_anyone_else_is_checked_again(
        cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """quick_check reads the whole file: it runs when a file is first opened in a process and
    after the file changed behind this process's back, not after each of its own chunked writes
    (which made indexing a large corpus quadratic in the cache's size)."""
    import os

    import evalsuite.retrievers.cache as cache_module

    statements: list[str] = []
    connect = sqlite3.connect

    def traced(*args: object, **kwargs: object) -> sqlite3.Connection:
        conn = connect(*args, **kwargs)  # type: ignore[arg-type]
        conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(cache_module.sqlite3, "connect", traced)
    monkeypatch.setattr(cache_module, "_CHECKED", {})
    cache = EmbeddingCache(cache_dir)
    texts = [f"text {i}" for i in range(10)]
    cached_encode(texts, CountingEncoder(), cache=cache, fingerprint=FP, chunk_size=2)  # 5 writes
    cached_encode([*texts, "new"], CountingEncoder(), cache=cache, fingerprint=FP)
    assert sum("quick_check" in s for s in statements) == 1
    path = cache.path_for(FP)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # someone else wrote to it
    _, stats = cached_encode(texts, CountingEncoder(), cache=cache, fingerprint=FP)
    assert sum("quick_check" in s for s in statements) == 2 and stats.hits == 10

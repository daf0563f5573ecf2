"""Query-encoding latency timed once per (encoder, texts, machine) and charged thereafter
(evalsuite.retrievers.encode_timing): shared by the systems of a run, kept in the cache folder
for the next run on the same machine, timed again with ``fresh``, on another machine or when
the store is unreadable."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from evalsuite import Corpus, Queries
from evalsuite.retrievers import encode_timing
from evalsuite.retrievers.cache import EmbeddingCache
from evalsuite.retrievers.cost import CostMeter
from evalsuite.retrievers.encode_timing import EncodeTimings

pytest.importorskip("faiss")

from evalsuite.retrievers import get_retriever
from evalsuite.retrievers.dense import DenseRetriever

from .conftest import HashEncoder

SLEEP_S = 0.02  # each encode call: well above what a 60-document search or a cache lookup takes


class SlowEncoder(HashEncoder):
    """HashEncoder that takes SLEEP_S per call and counts its calls."""

    def __init__(self) -> None:
        super().__init__(dim=8)
        self.calls = 0

    def encode(self, texts: Sequence[str], *, kind: str, batch_size: int = 32,
               show_progress: bool = False) -> np.ndarray:
        self.calls += 1
        time.sleep(SLEEP_S)
        return super().encode(texts, kind=kind, batch_size=batch_size, show_progress=show_progress)


def _data() -> tuple[Corpus, Queries]:
    corpus = Corpus.from_dict({f"d{i}": {"title": "", "text": f"document {i} on flow {i % 5}"} for i in range(60)})
    queries = Queries.from_dict({f"q{i}": f"flow question {i}" for i in range(12)})
    return corpus, queries


def _dense(encoder: SlowEncoder, cache: Path, corpus: Corpus, queries: Queries) -> DenseRetriever:
    dense = DenseRetriever(encoder, cache_dir=cache, progress=False)
    dense.index(corpus)
    dense.search(queries, k=5)  # the evaluation's search: query vectors now in the embedding cache
    return dense


def test_the_hybrid_is_charged_the_dense_models_timing_without_encoding_again(tmp_path: Path) -> None:
    corpus, queries = _data()
    encoder = SlowEncoder()
    dense = _dense(encoder, tmp_path, corpus, queries)
    bm25 = get_retriever("bm25", progress=False)
    bm25.index(corpus)
    hybrid = get_retriever("hybrid", retrievers=[bm25, dense], method="rrf")
    hybrid.index(corpus, components_indexed=True)  # type: ignore[call-arg]
    meter = CostMeter(corpus, queries, k=5, latency_queries=6, warmup=1)
    first = meter.measure(dense, index_seconds=0.0)
    assert first["latency_encodings"] == {"measured": 7, "this_run": 0, "earlier_run": 0}  # 6 alone + 1 batch
    calls = encoder.calls
    second = meter.measure(hybrid, index_seconds=0.0)
    assert encoder.calls == calls  # the warm-up and all 7 timed searches served from the cache
    assert second["latency_encodings"] == {"measured": 0, "this_run": 7, "earlier_run": 0}
    # charged, not skipped: every query still pays one encoding
    assert second["query_latency_p50_ms"] >= SLEEP_S * 1000
    assert second["queries_per_s"] <= 6 / SLEEP_S
    assert any("7 earlier in this run" in n for n in second["notes"])


def test_a_second_run_reuses_the_stored_timing_and_fresh_times_again(tmp_path: Path) -> None:
    corpus, queries = _data()
    store = tmp_path / "latency"

    def run(fresh: bool = False) -> tuple[dict, int]:
        encoder = SlowEncoder()
        dense = _dense(encoder, tmp_path, corpus, queries)
        calls = encoder.calls
        timings = EncodeTimings(EmbeddingCache(store), fresh=fresh)
        costs = CostMeter(corpus, queries, k=5, latency_queries=5, warmup=2, timings=timings).measure(
            dense, index_seconds=0.0)
        return costs, encoder.calls - calls

    cold, calls = run()
    assert calls == 2 + 5 + 1 and cold["latency_encodings"]["measured"] == 6
    warm, calls = run()
    assert calls == 0  # no model call at all: the warm-up texts are served from the cache too
    assert warm["latency_encodings"] == {"measured": 0, "this_run": 0, "earlier_run": 6}
    assert warm["query_latency_p50_ms"] >= SLEEP_S * 1000
    assert any("by an earlier run on this machine" in n and "--fresh-latency" in n for n in warm["notes"])
    fresh, calls = run(fresh=True)
    assert calls == 2 + 5 + 1 and fresh["latency_encodings"]["measured"] == 6


def _encodings_measured(tmp_path: Path, corpus: Corpus, queries: Queries, store: Path) -> int:
    """How many query encodings a latency measurement with the timing store ``store`` timed anew."""
    dense = _dense(SlowEncoder(), tmp_path, corpus, queries)
    timings = EncodeTimings(EmbeddingCache(store))
    costs = CostMeter(corpus, queries, k=5, latency_queries=4, warmup=0, timings=timings).measure(
        dense, index_seconds=0.0)
    return int(costs["latency_encodings"]["measured"])


def test_another_machine_or_an_unreadable_store_times_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus, queries = _data()
    store = tmp_path / "latency"

    def measured() -> int:
        return _encodings_measured(tmp_path, corpus, queries, store)

    assert measured() == 5
    assert measured() == 0
    signature = dict(encode_timing.machine_signature(), cpus=999)
    monkeypatch.setattr(encode_timing, "machine_signature", lambda: signature)
    assert measured() == 5  # recorded on "another machine": not charged here
    for path in store.glob("*.sqlite"):
        path.write_bytes(b"not a database at all")
    assert measured() == 5  # damaged store: set aside, timed again, no error


def test_timings_outside_a_measurement_change_nothing(tmp_path: Path) -> None:
    """The hook is only active inside ``charging``: an ordinary search uses the embedding cache."""
    corpus, queries = _data()
    encoder = SlowEncoder()
    dense = _dense(encoder, tmp_path, corpus, queries)
    calls = encoder.calls
    EncodeTimings()  # constructing one installs nothing
    dense.search(queries, k=5)
    assert encoder.calls == calls


def test_the_same_model_on_other_threads_is_timed_on_its_own(tmp_path: Path) -> None:
    """Device and threads change how long encoding takes, not the vectors (so not the embedding
    cache's key): a system with other settings is not charged the first one's timing."""
    corpus, queries = _data()
    slow, fast = SlowEncoder(), HashEncoder(dim=8)
    slow.threads, fast.threads = 1, 8  # type: ignore[attr-defined]
    assert slow.fingerprint == fast.fingerprint  # same model: same vectors, same cache entries
    meter = CostMeter(corpus, queries, k=5, latency_queries=4, warmup=0)
    meter.measure(_dense(slow, tmp_path, corpus, queries), index_seconds=0.0)
    costs = meter.measure(_dense(fast, tmp_path, corpus, queries), index_seconds=0.0)  # type: ignore[arg-type]
    assert costs["latency_encodings"] == {"measured": 5, "this_run": 0, "earlier_run": 0}
    assert costs["query_latency_p50_ms"] < SLEEP_S * 1000 / 2


class LoadingEncoder(SlowEncoder):
    """SlowEncoder whose first call also loads the model (LOAD_S), as the real encoders do lazily."""

    LOAD_S = 1.0

    def __init__(self) -> None:
        super().__init__()
        self.loaded = False

    def encode(self, texts: Sequence[str], *, kind: str, batch_size: int = 32,
               show_progress: bool = False) -> np.ndarray:
        if not self.loaded:
            self.loaded = True
            time.sleep(self.LOAD_S)
        return super().encode(texts, kind=kind, batch_size=batch_size, show_progress=show_progress)


def test_a_models_load_time_is_never_recorded_as_an_encoding(tmp_path: Path) -> None:
    """A warm run whose warm-up queries were all timed before loads no model in the warm-up; a
    query timed for the first time then (a query added to the task, a larger sample) must not
    be charged the model's load, nor record it for every later run."""
    corpus, queries = _data()
    store = tmp_path / "latency"

    def run(queries: Queries) -> dict:
        encoder = LoadingEncoder()
        dense = DenseRetriever(encoder, cache_dir=tmp_path, progress=False)
        dense.index(corpus)
        dense.search(queries, k=5)
        encoder.loaded = False  # the next process: vectors all in the embedding cache, no model loaded yet
        timings = EncodeTimings(EmbeddingCache(store))
        return CostMeter(corpus, queries, k=5, latency_queries=len(queries), warmup=2, timings=timings).measure(
            dense, index_seconds=0.0)

    run(queries)
    more = Queries.from_dict({**{q: t for q, t in zip(queries.ids.tolist(), queries.texts.tolist())},
                              "q99": "a question added since"})
    costs = run(more)  # warm-up queries q0, q1: timed by the first run, so served without the model
    assert costs["latency_encodings"]["earlier_run"] == len(queries)
    assert costs["query_latency_p95_ms"] < LoadingEncoder.LOAD_S * 1000 / 4
    assert costs["queries_per_s"] > len(more) / (LoadingEncoder.LOAD_S / 2)


def test_changed_encoding_code_times_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A development checkout keeps its version number across commits: a change to the code that
    encodes queries (a faster tokenisation, other session options) must not be charged the time
    the old code took."""
    corpus, queries = _data()
    store = tmp_path / "latency"
    source = tmp_path / "encoders.py"
    source.write_text("# the query-encoding code\n")
    monkeypatch.setattr(encode_timing, "_TIMED_SOURCES", (source,))
    encode_timing.machine_signature.cache_clear()

    def measured() -> int:
        return _encodings_measured(tmp_path, corpus, queries, store)

    try:
        assert measured() == 5
        assert measured() == 0
        source.write_text("# the query-encoding code, made faster\n")
        encode_timing.machine_signature.cache_clear()  # a new process
        assert measured() == 5
    finally:
        encode_timing.machine_signature.cache_clear()


@pytest.mark.parametrize(("variable", "other"), [("CUDA_VISIBLE_DEVICES", "1"), ("CUDA_DEVICE_ORDER", "PCI_BUS_ID")])
def test_which_gpu_cuda_means_is_part_of_the_machine(monkeypatch: pytest.MonkeyPatch, variable: str,
                                                      other: str) -> None:
    """``device='cuda'`` runs on whichever GPU CUDA_VISIBLE_DEVICES names first, and
    CUDA_DEVICE_ORDER (FASTEST_FIRST, CUDA's default, or PCI_BUS_ID) decides which that is: on a
    machine with two kinds of GPU, a timing taken on one must not be charged on the other."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    encode_timing.machine_signature.cache_clear()
    try:
        first = encode_timing.machine_signature()
        monkeypatch.setenv(variable, other)
        encode_timing.machine_signature.cache_clear()
        assert encode_timing.machine_signature() != first
    finally:
        monkeypatch.undo()
        encode_timing.machine_signature.cache_clear()


def test_an_unwritable_store_is_said_not_kept_silent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus, queries = _data()
    store = EmbeddingCache(tmp_path)
    dense = _dense(SlowEncoder(), tmp_path, corpus, queries)
    timings = EncodeTimings(store)
    meter = CostMeter(corpus, queries, k=5, latency_queries=3, warmup=1, timings=timings)

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "put_many", full)
    with pytest.warns(RuntimeWarning, match=r"query encoding times not kept in the cache \(.*No space left"):
        measured = meter.measure(dense, index_seconds=0.0)
    assert measured["latency_encodings"]["measured"] == 4  # measured all the same, just not kept

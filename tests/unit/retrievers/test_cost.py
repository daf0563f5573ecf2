"""Cost measurement (evalsuite.retrievers.cost): index size read from the structures each
retriever holds, latency with the caches off, encoding rate or "from cache", model size from
weight-file headers, composites summed."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evalsuite import Corpus, Queries
from evalsuite.retrievers import get_retriever
from evalsuite.retrievers.cost import COST_KEYS, CostMeter, caches_off, index_nbytes, model_size

faiss = pytest.importorskip("faiss")

from evalsuite.retrievers.dense import DenseRetriever  # noqa: E402

from .test_dense import HashEncoder  # noqa: E402


def _corpus(n: int) -> Corpus:
    return Corpus.from_dict({f"d{i}": {"title": f"t{i}", "text": f"document number {i} about flow {i % 7}"}
                             for i in range(n)})


def _queries(n: int) -> Queries:
    return Queries.from_dict({f"q{i}": f"flow question {i}" for i in range(n)})


def test_dense_flat_index_bytes_are_the_faiss_index_serialised(tmp_path: Path) -> None:
    dense = DenseRetriever(HashEncoder(dim=16), cache_dir=tmp_path, progress=False)
    dense.index(_corpus(200))
    size = index_nbytes(dense)
    assert size == faiss.serialize_index(dense._faiss_index).nbytes
    assert 200 * 16 * 4 <= size < 200 * 16 * 4 + 1024  # the vectors plus a small header


def test_meter_reports_every_key_and_times_encoding_with_the_cache_off(tmp_path: Path) -> None:
    encoder = HashEncoder(dim=16)
    dense = DenseRetriever(encoder, cache_dir=tmp_path, progress=False)
    corpus, queries = _corpus(120), _queries(30)
    dense.index(corpus)
    dense.search(queries, k=10)  # query vectors now cached
    meter = CostMeter(corpus, queries, k=10, latency_queries=8, warmup=2, seed=1)
    before = encoder.encoded
    costs = meter.measure(dense, index_seconds=0.5)
    assert set(COST_KEYS) <= set(costs)
    # warm-up 2 + 8 one at a time + a batch of 8: every query encoded although all were cached
    assert encoder.encoded - before == 2 + 8 + 8
    assert costs["latency_queries"] == 8
    assert 0 < costs["query_latency_p50_ms"] <= costs["query_latency_p95_ms"]
    assert costs["queries_per_s"] > 0
    assert costs["docs_encoded"] == 120 and costs["encode_docs_per_s"] > 0
    assert costs["bytes_per_doc"] == pytest.approx(costs["index_bytes"] / 120)
    assert costs["index_seconds"] == 0.5
    assert dense._cache is not None  # switched back on

    again = DenseRetriever(encoder, cache_dir=tmp_path, progress=False)
    again.index(corpus)
    warm = CostMeter(corpus, queries, k=10, latency_queries=0).measure(again, index_seconds=0.1)
    assert warm["docs_encoded"] == 0 and warm["encode_docs_per_s"] is None
    assert "from the embedding cache" in warm["encode_note"]
    assert warm["query_latency_p95_ms"] is None and warm["latency_queries"] == 0


def test_latency_encodes_queries_here_not_on_the_executor(tmp_path: Path) -> None:
    """A single-query search on an executor would be a Ray Data job per query: the meter
    encodes the latency sample in this process and puts the executor back afterwards."""

    class CountingExecutor:
        def __init__(self) -> None:
            self.texts = 0

        def encode(self, job: Any, texts: list[str]) -> Any:
            self.texts += len(texts)
            return job.encoder.encode(texts, kind=job.kind, batch_size=job.batch_size)

    encoder = HashEncoder(dim=16)
    dense = DenseRetriever(encoder, cache_dir=tmp_path, progress=False)  # an empty cache: every query encodes
    corpus, queries = _corpus(50), _queries(10)
    dense.index(corpus)
    executor = CountingExecutor()
    dense.executor = executor
    dense.search(queries, k=5)
    assert executor.texts == 10  # an ordinary search encodes on the executor
    costs = CostMeter(corpus, queries, k=5, latency_queries=4, warmup=1).measure(dense, index_seconds=0.1)
    assert executor.texts == 10  # the latency sample did not
    assert costs["query_latency_p95_ms"] is not None
    assert any("encoded in this process" in n for n in costs["notes"])
    assert dense.executor is executor


def test_sample_is_seeded_and_bounded() -> None:
    queries = _queries(30)
    a = CostMeter(_corpus(3), queries, latency_queries=10, seed=3).sample
    b = CostMeter(_corpus(3), queries, latency_queries=10, seed=3).sample
    assert list(a.ids) == list(b.ids) and len(a) == 10
    assert len(CostMeter(_corpus(3), queries, latency_queries=100).sample) == 30


def test_caches_off_restores_the_cache_even_on_error(tmp_path: Path) -> None:
    dense = DenseRetriever(HashEncoder(dim=8), cache_dir=tmp_path, progress=False)
    cache = dense._cache
    with pytest.raises(RuntimeError), caches_off(dense):
        assert dense._cache is None
        raise RuntimeError("boom")
    assert dense._cache is cache


def test_hybrid_costs_are_the_sum_of_its_parts(tmp_path: Path) -> None:
    corpus, queries = _corpus(80), _queries(10)
    bm25 = get_retriever("bm25", progress=False)
    dense = DenseRetriever(HashEncoder(dim=8), cache_dir=tmp_path, progress=False)
    hybrid = get_retriever("hybrid", retrievers=[bm25, dense], method="rrf")
    bm25.index(corpus)
    dense.index(corpus)
    hybrid.index(corpus, components_indexed=True)  # type: ignore[call-arg]
    meter = CostMeter(corpus, queries, k=10, latency_queries=3)
    c_bm25 = meter.measure(bm25, index_seconds=1.0)
    c_dense = meter.measure(dense, index_seconds=2.0)
    c_hybrid = meter.measure(hybrid, index_seconds=0.25)
    scores = bm25._model.scores  # type: ignore[attr-defined]
    assert c_bm25["index_bytes"] == sum(v.nbytes for v in scores.values() if isinstance(v, np.ndarray)) > 0
    assert c_hybrid["index_bytes"] == c_bm25["index_bytes"] + c_dense["index_bytes"]
    assert c_hybrid["index_seconds"] == 3.25
    assert c_bm25["model_bytes"] is None and c_bm25["parameters"] is None


def _safetensors(path: Path, shapes: dict[str, list[int]]) -> None:
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in shapes.items():
        size = int(np.prod(shape)) * 4
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * offset)


def test_model_size_reads_parameters_from_the_safetensors_header(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    _safetensors(folder / "model.safetensors", {"w": [3, 4], "b": [5]})
    (folder / "model.onnx").write_bytes(b"x" * 100)  # another format of the same weights: not counted

    class WithModel:
        _path = folder

    size, params = model_size(WithModel())
    assert params == 17
    assert size == (folder / "model.safetensors").stat().st_size
    assert model_size(object()) == (None, None)


def test_onnx_parameters_read_without_onnx_equal_onnx_load(tmp_path: Path) -> None:
    """The packaged ONNX model's parameter count from the protobuf wire format equals what
    ``onnx.load`` gives, in a process that never imports onnx (about a second of start-up)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from evalsuite.errors import ConfigError
    from evalsuite.models import resolve_model

    try:
        path = resolve_model("paraphrase-MiniLM-L3-v2").path
    except ConfigError as exc:
        pytest.skip(str(exc))
    assert path is not None
    model = onnx.load(str(path), load_external_data=False)
    expected = int(sum(np.prod(t.dims, dtype=np.int64) for t in model.graph.initializer))
    from evalsuite.retrievers.cost import _onnx_parameters

    assert _onnx_parameters(path) == expected > 10_000_000
    tiny = helper.make_model(helper.make_graph(
        [], "g", [], [helper.make_tensor_value_info("w", TensorProto.FLOAT, [2, 3])],
        initializer=[helper.make_tensor("w", TensorProto.FLOAT, [2, 3], [0.0] * 6),
                     helper.make_tensor("s", TensorProto.FLOAT, [], [1.0])]))
    onnx.save(tiny, str(tmp_path / "tiny.onnx"))
    assert _onnx_parameters(tmp_path / "tiny.onnx") == 7
    (tmp_path / "junk.onnx").write_bytes(b"\xff" * 20)
    assert _onnx_parameters(tmp_path / "junk.onnx") is None
    import subprocess
    import sys

    probe = (f"import sys; from evalsuite.retrievers.cost import _onnx_parameters; from pathlib import Path; "
             f"n = _onnx_parameters(Path({str(path)!r})); print(n, 'onnx' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(expected), "False"]

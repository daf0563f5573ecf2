"""Quality against cost on Cranfield: the issue-14 sweep grid over the default dense model.

Runs one suite, in one process, with two retrievers on ``cranfield`` (1,400 documents, 225
queries, k = 100):

* ``dense`` -- the plain dense retriever (packaged all-MiniLM-L6-v2, exact cosine): the peer;
* ``minilm`` -- the same model with the sweep
  ``dim [384, 256, 128, 64] x precision [float32, int8, ubinary] x rescore [1, 4] x
  index [flat, hnsw M16 ef 32/128, ivf nlist 64 nprobe 4/16]`` (100 points; float32 is not
  re-scored).

The embedding cache starts empty (a temporary folder), so the corpus is encoded once, by the
first system that needs it, and every other system reads it: the script prints how many
documents were encoded in total (1,400 expected) and the time the sweep took after that
first encoding. It prints a table of every point (nDCG@10 with its 95% bootstrap CI, % of the
float32/384/flat point, bytes/doc, p50/p95 ms, queries/s, docs/s), the Pareto frontiers, the
recommendation and the 1M / 100M / 1B extrapolation, and checks:

* the float32/384/flat point's nDCG@10 equals the plain dense retriever's, exactly;
* binary (ubinary) with rescore 4 on the flat index keeps >= 95% of float32 nDCG@10;
* the corpus was encoded once; the sweep after the first encoding took < 3 minutes.

``--encoders`` adds the encoder-precision axis (fp32 ONNX export, int8 quantize_dynamic,
bf16 where the CPU has it) at 384 dims, float32, flat: docs/s against the quality change.

Usage: python bench/cost_sweep.py [--data ../shared/data/cranfield] [--encoders] [--quick]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
GRID = """\
        dim: [384, 256, 128, 64]
        precision: [float32, int8, ubinary]
        rescore: [1, 4]
        index: [flat, {hnsw: {M: 16, ef_search: [32, 128]}}, {ivf: {nlist: 64, nprobe: [4, 16]}}]"""
QUICK_GRID = """\
        dim: [384, 128]
        precision: [float32, int8, ubinary]
        rescore: [1, 4]
        index: [flat]"""
ENCODER_GRID = """\
        dim: [384]
        precision: [float32]
        index: [flat]
        encoder: [fp32, int8, bf16]"""
METRIC = "ndcg@10"


def _suite(data: Path, cache: Path, export: Path, output: Path, grid: str, encoders: bool) -> str:
    extra = f"""
  - name: enc
    type: dense
    params: {{export_dir: "{export}"}}
    sweep:
{ENCODER_GRID}""" if encoders else ""
    return f"""name: cost-sweep
k: 100
seed: 0
metrics: [ndcg@10, recall@100]
output: "{output}"
cache_dir: "{cache}"
cost_queries: 50
tasks:
  - name: cranfield
    type: beir
    path: "{data}"
retrievers:
  - name: dense
    type: dense
    params: {{export_dir: "{export}"}}
  - name: minilm
    type: dense
    params: {{export_dir: "{export}"}}
    sweep:
{grid}{extra}
"""


def _fmt(value: object, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{float(value):.{digits}f}"  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("EVALSUITE_DATA_DIR",
                                                                         REPO.parent / "shared" / "data"))
                        / "cranfield")
    parser.add_argument("--encoders", action="store_true", help="add the encoder-precision axis")
    parser.add_argument("--quick", action="store_true", help="a 10-point grid (a smoke run)")
    parser.add_argument("--cache-dir", type=Path, help="embedding cache to use and keep (default: a fresh "
                        "temporary one, so that the corpus is encoded once in this run)")
    parser.add_argument("--cost-queries", type=int, default=50, help="queries timed one at a time per point")
    args = parser.parse_args()

    from evalsuite.config import load_suite
    from evalsuite.metrics.stats import bootstrap_ci
    from evalsuite.retrievers.cache import default_cache_dir
    from evalsuite.runner import RunOptions, run_suite
    from evalsuite.tradeoffs import task_tradeoffs

    root = Path(tempfile.mkdtemp(prefix="evalsuite-cost-sweep-"))
    lines: list[str] = []
    stamps: list[tuple[float, str]] = []

    def say(line: str) -> None:
        stamps.append((time.perf_counter(), line))
        if "sweep " in line:
            lines.append(line)

    try:
        suite_file = root / "suite.yaml"
        suite_file.write_text(_suite(args.data.resolve(), args.cache_dir or root / "cache",
                                     default_cache_dir() / "onnx", root / "out", QUICK_GRID if args.quick else GRID,
                                     args.encoders).replace("cost_queries: 50", f"cost_queries: {args.cost_queries}"))
        suite = load_suite(suite_file)
        print(f"machine: {platform.platform()}, {os.cpu_count()} cores, load {os.getloadavg()}")
        began = time.perf_counter()
        results = run_suite(suite, RunOptions(progress=False, on_event=say, store=root / "store.sqlite"))
        total = time.perf_counter() - began
        cells = {c.system: c for c in results.cells if c.task == "cranfield"}
        encoded = sum(int(c.stats.get("docs_encoded_for_this_point", c.stats.get("docs_encoded", 0)))
                      for c in cells.values())
        encode_seconds = max((float(c.stats.get("encode_seconds", 0.0)) for c in cells.values()), default=0.0)
        first_point = next(t for t, line in stamps if line.startswith("cranfield / minilm@"))
        sweep_seconds = max(t for t, line in stamps if line.startswith("cranfield / ")) - first_point

        reference = cells["minilm@384/float32/flat"].aggregate[METRIC]
        print(f"\n{'system':44} {'nDCG@10':>7} {'95% CI':>17} {'% f32':>6} {'B/doc':>7} {'rescore B':>9} "
              f"{'p50 ms':>7} {'p95 ms':>7} {'q/s':>7} {'docs/s':>7}")
        for name, cell in cells.items():
            costs = cell.costs
            values = [v for v in cell.per_query.get(METRIC, {}).values() if v is not None]
            ci = bootstrap_ci(values, n_resamples=2000, seed=0)
            value = cell.aggregate[METRIC]
            print(f"{name:44} {value:7.4f} [{ci.low:.4f}, {ci.high:.4f}] {100 * value / reference:6.1f} "
                  f"{_fmt(costs.get('bytes_per_doc'), 0):>7} {_fmt(costs.get('rescore_bytes_per_doc'), 0):>9} "
                  f"{_fmt(costs.get('query_latency_p50_ms'), 2):>7} {_fmt(costs.get('query_latency_p95_ms'), 2):>7} "
                  f"{_fmt(costs.get('queries_per_s'), 1):>7} {_fmt(costs.get('encode_docs_per_s'), 0):>7}")

        view = task_tradeoffs(results, "cranfield", metric=METRIC, systems=[n for n in cells if n != "dense"])
        if view is not None:
            for axis, front in (("bytes/doc", view.front_bytes), ("p95 latency", view.front_latency)):
                print(f"\nPareto frontier on ({METRIC}, {axis}): " + ", ".join(p.system for p in front))
            if view.recommendation is not None:
                print(f"\nrecommendation: {view.recommendation.sentence}")
            print(f"\n{'frontier point':44} " + " ".join(f"{'mem ' + s:>12}" for s in ("1M", "100M", "1B"))
                  + " " + " ".join(f"{'ms ' + s:>12}" for s in ("1M", "100M", "1B")))
            for row in view.extrapolation:
                print(f"{row['system']:44} " + " ".join(f"{_bytes(m):>12}" for m in row["memory_bytes"]) + " "
                      + " ".join(f"{_fmt(t, 1):>12}" for t in row["exhaustive_ms_per_query"]))

        print()
        for line in lines:
            print(line)
        dense = cells["dense"].aggregate[METRIC]
        binary = cells["minilm@384/ubinary+rescore4/flat"].aggregate[METRIC]
        print(f"\nplain dense nDCG@10 {dense:.6f}; minilm@384/float32/flat {reference:.6f}: "
              f"{'EQUAL' if dense == reference else 'DIFFERENT'}")
        print(f"ubinary+rescore4/flat keeps {100 * binary / reference:.2f}% of float32 (target >= 95%)")
        print(f"documents encoded in the whole run: {encoded} of {len(cells)} systems x 1400 "
              f"({encode_seconds:.1f} s of encoding); total run {total:.1f} s; "
              f"sweep points after the first encoding: {sweep_seconds:.1f} s (target < 180 s)")
        print(f"load after: {os.getloadavg()}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000:
            return f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"


if __name__ == "__main__":
    main()

"""Cold vs warm run of the shipped default suite (`evalsuite run tasks/default.yaml`).

Each run is a fresh process, as a user would run it: the first with an empty embedding
cache (models load, every document and query is encoded), the second with the cache the
first one filled. Prints both wall times, the ratio, and how many texts each run encoded
(read from the results' per-retriever counters).

    python bench/suite_rerun.py [--suite tasks/default.yaml]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from evalsuite.config import load_suite

REPO = Path(__file__).resolve().parents[1]


def run_once(suite: Path, out: Path, cache: Path) -> tuple[float, int, int]:
    """Seconds for one ``evalsuite run``, texts encoded, texts served from the cache."""
    began = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "evalsuite", "run", str(suite), "--output", str(out),
                           "--cache-dir", str(cache), "--no-progress", "--quiet"],
                          capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - began
    if proc.returncode not in (0, 1):
        sys.exit(f"evalsuite run failed ({proc.returncode}):\n{proc.stderr}")
    latest = out / load_suite(suite).name / "latest"
    results = json.loads((latest.resolve() / "results.json").read_text())
    encoded = cached = 0
    for cell in results["results"]:
        stats = cell.get("stats", {})
        encoded += int(sum(stats.get(f"{kind}_encoded", 0) for kind in ("docs", "queries", "texts")))
        cached += int(sum(stats.get(f"{kind}_from_cache", 0) for kind in ("docs", "queries", "texts")))
    return seconds, encoded, cached


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", type=Path, default=REPO / "tasks" / "default.yaml")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out, cache = Path(tmp) / "reports", Path(tmp) / "cache"
        cold = run_once(args.suite, out, cache)
        warm = run_once(args.suite, out, cache)
    print(f"suite: {args.suite.relative_to(REPO) if args.suite.is_relative_to(REPO) else args.suite}")
    print(f"{'run':6} {'seconds':>8} {'texts encoded':>14} {'from cache':>11}")
    for name, (seconds, encoded, cached) in (("cold", cold), ("warm", warm)):
        print(f"{name:6} {seconds:8.1f} {encoded:14d} {cached:11d}")
    print(f"warm run is {cold[0] / warm[0]:.1f}x faster")


if __name__ == "__main__":
    main()

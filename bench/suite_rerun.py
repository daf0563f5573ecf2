"""Cold vs warm run of the shipped default suite (`evalsuite run tasks/default.yaml`).

Each run is a fresh process, as a user would run it, report included: the first with an
empty embedding cache (models load, every document and query is encoded), then
``--warm`` (default 3) runs with the cache the first one filled. Prints the wall times,
the cold/warm ratio (against the median warm run), and how many texts each run encoded
(read from the results' per-retriever counters).

Figures are wall-clock seconds with CPU seconds (user + system, all threads) beside them:
on a shared, oversubscribed machine the CPU figure is the steadier one. Every run is split
in three, from the progress lines ``evalsuite run`` prints on
stderr, each stamped when it arrives:

* start-up: process start to the first progress line (imports, reading the suite YAML,
  building the retrievers);
* suite: from there to "writing the report" (loading data, indexing, searching from the
  cache, evaluating, gates, writing results and the store);
* report: from "writing the report" to the process's exit (statistics, HTML, Markdown).

    python bench/suite_rerun.py [--suite tasks/default.yaml] [--warm 3]
    python bench/suite_rerun.py --cache-dir DIR   # warm runs only, on a cache an earlier run filled
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _bytecode import compile_package  # bench/ is on sys.path when run as a script

from evalsuite.config import load_suite

REPO = Path(__file__).resolve().parents[1]


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cpu_of(pid: int) -> float:
    """CPU seconds (user + system) a running process has used so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_once(suite: Path, out: Path, cache: Path) -> dict[str, float]:
    """Seconds for one ``evalsuite run`` (and its parts), wall clock and CPU, texts encoded and
    from the cache."""
    cpu_before = _child_cpu()
    began = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "evalsuite", "run", str(suite), "--output", str(out),
                             "--cache-dir", str(cache), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
    assert proc.stderr is not None and proc.stdout is not None
    first = report = None
    first_cpu = report_cpu = 0.0
    lines = []
    for line in proc.stderr:
        now = time.perf_counter() - began
        lines.append(line)
        if first is None and line.startswith("evalsuite: "):
            first, first_cpu = now, _cpu_of(proc.pid)
        if "writing the report" in line:
            report, report_cpu = now, _cpu_of(proc.pid)
    proc.stdout.read()
    code = proc.wait()
    seconds = time.perf_counter() - began
    cpu = _child_cpu() - cpu_before
    if code not in (0, 1):
        sys.exit(f"evalsuite run failed ({code}):\n{''.join(lines[-20:])}")
    latest = out / load_suite(suite).name / "latest"
    results = json.loads((latest.resolve() / "results.json").read_text())
    encoded = cached = 0
    for cell in results["results"]:
        stats = cell.get("stats", {})
        encoded += int(sum(stats.get(f"{kind}_encoded", 0) for kind in ("docs", "queries", "texts")))
        cached += int(sum(stats.get(f"{kind}_from_cache", 0) for kind in ("docs", "queries", "texts")))
    first = seconds if first is None else first
    report = seconds if report is None else report
    return {"seconds": seconds, "startup": first, "suite": report - first, "report": seconds - report,
            "cpu": cpu, "startup_cpu": first_cpu, "suite_cpu": report_cpu - first_cpu,
            "report_cpu": cpu - report_cpu if report_cpu else 0.0, "encoded": encoded, "cached": cached}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", type=Path, default=REPO / "tasks" / "default.yaml")
    parser.add_argument("--warm", type=int, default=3, help="warm runs (the median is reported)")
    parser.add_argument("--cache-dir", type=Path,
                        help="an embedding cache an earlier run filled: skip the cold run, time warm runs only")
    args = parser.parse_args()
    print(compile_package())
    with tempfile.TemporaryDirectory() as tmp:
        out, cache = Path(tmp) / "reports", args.cache_dir or Path(tmp) / "cache"
        cold = None if args.cache_dir else run_once(args.suite, out, cache)
        warm = [run_once(args.suite, out, cache) for _ in range(args.warm)]
    print(f"suite: {args.suite.relative_to(REPO) if args.suite.is_relative_to(REPO) else args.suite}; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("wall-clock seconds (CPU seconds: user + system, all threads)")
    print(f"{'run':8} {'total':>13} {'start-up':>13} {'suite':>13} {'report':>13} {'encoded':>8} {'cached':>7}")

    def cell(r: dict[str, float], key: str) -> str:
        return f"{r[key]:6.2f} ({r[key + '_cpu' if key != 'seconds' else 'cpu']:4.2f})"

    runs = [("cold", cold)] if cold is not None else []
    for name, r in (*runs, *((f"warm {i + 1}", w) for i, w in enumerate(warm))):
        print(f"{name:8} {cell(r, 'seconds')} {cell(r, 'startup')} {cell(r, 'suite')} {cell(r, 'report')} "
              f"{int(r['encoded']):8d} {int(r['cached']):7d}")
    keys = ("seconds", "startup", "suite", "report", "cpu", "startup_cpu", "suite_cpu", "report_cpu")
    med = {k: statistics.median(w[k] for w in warm) for k in keys}
    print(f"{'warm med':8} {cell(med, 'seconds')} {cell(med, 'startup')} {cell(med, 'suite')} {cell(med, 'report')}")
    if cold is not None:
        print(f"the warm run (median) is {cold['seconds'] / med['seconds']:.1f}x faster than the cold run "
              f"(wall clock; {cold['cpu'] / med['cpu']:.1f}x in CPU time)")


if __name__ == "__main__":
    main()

"""The ``evalsuite report`` subcommand (registered by :mod:`evalsuite.cli`).

``evalsuite report RESULTS... [-o FILE] [--baseline-system NAME] [--markdown FILE]`` reads
one or more ``results.json`` files (or the results folders holding them) and writes the
self-contained HTML report, plus the Markdown summary when asked. Errors are
:class:`~evalsuite.errors.EvalsuiteError` (one line, exit 2).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalsuite._cliargs import add_baseline_system
from evalsuite.errors import ConfigError
from evalsuite.safepaths import safe_filename

if TYPE_CHECKING:  # the CLI imports this module at start-up: keep it light (no pandas)
    from evalsuite.results import SuiteResults

__all__ = ["add_report_parser", "cmd_report", "default_report_path"]


def default_report_path(results: SuiteResults, root: str | Path = "reports") -> Path:
    """``<root>/<suite>-<run_id>.html`` (the default of ``evalsuite report``)."""
    return Path(root) / f"{safe_filename(f'{results.suite}-{results.run_id}')}.html"


def add_report_parser(sub: Any) -> None:
    """Register ``report`` on the ``evalsuite`` subparsers."""
    p = sub.add_parser(
        "report", help="render the self-contained HTML model-comparison report of suite results",
        description="Render one self-contained HTML file (the verdict per task, gate decisions, comparison tables "
        "with bootstrap CIs, pairwise significance matrices, charts, per-query histogram and drill-down, leakage, "
        "reproducibility, set-up notes) from one or more results of 'evalsuite run'; optionally the Markdown "
        "summary too.")
    p.add_argument("results", nargs="+", metavar="RESULTS",
                   help="results.json or a results folder; several are combined into one report")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="HTML file to write, or a folder (default: reports/<suite>-<run_id>.html)")
    add_baseline_system(p)
    p.add_argument("--compare-system", metavar="NAME",
                   help="challenger in the per-query drill-down (default: the best other system per task)")
    p.add_argument("--markdown", metavar="FILE", help="also write the Markdown summary here ('-' for stdout)")
    p.add_argument("--resamples", type=int, default=10_000,
                   help="bootstrap / randomization resamples (default: %(default)s)")
    p.add_argument("--drilldown", type=int, default=40, metavar="N",
                   help="most-disagreeing queries listed per task (default: %(default)s)")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="cache folder where bootstrap intervals and tests are memoised for the next report on "
                   "the same results (default: the run's default, $EVALSUITE_CACHE_DIR or ~/.cache/evalsuite)")
    p.add_argument("--no-cache", action="store_true", help="compute every statistic, memoise nothing")
    p.set_defaults(handler=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    """Handler of ``evalsuite report``: 0 on success (the report says whether gates failed)."""
    from evalsuite.io._text import atomic_write, is_process_stream
    from evalsuite.report.markdown import render_markdown
    from evalsuite.report.model import build_report
    from evalsuite.report.render import SIZE_BUDGET, report_html
    from evalsuite.results import load_results

    if args.resamples < 100:
        raise ConfigError(f"--resamples {args.resamples}: use at least 100 (10000 gives stable p-values and CIs)")
    if args.drilldown < 0:
        raise ConfigError(f"--drilldown {args.drilldown}: must be 0 or more")
    results = [load_results(path) for path in args.results]
    if args.no_cache:
        cache_dir = None
    else:
        from evalsuite.retrievers.cache import default_cache_dir

        cache_dir = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    report = build_report(results, baseline_system=args.baseline_system, compare_system=args.compare_system,
                          n_resamples=args.resamples, drilldown_queries=args.drilldown, cache_dir=cache_dir)
    html = report_html(report)
    size = len(html.encode("utf-8"))
    if args.output == "-":  # as --markdown -
        sys.stdout.write(html)
        print(f"report: standard output ({size / 1024:.0f} kB)", file=sys.stderr)
    else:
        if args.output is None:
            path = default_report_path(results[0])
        else:
            path = Path(args.output)
            if path.is_dir() or args.output.endswith(("/", os.sep)):  # "-o newdir/" means a folder, not a file
                path = default_report_path(results[0], path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as fh:
            fh.write(html)
        if path.is_file() and not is_process_stream(path):
            size = path.stat().st_size  # as written (report.html.gz is compressed)
            print(f"report: {path} ({size / 1024:.0f} kB)")
        else:  # -o /dev/stdout: the line goes to stderr, not into the HTML
            print(f"report: {path} ({size / 1024:.0f} kB)", file=sys.stderr)
    if size > SIZE_BUDGET:
        print(f"evalsuite: warning: the report is {size / 2**20:.1f} MB, over the {SIZE_BUDGET // 2**20} MB budget; "
              "lower --drilldown", file=sys.stderr)
    if args.markdown:
        text = render_markdown(report)
        if args.markdown == "-":
            sys.stdout.write(text)
        else:
            with atomic_write(args.markdown) as fh:
                fh.write(text)
            print(f"markdown: {args.markdown}")
    return 0

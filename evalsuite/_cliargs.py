"""Command-line options that several ``evalsuite`` subcommands share, defined once.

Used by :mod:`evalsuite.cli` (run, check-leakage), :mod:`evalsuite.report.command` (report)
and :mod:`evalsuite.finetune.command` (finetune, pairs, mine-negatives); the CLI builds its
parser at start-up, so this module imports nothing but the standard library.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_baseline_system", "add_suite_run_options", "add_task_source", "seed"]


def seed(text: str) -> int:
    """``--seed``: an integer in [0, 2^32), as a suite's ``seed`` (a negative one crashed numpy's generator)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"{value} is not in [0, 2^32)")
    return value


def add_suite_run_options(p: Any) -> None:
    """``--cache-dir``, ``--no-report``, ``--progress`` / ``--no-progress`` and ``-q``: the
    options of a command that runs a suite's retrievers and writes a report (run, finetune)."""
    p.add_argument("--cache-dir", help="embedding cache folder (default: ~/.cache/evalsuite)")
    p.add_argument("--no-report", action="store_true", help="do not write report.html / report.md")
    p.add_argument("--progress", dest="progress", action="store_true", default=None, help="progress bars")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the summary")


def add_baseline_system(p: Any) -> None:
    """``--baseline-system NAME``: the system a report's tables compare with (run, report)."""
    p.add_argument("--baseline-system", metavar="NAME",
                   help="system the report's tables (▲/▼) compare with (default: the first system; the verdict "
                   "and the pairwise matrices compare every pair)")


def add_task_source(p: Any, *, role: str = "") -> None:
    """The ``TASK`` argument (a golden set or BEIR folder) and its ``--split``
    (check-leakage, pairs, mine-negatives); ``role`` says what the task serves for."""
    p.add_argument("task", help="golden set (folder or file) or BEIR folder" + (f": {role}" if role else ""))
    p.add_argument("--split", default="test", help="qrels split of the task (default: test)")

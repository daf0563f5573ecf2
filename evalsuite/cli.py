"""The ``evalsuite`` command line.

Library code never prints; this module does. Every user error is one line on stderr,
``evalsuite: error: <file>:<line>: <what> (<hint>)``, and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TextIO

from evalsuite import __version__
from evalsuite.errors import EvalsuiteError

__all__ = ["main"]

EXIT_OK = 0
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in evalsuite's one-line form (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"evalsuite: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _format_number(value: float, digits: int) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _print_table(rows: list[list[str]], header: list[str], out: TextIO) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    def line(cells: list[str]) -> str:
        return "  ".join(
            str(c).ljust(w) if i == 0 or not _numeric(str(c)) else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    print(line(header), file=out)
    for row in rows:
        print(line(row), file=out)


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return text == "-"
    return True


def _json_value(value: float) -> float | None:
    return None if isinstance(value, float) and math.isnan(value) else value


def _queries(n: int, kind: str) -> str:
    return f"{n} {kind} quer{'y' if n == 1 else 'ies'}"


# -- evaluate -------------------------------------------------------------------------------


def _add_evaluate(sub: Any) -> None:
    from evalsuite.metrics.evaluate import DEFAULT_METRICS

    p = sub.add_parser(
        "evaluate",
        help="score TREC/JSON runs against qrels (a trec_eval drop-in)",
        description="Score one or more runs against qrels with trec_eval semantics. "
        "Positional form: evalsuite evaluate QRELS RUN [RUN ...].",
    )
    p.add_argument("files", nargs="*", metavar="FILE", help="QRELS then RUN files (alternative to --qrels/--run)")
    p.add_argument("--qrels", help="qrels file: TREC, BEIR TSV, .json or .jsonl")
    p.add_argument("--run", action="append", default=[], help="run file (TREC, .json, .jsonl); repeat for several")
    p.add_argument("-m", "--metric", action="append", default=[], metavar="METRIC",
                   help=f"metric name, repeatable (default: {' '.join(DEFAULT_METRICS)}); "
                   "see 'evalsuite metrics'")
    p.add_argument("-q", "--per-query", action="store_true", help="also print per-query values")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.add_argument("-l", "--relevance-level", type=int, default=1,
                   help="minimum grade that counts as relevant (trec_eval -l; default 1)")
    p.add_argument("--empty-queries", choices=("exclude", "zero"), default="exclude",
                   help="queries without relevant docs: exclude from the mean (default) or count them "
                   "(trec_eval -c mean)")
    p.add_argument("--digits", type=int, default=4, help="decimals shown in the table (default 4)")
    p.set_defaults(handler=_cmd_evaluate)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from evalsuite.errors import ConfigError
    from evalsuite.io import read_qrels, read_run
    from evalsuite.metrics.evaluate import DEFAULT_METRICS, evaluate
    from evalsuite.metrics.spec import parse_metrics

    qrels_path, run_paths = args.qrels, list(args.run)
    files = list(args.files)
    if qrels_path is None and files:
        qrels_path = files.pop(0)
    run_paths += files
    if qrels_path is None or not run_paths:
        raise ConfigError("evaluate needs a qrels file and at least one run file "
                          "(evalsuite evaluate --qrels QRELS --run RUN)")
    specs = parse_metrics(args.metric or DEFAULT_METRICS)
    qrels = read_qrels(qrels_path)
    results = []
    names_seen: dict[str, int] = {}
    for path in run_paths:
        run = read_run(path)
        if run.name in names_seen:  # two runs with one tag: keep rows apart
            names_seen[run.name] += 1
            run = run.with_name(f"{run.name}#{names_seen[run.name]}")
        else:
            names_seen[run.name] = 1
        results.append(evaluate(qrels, run, specs, relevance_level=args.relevance_level,
                                empty_queries=args.empty_queries))

    out = sys.stdout
    metrics = [str(s) for s in specs]
    for result in results:
        notes = []
        if result.missing_queries:
            notes.append(f"{_queries(len(result.missing_queries), 'judged')} missing from the run scored 0")
        if result.excluded_queries and args.empty_queries == "exclude":
            notes.append(f"{_queries(len(result.excluded_queries), 'judged')} without relevant docs excluded "
                         "from the mean")
        if result.ignored_queries:
            notes.append(f"{_queries(len(result.ignored_queries), 'run')} not in the qrels ignored")
        if notes:
            print(f"evalsuite: note: run {result.run_name!r}: " + "; ".join(notes), file=sys.stderr)

    if args.format == "json":
        payload = {
            "metrics": metrics,
            "relevance_level": args.relevance_level,
            "empty_queries": args.empty_queries,
            "runs": [
                {
                    "run": r.run_name,
                    "aggregate": {k: _json_value(v) for k, v in r.aggregate.items()},
                    "n_queries": r.n_queries,
                    "missing_queries": list(r.missing_queries),
                    "excluded_queries": list(r.excluded_queries),
                    "ignored_queries": list(r.ignored_queries),
                    **({"per_query": {q: {k: _json_value(v) for k, v in row.items()}
                                      for q, row in r.per_query.to_dict(orient="index").items()}}
                       if args.per_query else {}),
                }
                for r in results
            ],
        }
        json.dump(payload, out, indent=2)
        out.write("\n")
        return EXIT_OK

    if args.format == "csv":
        import csv

        writer = csv.writer(out, lineterminator="\n")
        if args.per_query:
            writer.writerow(["run", "query_id", *metrics])
            for r in results:
                for q, row in r.per_query.iterrows():
                    writer.writerow([r.run_name, q, *("" if math.isnan(row[m]) else repr(float(row[m]))
                                                     for m in metrics)])
                writer.writerow([r.run_name, "all", *(repr(r.aggregate[m]) for m in metrics)])
        else:
            writer.writerow(["run", *metrics, "queries"])
            for r in results:
                writer.writerow([r.run_name, *(repr(r.aggregate[m]) for m in metrics),
                                 max(r.n_queries.values(), default=0)])
        return EXIT_OK

    digits = args.digits
    if args.per_query:
        rows = []
        for r in results:
            for q, row in r.per_query.iterrows():
                rows.append([r.run_name, str(q), *(_format_number(row[m], digits) for m in metrics)])
            rows.append([r.run_name, "all", *(_format_number(r.aggregate[m], digits) for m in metrics)])
        _print_table(rows, ["run", "query", *metrics], out)
    else:
        rows = [[r.run_name, *(_format_number(r.aggregate[m], digits) for m in metrics),
                 str(max(r.n_queries.values(), default=0))] for r in results]
        _print_table(rows, ["run", *metrics, "queries"], out)
    return EXIT_OK


# -- metrics --------------------------------------------------------------------------------


def _add_metrics(sub: Any) -> None:
    p = sub.add_parser("metrics", help="list the metrics and the names they accept")
    p.set_defaults(handler=_cmd_metrics)


def _cmd_metrics(args: argparse.Namespace) -> int:
    from evalsuite.metrics.correlation import pearson  # noqa: F401  (registers correlations)
    from evalsuite.metrics.ranking import METRICS
    from evalsuite.metrics.spec import family_info

    rows = []
    for name in METRICS.names():
        metric = METRICS.get(name)
        info = family_info(name)
        example = info.display + ("@10" if info.cutoff != "forbidden" else "")
        doc = (type(metric).__doc__ or "").strip().splitlines()[0]
        rows.append([example, info.cutoff, ", ".join(info.aliases), doc])
    _print_table(rows, ["metric", "cutoff", "also accepted", "definition"], sys.stdout)
    return EXIT_OK


# -- entry point ----------------------------------------------------------------------------

_COMMANDS: tuple[Callable[[Any], None], ...] = (_add_evaluate, _add_metrics)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="evalsuite", description="Retrieval evaluation and benchmarking.")
    parser.add_argument("--version", action="version", version=f"evalsuite {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in _COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.handler(args))
    except EvalsuiteError as exc:
        print(f"evalsuite: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:  # permissions, disk full, ...: the user's environment, not a bug
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"evalsuite: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("evalsuite: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

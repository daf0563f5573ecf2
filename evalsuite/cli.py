"""The ``evalsuite`` command line.

Library code never prints; this module does. Every user error is one line on stderr,
``evalsuite: error: <file>:<line>: <what> (<hint>)``, and exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TextIO

from evalsuite import __version__
from evalsuite._cliargs import add_baseline_system, add_suite_run_options, add_task_source
from evalsuite.errors import ConfigError, EvalsuiteError

__all__ = ["main"]

EXIT_OK = 0
EXIT_USAGE = 2  # the whole contract: evalsuite/exitcodes.py


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in evalsuite's one-line form (exit 2)."""

    def error(self, message: str) -> NoReturn:
        print(f"evalsuite: error: {message} (see '{self.prog} --help')", file=sys.stderr)
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
    from evalsuite.metrics.spec import DEFAULT_METRICS

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
    p.add_argument("--digits", type=_non_negative, default=4, help="decimals shown in the table (default 4)")
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
        example = {"required": f"{info.display}@k", "optional": f"{info.display}, {info.display}@k"}.get(
            info.cutoff, info.display)
        doc = (type(metric).__doc__ or "").strip().splitlines()[0].replace("``", "")
        rows.append([example, info.cutoff, ", ".join(info.aliases), doc])
    _print_table(rows, ["metric", "cutoff", "also accepted", "definition"], sys.stdout)
    return EXIT_OK


# -- run ------------------------------------------------------------------------------------


def _add_run(sub: Any) -> None:
    p = sub.add_parser("run", help="run a suite: every retriever on every task, results + gates",
                       description="Run tasks/<suite>.yaml: index, search and evaluate every retriever on every "
                       "task; write results, run files and gate decisions; exit 1 if a gate fails.")
    p.add_argument("suite", help="suite YAML, e.g. tasks/default.yaml")
    p.add_argument("--output", help="results root folder (default: the suite's 'output', reports/)")
    p.add_argument("--store", help="results store SQLite file (default: <output>/history.sqlite)")
    p.add_argument("--task", action="append", default=[], help="run only this task (repeatable)")
    p.add_argument("--system", action="append", default=[], help="run only this retriever (repeatable)")
    p.add_argument("--baseline", help="baseline results.json or store id for regression gates "
                   "(default: the suite's 'baseline')")
    p.add_argument("--update-baseline", action="store_true",
                   help="after the gates pass, write these results to the suite's baseline file (default "
                   "baselines/<suite>.json, meant to be committed): the explicit ratchet")
    p.add_argument("--force", action="store_true", help="with --update-baseline: update even if a gate failed")
    _add_gate_outputs(p)
    add_baseline_system(p)
    add_suite_run_options(p)
    p.add_argument("--no-cache", action="store_true", help="encode everything, read and write no cache")
    p.add_argument("--fresh-latency", action="store_true",
                   help="time every query encoding of the latency sample again instead of charging the time an "
                   "earlier run on this machine recorded in the cache (the search part is timed on every run)")
    p.add_argument("--executor", choices=["local", "ray"],
                   help="where encoding and search run (default: the suite's 'executor', local; docs/scale-out.md)")
    p.add_argument("--ray-address", metavar="ADDR",
                   help="Ray cluster to join with --executor ray (default: $RAY_ADDRESS, else the suite's "
                   "ray.address, else a local Ray instance)")
    p.add_argument("--digits", type=_non_negative, default=4, help="decimals shown (default 4)")
    p.add_argument("--costs", action="store_true", help="also print each system's costs (index size per document, "
                   "query latency p50/p95, queries/s, index time)")
    p.set_defaults(handler=_cmd_run)


def _print_results(results: Any, digits: int, out: TextIO, costs: bool = False) -> None:
    from evalsuite.retrievers.cost import COST_COLUMNS, cost_cells

    for task in dict.fromkeys(c.task for c in results.cells):
        cells = [c for c in results.cells if c.task == task]
        metrics = list(dict.fromkeys(m for c in cells for m in c.aggregate))
        print(f"\n{task}", file=out)
        rows = []
        for c in cells:
            row = [c.system, *(_format_number(c.aggregate.get(m, math.nan), digits) for m in metrics)]
            row += cost_cells(c.costs) if costs else []
            if c.notes:
                row.append(c.notes[0])
            rows.append(row)
        _print_table(rows, ["system", *metrics] + (list(COST_COLUMNS) if costs else [])
                     + (["note"] if any(c.notes for c in cells) else []), out)
    for skipped in results.skipped:
        print(f"\nskipped task {skipped['task']}: {skipped['reason']}", file=out)


def _resolve_baseline(ref: str | None, store_path: Any, base_dir: Any = None) -> Any:
    """A baseline from a results file/folder path or a results-store id.

    A reference that looks like a path (``.json``, a ``/``) or names an existing file or
    folder is read as one; anything else is a store id."""
    from pathlib import Path

    from evalsuite.errors import DataError
    from evalsuite.results import load_results
    from evalsuite.store import ResultsStore

    if ref is None:
        return None
    path = Path(ref)
    if not path.is_absolute() and base_dir is not None and not path.exists():
        path = Path(base_dir) / path
    if path.exists() or _looks_like_path(ref):
        return load_results(path)
    store = ResultsStore(store_path)
    if not store.path.exists():
        raise DataError(f"{ref!r} is neither a results file or folder nor a run id: no such file, and the "
                        "results store does not exist", path=store.path,
                        hint="give a results.json, a results folder, or the id of a stored run")
    return store.get(ref)


def _load_baseline(*, explicit: str | None, configured: str | None, base_dir: Any, store: Any,
                   hint: str) -> tuple[Any, str | None]:
    """(baseline results or None, why there is none): the explicit baseline, else the configured one.

    A configured baseline *file* that does not exist yet (before the first ratchet) gives no
    baseline and a reason (regression rules then warn and say how to create it); an explicit
    ``--baseline`` that cannot be found is an error. Called before any work is done, so a bad
    baseline stops a run before it writes anything."""
    from pathlib import Path

    from evalsuite.config import expand_path

    if explicit:
        return _resolve_baseline(explicit, store), None
    if configured and _looks_like_path(configured):
        path = expand_path(configured, Path(base_dir) if base_dir is not None else Path.cwd())
        if not path.exists():
            return None, f"no baseline yet: {path} does not exist; set it with '{hint}' and commit it"
        return _resolve_baseline(str(path), store), None
    return _resolve_baseline(configured, store, base_dir), None


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0 or value > 17:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and 17")
    return value


def _write_gate_outputs(report: Any, folder: Any) -> None:
    from evalsuite.io._text import atomic_write

    for name, text in (("gates.json", report.to_json() + "\n"), ("gates.junit.xml", report.junit_xml()),
                       ("gates.md", report.markdown())):
        with atomic_write(folder / name) as fh:
            fh.write(text)


def _add_gate_outputs(p: Any) -> None:
    p.add_argument("--junit", help="write the gate decisions as JUnit XML here ('-' for stdout)")
    p.add_argument("--markdown", help="write the Markdown summary here (e.g. \"$GITHUB_STEP_SUMMARY\"; '-' for stdout)")
    p.add_argument("--json", help="write the gate decisions as JSON here ('-' for stdout)")
    p.add_argument("--allow-missing", action="append", default=[], metavar="TASK[/SYSTEM]",
                   help="a task (or task/system pair) of the baseline that this run may lack without failing the "
                   "regression gates (repeatable)")


def _check_requested(args: argparse.Namespace, *more: tuple[str, Any]) -> None:
    """The --junit / --markdown / --json targets (and ``more`` (option, path) pairs) can be files,
    before any work (a run is not committed and then reported as bad input because one of them is
    a folder)."""
    from pathlib import Path

    for option, target in (("--junit", args.junit), ("--markdown", args.markdown), ("--json", args.json), *more):
        if not target or (target == "-" and option != "--update-baseline"):  # '-': standard output
            continue
        if Path(target).is_dir():
            raise ConfigError(f"{option} {target}: is a folder; give a file path")
        above = next(p for p in Path(target).absolute().parents if p.exists())  # the root always exists
        if not above.is_dir():
            raise ConfigError(f"{option} {target}: {above} is a file, so {target} cannot be created in it")


def _write_requested(report: Any, args: argparse.Namespace) -> None:
    """The --junit / --markdown / --json files a command was asked for."""
    from pathlib import Path

    from evalsuite.io._text import atomic_write, naming_errors

    for target, text in ((args.junit, report.junit_xml()), (args.markdown, report.markdown()),
                         (args.json, report.to_json() + "\n")):
        if target == "-":  # as report --markdown -
            sys.stdout.write(text)
        elif target:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            mode = "a" if target == os.environ.get("GITHUB_STEP_SUMMARY") else "w"
            if mode == "a":  # GitHub's job summary collects what every step appends
                with naming_errors(target), open(target, "a", encoding="utf-8") as fh:  # a full disk names no file
                    fh.write(text)
            else:
                with atomic_write(target) as fh:
                    fh.write(text)


def _print_gates(report: Any, out: TextIO) -> None:
    from evalsuite.gates import summary_line

    if not report.results:
        return
    print(f"\ngates: {summary_line(report.counts())}", file=out)
    groups: dict[tuple[str, str, str], list[Any]] = {}
    for r in report.results:  # identical decisions (e.g. "no baseline yet") are printed once
        groups.setdefault((r.status, r.gate, r.message), []).append(r)
    for (status, gate, message), members in groups.items():
        title = members[0].title if len(members) == 1 else f"{gate} [{len(members)} task/system pairs]"
        print(f"  {status.upper():4}  {title}: {message}", file=out)


def _check_baseline_system(suite: Any, wanted: str, only: Sequence[str]) -> None:
    """``--baseline-system`` names a system the run will have: a retriever of the suite or a point
    of its sweep (``minilm@128/int8/flat``), among those ``--system`` keeps; else a "did you mean"
    error, before any work."""
    from evalsuite.errors import UnknownNameError
    from evalsuite.retrievers.sweep import matches_point_name, point_names

    systems: list[str] = []
    for r in suite.retrievers:
        names = point_names(r.name, r.sweep) if r.sweep is not None else [r.name]
        if r.sweep is not None and wanted == r.name:
            raise ConfigError(f"--baseline-system {wanted!r} is a sweep of {len(names)} points, each its own system: "
                              f"name one of them, e.g. {', '.join(repr(n) for n in names[:3])}")
        systems.extend(n for n in names
                       if not only or r.name in only or any(matches_point_name(o, n) for o in only))
    if not any(matches_point_name(wanted, n) for n in systems):
        raise UnknownNameError("--baseline-system", wanted, systems)


def _cmd_run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from evalsuite.config import load_suite
    from evalsuite.gates import evaluate_gates
    from evalsuite.runner import RunOptions, run_cache_dir, run_suite, store_path

    suite = load_suite(args.suite)
    quiet = args.quiet

    def say(line: str) -> None:
        if not quiet:
            print(f"evalsuite: {line}", file=sys.stderr, flush=True)

    # every option is checked, and the baseline read, before any work: a bad one leaves nothing behind
    baseline_ref = suite.baseline_ref  # default: baselines/<suite>.json, committed
    baseline_file = suite.resolve(baseline_ref) if _looks_like_path(baseline_ref) else None
    if args.update_baseline and baseline_file is None:
        raise ConfigError(f"{suite.source}: --update-baseline needs 'baseline:' in the suite to name a results file "
                          f"(it names store id {baseline_ref!r})")
    if args.baseline_system is not None:
        _check_baseline_system(suite, args.baseline_system, args.system)
    _check_requested(args, ("--update-baseline", baseline_file if args.update_baseline else None))
    output = Path(args.output) if args.output else None
    store = Path(args.store) if args.store else store_path(suite, output)
    baseline, no_baseline_reason = (None, None)
    if suite.gates:
        baseline, no_baseline_reason = _load_baseline(
            explicit=args.baseline, configured=baseline_ref, base_dir=Path(suite.source).parent, store=store,
            hint=f"evalsuite run {args.suite} --update-baseline")
    # what --task/--system left out on purpose may be absent; so may what --allow-missing names
    allowed = [*args.allow_missing, *(t.name for t in suite.tasks if args.task and t.name not in args.task),
               *(f"*/{r.name}" for r in suite.retrievers if args.system and r.name not in args.system)]
    reports: list[Any] = []
    comparisons: list[Any] = []  # the report model: its verdict heads the summary
    from evalsuite.report import build_report
    from evalsuite.report.verdict import verdict_text

    def finish(results: Any, folder: Path) -> None:
        """Gates and report, written into the run's folder before it gets its final name."""
        if suite.gates:
            report = evaluate_gates(results, suite.gates, baseline=baseline, seed=suite.seed,
                                    no_baseline="warn" if no_baseline_reason else "fail",
                                    no_baseline_reason=no_baseline_reason, allow_missing=allowed)
            results.gates = report.to_dict()["gates"]
            _write_gate_outputs(report, folder)
            reports.append(report)
        say("computing the verdict")
        comparison = build_report(results, baseline_system=args.baseline_system,
                                  cache_dir=run_cache_dir(suite, options))  # statistics memoised there
        comparisons.append(comparison)
        if not args.no_report:
            say("writing the report")
            _write_report(comparison, folder)

    options = RunOptions(
        output=output, store=store, progress=False if quiet else args.progress, only_tasks=args.task,
        only_systems=args.system, cache_dir=Path(args.cache_dir) if args.cache_dir else None,
        no_cache=args.no_cache, fresh_latency=args.fresh_latency, baseline=args.baseline,
        command=["evalsuite", *sys.argv[1:]], on_event=say, finish=finish,
        executor=args.executor, ray_address=args.ray_address,
    )
    results = run_suite(suite, options)
    folder = Path(results.path).parent if results.path else None
    code = EXIT_OK
    if reports:
        _write_requested(reports[0], args)
        code = reports[0].exit_code
    if comparisons:  # the verdict heads the summary
        print("\n" + "\n".join(verdict_text(comparisons[0].verdicts)), file=sys.stdout)
    _print_results(results, args.digits, sys.stdout, costs=args.costs)
    if reports:
        _print_gates(reports[0], sys.stdout)
    if folder is not None and not args.no_report:
        print(f"\nreport: {folder / 'report.html'}", file=sys.stdout)
    if args.update_baseline and baseline_file is not None:
        if code and not args.force:
            print("evalsuite: baseline not updated: a gate failed (use --force to ratchet anyway)", file=sys.stderr)
        else:
            from evalsuite.gates import write_baseline

            write_baseline(results, baseline_file)
            print(f"evalsuite: baseline updated: {baseline_file} <- run {results.run_id} (commit it to keep it)",
                  file=sys.stderr)
    print(f"\nresults: {folder}", file=sys.stdout)
    return code


def _write_report(report: Any, folder: Any) -> Any:
    """``report.html`` and ``report.md`` (of a built report) in the results folder."""
    from evalsuite.io._text import atomic_write
    from evalsuite.report import render_html, render_markdown

    with atomic_write(folder / "report.md") as fh:
        fh.write(render_markdown(report))
    return render_html(report, folder / "report.html")


def _looks_like_path(ref: str) -> bool:
    return ref.endswith(".json") or "/" in ref or "\\" in ref


# -- gate -----------------------------------------------------------------------------------


def _add_gate(sub: Any) -> None:
    p = sub.add_parser("gate", help="evaluate gates on results: exit 0 pass, 1 fail",
                       description="Evaluate the gates of a suite on a results file (or store id) and write "
                       "JSON, JUnit XML and Markdown for CI.")
    p.add_argument("results", help="results.json, a results folder, or a results-store id")
    p.add_argument("--suite", help="suite YAML whose gates to use (default: the gates stored in the results)")
    p.add_argument("--baseline", help="baseline results.json/folder or store id (default: the suite's baseline)")
    p.add_argument("--store", default="reports/history.sqlite", help="results store for ids (default: %(default)s)")
    _add_gate_outputs(p)
    p.add_argument("--update-baseline", metavar="FILE", nargs="?", const="",
                   help="after the gates pass, write these results as the new baseline (explicit ratchet): to FILE, "
                   "else to the suite's baseline (default baselines/<suite>.json)")
    p.add_argument("--force", action="store_true", help="with --update-baseline: update even if a gate failed")
    p.set_defaults(handler=_cmd_gate)


def _cmd_gate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from evalsuite.config import load_suite
    from evalsuite.errors import ConfigError
    from evalsuite.gates import GateSpec, evaluate_gates, write_baseline

    _check_requested(args)
    results = _resolve_baseline(args.results, Path(args.store))
    base_dir = None
    if args.suite:
        suite = load_suite(args.suite)
        gates, baseline_ref, seed, base_dir = suite.gates, suite.baseline_ref, suite.seed, Path(suite.source).parent
    else:
        from pydantic import ValidationError

        from evalsuite.errors import DataError

        config = results.config or {}
        try:
            gates = [GateSpec.model_validate(g) for g in config.get("gates", [])]
        except (ValidationError, TypeError) as exc:
            detail = exc.errors()[0] if isinstance(exc, ValidationError) else {"loc": (), "msg": str(exc)}
            field = ".".join(str(k) for k in detail["loc"])
            raise DataError(f"the gates stored in the results are malformed: config.gates: {field}: {detail['msg']}",
                            path=results.path, hint="pass --suite with a 'gates:' section") from None
        seed = int(config.get("seed", 0))
        baseline_ref = config.get("baseline") or str(Path.cwd() / "baselines" / f"{results.suite}.json")
        if config.get("source"):
            base_dir = Path(config["source"]).parent
    if not gates:
        raise ConfigError("no gates to evaluate: the results carry none; pass --suite with a 'gates:' section")
    target = None  # the baseline file to update, known (and checked) before anything is written
    if args.update_baseline is not None:
        target = args.update_baseline
        if not target:
            if not _looks_like_path(baseline_ref):
                raise ConfigError(f"--update-baseline: the baseline is store id {baseline_ref!r}, not a file; "
                                  "name the file: --update-baseline FILE")
            from evalsuite.config import expand_path

            target = str(expand_path(baseline_ref, Path(base_dir) if base_dir is not None else Path.cwd()))
        _check_requested(args, ("--update-baseline", target))
    baseline, no_baseline_reason = _load_baseline(
        explicit=args.baseline, configured=baseline_ref, base_dir=base_dir, store=Path(args.store),
        hint=f"evalsuite gate {args.results} --update-baseline")
    report = evaluate_gates(results, gates, baseline=baseline, seed=seed,
                            no_baseline="warn" if no_baseline_reason else "fail",
                            no_baseline_reason=no_baseline_reason, allow_missing=args.allow_missing)
    _print_gates(report, sys.stdout)
    _write_requested(report, args)
    if target is not None:
        if report.exit_code and not args.force:
            print("evalsuite: baseline not updated: a gate failed (use --force to ratchet anyway)", file=sys.stderr)
        else:
            write_baseline(results, target)
            print(f"evalsuite: baseline updated: {target} <- run {results.run_id} (commit it to keep it)",
                  file=sys.stderr)
    return int(report.exit_code)


# -- history --------------------------------------------------------------------------------


def _add_history(sub: Any) -> None:
    p = sub.add_parser("history", help="list stored runs; show one; compare two by id",
                       description="Without ids: list runs. One id: its results. Two ids: per task/system/metric "
                       "the change from the first to the second, with a paired randomization test.")
    p.add_argument("ids", nargs="*", help="run ids (a unique prefix is enough)")
    p.add_argument("--store", default="reports/history.sqlite", help="results store (default: %(default)s)")
    p.add_argument("--suite", help="only runs of this suite")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--digits", type=_non_negative, default=4, help="decimals shown (default 4)")
    p.set_defaults(handler=_cmd_history)


def _cmd_history(args: argparse.Namespace) -> int:
    from evalsuite.errors import ConfigError
    from evalsuite.store import ResultsStore

    store = ResultsStore(args.store)
    if not args.ids:
        runs = store.list(args.suite, args.limit)
        if not runs:
            print(f"no runs stored in {args.store}", file=sys.stderr)
            return EXIT_OK
        _print_table([[r.run_id, r.suite, r.created, str(r.n_results), r.path or ""] for r in runs],
                     ["run id", "suite", "created", "results", "path"], sys.stdout)
        return EXIT_OK
    if len(args.ids) == 1:
        results = store.get(args.ids[0])
        print(f"run {results.run_id} of suite {results.suite}, {results.created}")
        _print_results(results, args.digits, sys.stdout)
        return EXIT_OK
    if len(args.ids) != 2:
        raise ConfigError("history takes at most two run ids (old, new)")
    from evalsuite.metrics.stats import compare, correct

    old, new = store.get(args.ids[0]), store.get(args.ids[1])
    old_pairs = {(c.task, c.system) for c in old.cells}
    new_pairs = {(c.task, c.system) for c in new.cells}
    for run, lacking in ((new, sorted(old_pairs - new_pairs)), (old, sorted(new_pairs - old_pairs))):
        if lacking:
            skipped = {s.get("task"): s.get("reason") for s in run.skipped}
            named = ", ".join(f"{t}/{s}" + (" (task skipped)" if t in skipped else "") for t, s in lacking)
            print(f"evalsuite: note: run {run.run_id} has no result for {len(lacking)} task/system pair(s) the "
                  f"other has, not compared: {named}", file=sys.stderr)
    rows, comparisons = [], []
    for cell in new.cells:
        try:
            before = old.cell(cell.task, cell.system)
        except KeyError:
            continue
        for metric in cell.aggregate:
            if metric in before.per_query and metric in cell.per_query:
                c = compare(cell.per_query[metric], before.per_query[metric], metric=metric)
                comparisons.append((cell, metric, before, c))
    adjusted = correct([c.p_randomization for *_, c in comparisons], "holm")
    for (cell, metric, before, c), p in zip(comparisons, adjusted):
        rows.append([cell.task, cell.system, metric, _format_number(before.aggregate[metric], args.digits),
                     _format_number(cell.aggregate[metric], args.digits), f"{c.delta:+.{args.digits}f}",
                     "-" if math.isnan(p) else f"{p:.3f}"])
    print(f"{old.run_id} -> {new.run_id}")
    _print_table(rows, ["task", "system", "metric", "old", "new", "change", "p (Holm)"], sys.stdout)
    return EXIT_OK


# -- check-leakage / validate ---------------------------------------------------------------


def _add_leakage(sub: Any) -> None:
    p = sub.add_parser("check-leakage", help="train/eval overlap, self-retrieval and duplicate checks",
                       description="Check an evaluation set (golden set or BEIR folder), optionally against "
                       "fine-tuning pairs, for leakage. Exit 1 when --max-rate is exceeded.")
    add_task_source(p)
    p.add_argument("--train", help="training pairs: JSONL/CSV with query, positive[, negative]")
    p.add_argument("--threshold", type=_fraction, default=0.8, help="near-duplicate Jaccard threshold (default 0.8)")
    p.add_argument("--max-rate", type=_fraction, help="fail (exit 1) when the leakage rate exceeds this (0 to 1)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--examples", type=int, default=3, help="examples shown per finding (text format)")
    p.set_defaults(handler=_cmd_leakage)


def _cmd_leakage(args: argparse.Namespace) -> int:
    from evalsuite.metrics.leakage import check_leakage, read_training_pairs
    from evalsuite.tasks.golden import load_golden_set

    data = load_golden_set(args.task, split=args.split)
    training = read_training_pairs(args.train) if args.train else None
    report = check_leakage(data, training, threshold=args.threshold)
    failed = args.max_rate is not None and report.leakage_rate > args.max_rate
    if args.format == "json":
        json.dump({**report.to_dict(), "max_rate": args.max_rate, "failed": failed}, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        s = report.summary()
        print(f"{s['task']}: {s['queries']} queries ({s['evaluated_queries']} with relevant judgements in split "
              f"{args.split!r}, the rate's denominator), {s['docs']} docs, {s['training_pairs']} training pairs; "
              f"leakage rate {report.leakage_rate:.1%} ({s['leaked_queries']} evaluated queries affected)")
        for f in report.findings:
            mark = {"leak": "LEAK", "warning": "WARN", "info": "info"}[f.severity] if f.count else "ok"
            print(f"  {mark:4}  {f.count:6}  {f.title}")
            for example in f.examples[: args.examples if f.count else 0]:
                print(f"              e.g. {json.dumps(example, ensure_ascii=False)[:200]}")
        if args.max_rate is not None:
            verdict = "FAIL" if failed else "PASS"
            print(f"{verdict}: leakage rate {report.leakage_rate:.1%} vs allowed {args.max_rate:.1%}")
    return 1 if failed else EXIT_OK


def _add_validate(sub: Any) -> None:
    p = sub.add_parser("validate", help="check a golden set and list every problem")
    p.add_argument("path", help="golden set folder or file")
    p.add_argument("--split", default="test")
    p.add_argument("--corpus", help="corpus file for the single-file form")
    p.set_defaults(handler=_cmd_validate)


def _cmd_validate(args: argparse.Namespace) -> int:
    from evalsuite.errors import DataError
    from evalsuite.tasks.golden import load_golden_set

    try:
        data = load_golden_set(args.path, split=args.split, corpus=args.corpus)
    except DataError as exc:
        problems = getattr(exc, "problems", None)
        if not problems:
            raise
        for path, line, message in problems:  # every problem on stdout, one summary line on stderr
            print(f"{path}{':' + str(line) if line else ''}: {message}")
        from evalsuite.exitcodes import one_line

        path, line, message = problems[0]
        print(one_line(f"evalsuite: error: {path}{':' + str(line) if line else ''}: {message} [{len(problems)} "
                       f"problem(s) in {args.path}, all listed on stdout]"), file=sys.stderr)
        return EXIT_USAGE
    print(f"{args.path}: OK: {len(data.queries)} queries, {len(data.corpus)} documents, "
          f"{data.qrels.n_rows} judgements")
    for note in data.notes:
        print(f"note: {note}")
    return EXIT_OK


# -- entry point ----------------------------------------------------------------------------

def _add_report(sub: Any) -> None:
    from evalsuite.report.command import add_report_parser

    add_report_parser(sub)


def _add_finetune(sub: Any) -> None:
    from evalsuite.finetune.command import add_finetune_parsers

    add_finetune_parsers(sub)


_COMMANDS: tuple[Callable[[Any], None], ...] = (
    _add_run, _add_evaluate, _add_gate, _add_report, _add_history, _add_leakage, _add_validate, _add_metrics,
    _add_finetune,
)



def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="evalsuite", description="Retrieval evaluation and benchmarking.",
                     epilog="Exit codes: 0 success (gates passed; warnings allowed), 1 a gate failed, 2 bad input or "
                     "usage, 3 internal error (a bug: the traceback is written to a file), 130 interrupted.")
    parser.add_argument("--version", action="version", version=f"evalsuite {__version__}")
    parser.add_argument("--debug", action="store_true", help="on an internal error, print the full traceback")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in _COMMANDS:
        add(sub)
    for command in sub.choices.values():  # `evalsuite run ... --debug` works as well as `evalsuite --debug run`
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="on an internal error, print the full traceback")
    return parser


def _option_of(args: argparse.Namespace, filename: Any) -> str | None:
    """The flag of the command whose path is ``filename`` or holds it (``--markdown``), else
    ``--output`` where the command has one (the results folder), else None."""
    if isinstance(filename, (str, os.PathLike)):
        path = os.path.abspath(filename)
        for dest in ("markdown", "junit", "json", "update_baseline", "output", "store", "cache_dir"):
            value = getattr(args, dest, None)
            if isinstance(value, str) and value not in ("", "-"):
                given = os.path.abspath(value)
                if path == given or path.startswith(given.rstrip(os.sep) + os.sep):
                    return "--" + dest.replace("_", "-")
    return "--output" if hasattr(args, "output") else None


def _interrupted() -> int:
    from evalsuite import exitcodes

    print("evalsuite: interrupted", file=sys.stderr)
    exitcodes.forget_handled_interrupt()  # else `python -m evalsuite` may die by SIGINT (-2), not exit 130
    return exitcodes.EXIT_INTERRUPTED


def _show_own_warnings_as_lines() -> Callable[[], None]:
    """Print evalsuite's own warnings as one ``evalsuite: warning: ...`` line each, like its notes
    (other packages' warnings as Python prints them); returns the function that undoes it."""
    import warnings

    from evalsuite.exitcodes import one_line

    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    original = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:
        if not os.path.abspath(filename).startswith(package):
            original(message, category, filename, lineno, file, line)
            return
        with contextlib.suppress(OSError, ValueError):  # stderr closed: nowhere to say it
            print(f"evalsuite: warning: {one_line(str(message))}", file=file if file is not None else sys.stderr)

    warnings.showwarning = show

    def undo() -> None:
        if warnings.showwarning is show:
            warnings.showwarning = original

    return undo


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; the exit code follows the contract in :mod:`evalsuite.exitcodes`."""
    from evalsuite import exitcodes

    exitcodes.ignore_signals_at_exit()
    undo_warnings = _show_own_warnings_as_lines()
    try:
        return _main(argv)
    finally:
        undo_warnings()


def _main(argv: Sequence[str] | None) -> int:
    from evalsuite import exitcodes

    with exitcodes.sigterm_as_interrupt():
        try:  # Ctrl-C while the parser is built (its imports) is an interrupt too, not a traceback
            parser = build_parser()
            args = parser.parse_args(argv)
        except KeyboardInterrupt:
            return _interrupted()
        if not getattr(args, "handler", None):
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        try:
            return int(args.handler(args))
        except EvalsuiteError as exc:
            print(f"evalsuite: error: {exitcodes.one_line(str(exc))}", file=sys.stderr)
            return exc.exit_code
        except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_OK
        except OSError as exc:  # permissions, disk full, ...: the user's environment, not a bug
            described = exitcodes.describe_os_error(exc, option=_option_of(args, exc.filename),
                                                    cache_dir=hasattr(args, "cache_dir"))
            print(f"evalsuite: error: {exitcodes.one_line(described)}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:
            return _interrupted()
        except Exception as exc:  # anything else is a bug in evalsuite: say so, keep the traceback
            print(exitcodes.internal_error(exc, debug=args.debug), file=sys.stderr)
            return exitcodes.EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

"""The suite runner: every retriever on every task, evaluated, written, stored.

``run_suite(load_suite("tasks/default.yaml"))`` loads each task, indexes and searches with
each retriever (re-using cached embeddings), evaluates the suite's metrics, and writes into
``<output>/<suite>/<run_id>/``:

* ``results.json`` -- everything (see :mod:`evalsuite.results`), with reproducibility data:
  versions, model fingerprints, data content hashes, parameters, seed, timings per stage;
* ``runs/<task>__<system>.trec`` -- every run as a TREC file;
* ``per_query.csv`` -- task, system, query_id and one column per metric;
* ``details/<task>.json`` -- what a per-query drill-down needs without the data: query
  texts, judgements, and title + snippet of every document in some system's top
  :data:`DETAIL_DEPTH`;
* ``gates.json``, ``gates.junit.xml``, ``gates.md`` when the suite declares gates.

The folder is assembled under a temporary name and renamed at the end, so a failed run
leaves nothing half-written. Each run is also added to the SQLite results store.
"""

from __future__ import annotations

import math
import random
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from evalsuite.config import RetrieverSpec, SuiteConfig, TaskSpec
from evalsuite.errors import ConfigError, DataError, EvalsuiteError
from evalsuite.executors import open_executor
from evalsuite.results import CellResult, SuiteResults, environment
from evalsuite.retrievers.base import Retriever
from evalsuite.retrievers.cache import EmbeddingCache
from evalsuite.retrievers.cost import CostMeter
from evalsuite.retrievers.encode_timing import EncodeTimings
from evalsuite.safepaths import safe_filename
from evalsuite.tasks.base import STSData, Task
from evalsuite.types import TaskData

if TYPE_CHECKING:
    from evalsuite.metrics.evaluate import EvalResult

__all__ = ["RunOptions", "build_retrievers", "build_task", "run_suite", "score_cell", "store_path", "sts_cell",
           "write_details", "write_per_query"]

Progress = Callable[[str], None]

#: documents per query and system whose title/snippet go into ``details/<task>.json``
DETAIL_DEPTH = 10
_SNIPPET_CHARS = 160


@dataclass
class RunOptions:
    """Run-time choices that are not part of the suite spec."""

    output: Path | None = None
    store: Path | None = None
    progress: bool | None = None  # None: only when stderr is a terminal
    only_tasks: Sequence[str] = ()
    only_systems: Sequence[str] = ()
    cache_dir: Path | None = None
    no_cache: bool = False
    fresh_latency: bool = False  # time query encodings again, not reuse an earlier run's (encode_timing)
    baseline: str | None = None
    command: list[str] = field(default_factory=lambda: list(sys.argv))
    on_event: Progress | None = None  # a line of progress per stage (the CLI prints it)
    #: called with the results and the (still temporary) folder before it gets its final name:
    #: gates and report are written there, so a failure in them leaves no results folder
    finish: Callable[[SuiteResults, Path], None] | None = None
    executor: str | None = None  # "local" or "ray"; None: the suite's ``executor``
    ray_address: str | None = None  # Ray cluster to join (over $RAY_ADDRESS and the suite's ray.address)


def build_task(spec: TaskSpec, suite: SuiteConfig) -> Task:
    """A task object from its spec; a missing data path raises DataError naming it."""
    from evalsuite.tasks.beir import BeirTask
    from evalsuite.tasks.golden import GoldenSetTask
    from evalsuite.tasks.sts import STSTask

    path = suite.resolve(spec.path)
    if spec.type in ("golden", "beir", "sts") and (path is None or not path.exists()):
        from evalsuite.config import data_hint

        raise DataError(f"task {spec.name!r}: data not found", path=path or spec.path,
                        hint=data_hint(spec.path or "", suite.source))
    assert path is not None or spec.type == "mteb"
    main = spec.main_metric
    if spec.type == "golden":
        corpus = suite.resolve(spec.corpus)
        return GoldenSetTask(path, name=spec.name, split=spec.split, main_metric=main or "ndcg@10",  # type: ignore[arg-type]
                             corpus=corpus)
    if spec.type == "beir":
        return BeirTask(path, name=spec.name, split=spec.split, main_metric=main or "ndcg@10",  # type: ignore[arg-type]
                        ignore_identical_ids=spec.ignore_identical_ids)
    if spec.type == "sts":
        return STSTask(path, name=spec.name)  # type: ignore[arg-type]
    from evalsuite.tasks.mteb import MtebTask

    return MtebTask(spec.mteb_task or "", name=spec.name, split=spec.split, data_path=path)


def _resolve_refs(params: dict[str, Any], built: dict[str, Retriever]) -> dict[str, Any]:
    """Replace names of suite retrievers in hybrid/rerank parameters by the built objects."""
    out = dict(params)
    if isinstance(out.get("retrievers"), list):
        out["retrievers"] = [built.get(r, r) if isinstance(r, str) else r for r in out["retrievers"]]
    if isinstance(out.get("first_stage"), str):
        out["first_stage"] = built.get(out["first_stage"], out["first_stage"])
    return out


def build_retrievers(suite: SuiteConfig, options: RunOptions) -> dict[str, Retriever]:
    """Every retriever of the suite, constructed (models load lazily, on first use)."""
    from evalsuite.retrievers import get_retriever, retriever_class

    built: dict[str, Retriever] = {}
    pending = list(suite.retrievers)
    while pending:
        progressed = False
        for spec in list(pending):
            refs = [r for key in ("retrievers", "first_stage") for r in _as_list(spec.params.get(key))
                    if isinstance(r, str)]
            if any(r in {p.name for p in pending} and r != spec.name for r in refs):
                continue  # build its components first
            built[spec.name] = _construct(spec, suite, options, built, get_retriever, retriever_class)
            if spec.sweep is not None:  # one system per grid point, all from one encoding
                from evalsuite.retrievers.sweep import expand_sweep

                built.update(expand_sweep(spec.name, built.pop(spec.name), spec.sweep))
            pending.remove(spec)
            progressed = True
        if not progressed:
            raise ConfigError(f"{suite.source}: retrievers reference each other in a cycle: "
                              f"{', '.join(p.name for p in pending)}")
    return built


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def _construct(spec: RetrieverSpec, suite: SuiteConfig, options: RunOptions, built: dict[str, Retriever],
               get_retriever: Any, retriever_class: Any) -> Retriever:
    import inspect

    params = _resolve_refs(spec.params, built)
    accepted = inspect.signature(retriever_class(spec.type)).parameters
    if "name" in accepted:
        params.setdefault("name", spec.name)
    if "cache_dir" in accepted and "cache_dir" not in params:
        cache = options.cache_dir or suite.resolve(suite.cache_dir)
        if cache is not None:
            params["cache_dir"] = str(cache)
    if "cache" in accepted and options.no_cache:
        params["cache"] = False
    if "progress" in accepted and "progress" not in params:
        params["progress"] = options.progress
    try:
        return get_retriever(spec.type, **params)
    except EvalsuiteError as exc:
        line = suite.line_of_retriever(spec.name)
        where = f"{suite.source}:{line}" if line else suite.source
        raise type(exc)(f"{where}: retriever {spec.name!r}: {exc}") if isinstance(exc, ConfigError) \
            else exc from None


def _composite_parts(retriever: Retriever) -> list[Retriever]:
    parts = list(getattr(retriever, "components", ()))
    first = getattr(retriever, "first_stage", None)
    if first is not None:
        parts.append(first)
    return parts


def _encoder_of(retriever: Retriever) -> Any:
    """The sentence encoder of a retriever, if it has one (for STS tasks).

    A retriever with ``embed(texts, kind=...)`` (the dense retriever) is used through it, so
    STS sentences go through the same embedding cache as documents and queries."""
    embed = getattr(retriever, "embed", None)
    if callable(embed):
        return _EmbedEncoder(embed)
    encoder = getattr(retriever, "encoder", None)
    return encoder() if callable(encoder) and not hasattr(encoder, "encode") else encoder


class _EmbedEncoder:
    """``Encoder.encode`` over a retriever's cached ``embed``."""

    def __init__(self, embed: Callable[..., Any]) -> None:
        self._embed = embed

    def encode(self, texts: Sequence[str], *, kind: str = "query", **_: Any) -> Any:
        return self._embed(list(texts), kind=kind)


def _query_tags(data: TaskData) -> dict[str, list[str]]:
    return {q: list(t) for q, t in zip(data.queries.ids.tolist(), data.queries.tags) if t}


def run_suite(suite: SuiteConfig, options: RunOptions | None = None) -> SuiteResults:
    """Run a validated suite; see the module docstring for what is written where."""
    from evalsuite.models import remember_file_hashes

    options = options or RunOptions()
    remember_file_hashes(run_cache_dir(suite, options))  # model weights hashed once per file, not per run
    try:
        return _run_suite(suite, options)
    finally:
        remember_file_hashes(None)


def _run_suite(suite: SuiteConfig, options: RunOptions) -> SuiteResults:
    from evalsuite.io import write_run
    from evalsuite.metrics.evaluate import evaluate
    from evalsuite.tasks.beir import drop_identical_ids

    say = options.on_event or (lambda _: None)
    started = time.perf_counter()
    started_wall = time.time()
    random.seed(suite.seed)
    np.random.seed(suite.seed)  # noqa: NPY002  (libraries that draw from numpy's global generator)

    task_specs = [t for t in suite.tasks if not options.only_tasks or t.name in options.only_tasks]
    unknown = set(options.only_tasks) - {t.name for t in suite.tasks}
    if unknown:
        raise ConfigError(f"no task named {', '.join(sorted(unknown))} in {suite.source}")
    retrievers = build_retrievers(suite, options)
    if options.only_systems:
        missing = set(options.only_systems) - set(retrievers)
        if missing:
            raise ConfigError(f"no retriever named {', '.join(sorted(missing))} in {suite.source}")
    systems = [n for n in retrievers if not options.only_systems or n in options.only_systems]
    # components before the composites that fuse or rerank them
    systems.sort(key=lambda n: bool(_composite_parts(retrievers[n])))

    skipped: list[dict[str, str]] = []
    tasks: list[tuple[TaskSpec, Task]] = []
    for spec in task_specs:
        try:
            tasks.append((spec, build_task(spec, suite)))
        except DataError as exc:
            if not spec.optional:
                raise
            skipped.append({"task": spec.name, "reason": str(exc)})
            say(f"skipping optional task {spec.name}: {exc}")
    if not tasks:
        raise ConfigError(f"{suite.source}: no task left to run"
                          + (f" ({'; '.join(s['reason'] for s in skipped)})" if skipped else ""))

    run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]
    root = options.output or suite.output_root()
    from evalsuite._runfolder import RunFolder
    from evalsuite.store import ResultsStore

    store = ResultsStore(options.store or store_path(suite, options.output))
    store.check()  # a damaged or locked store fails the run now, not after the work
    executor_name = options.executor or ("ray" if options.ray_address else suite.executor)
    executor = open_executor(executor_name, suite.ray, address=options.ray_address,
                             progress=options.progress, say=say)  # None: everything in this process
    cache_root = run_cache_dir(suite, options)
    timings = EncodeTimings(EmbeddingCache(cache_root / "latency") if cache_root is not None else None,
                            fresh=options.fresh_latency)  # query-encoding times shared by the tasks' meters
    folder = RunFolder(root / suite.name, run_id)
    final = folder.final
    partial = folder.create(started_wall)
    try:
        if executor is not None:
            retrievers = executor.attach(retrievers)
        cells: list[CellResult] = []
        task_infos: list[dict[str, Any]] = []
        for spec, task in tasks:
            say(f"{spec.name}: loading")
            t0 = time.perf_counter()
            data = task.load()
            load_seconds = time.perf_counter() - t0
            meta = task.metadata
            info: dict[str, Any] = {**meta.__dict__, "seconds_load": load_seconds, "notes": list(data.notes)}
            if isinstance(data, STSData):
                info["n_pairs"] = len(data)
            else:
                info.update(n_queries=len(data.queries), n_docs=len(data.corpus), n_judgements=data.qrels.n_rows,
                            query_tags=_query_tags(data))
            if not isinstance(data, STSData) and suite.k > len(data.corpus):
                info["notes"].append(f"k = {suite.k} exceeds the {len(data.corpus)} documents of {spec.name}: every "
                                     f"query ranks the whole corpus, and cutoffs above {len(data.corpus)} measure "
                                     "the same ranking")
                say(f"warning: {info['notes'][-1]}")
            task_infos.append(info)
            if executor is not None:
                executor.prepare_task(data, retrievers, systems, suite.k)
            indexed: set[int] = set()
            shown_docs: set[str] = set()
            if not isinstance(data, STSData):
                meter = CostMeter(data.corpus, data.queries, k=suite.k, latency_queries=suite.cost_queries,
                                  seed=suite.seed, timings=timings)
                info["leakage"] = _leakage_summary(data, meta.content_hash, cache_root, say)
            for system in systems:
                retriever = retrievers[system]
                if spec.type == "mteb":  # scored by mteb's own evaluator
                    say(f"{spec.name} / {system}: evaluating through mteb")
                    cell = task.evaluate(retriever, k=suite.k)  # type: ignore[attr-defined]
                    cell.task, cell.system = spec.name, system
                    chosen = {m: cell.aggregate[m] for m in suite.metrics if m in cell.aggregate}
                    if chosen:  # the suite's metrics; mteb's full score set stays in stats["mteb"]
                        cell.aggregate = chosen
                    mteb_run = getattr(task, "last_run", None)
                    if cell.kind == "retrieval" and mteb_run is not None:
                        run_file = Path("runs") / f"{safe_filename(spec.name)}__{safe_filename(system)}.trec"
                        write_run(mteb_run, folder.path(run_file))
                        cell.run_file = str(run_file)
                        shown_docs.update(mteb_run.top_k(DETAIL_DEPTH).doc_ids.tolist())
                    cells.append(cell)
                    continue
                if isinstance(data, STSData):
                    cells.append(sts_cell(spec, system, retriever, data, say))
                    continue
                cell = CellResult(task=spec.name, system=system, kind="retrieval", aggregate={})
                parts = _composite_parts(retriever)
                t0 = time.perf_counter()
                if parts and all(id(p) in indexed for p in parts):
                    say(f"{spec.name} / {system}: components already indexed")
                    retriever.index(data.corpus, components_indexed=True)  # type: ignore[call-arg]
                else:
                    say(f"{spec.name} / {system}: indexing {len(data.corpus)} documents")
                    retriever.index(data.corpus)
                indexed.add(id(retriever))
                cell.timing["index"] = time.perf_counter() - t0
                say(f"{spec.name} / {system}: searching {len(data.queries)} queries")
                t0 = time.perf_counter()
                run = retriever.search(data.queries, k=suite.k).with_name(system)
                cell.timing["search"] = time.perf_counter() - t0
                if meta.ignore_identical_ids:
                    run, cell.identical_ids_dropped = drop_identical_ids(run)
                t0 = time.perf_counter()
                result = evaluate(data.qrels, run, suite.metrics)
                cell.timing["evaluate"] = time.perf_counter() - t0
                score_cell(cell, result)
                cell.stats = dict(retriever.stats)
                cell.costs = meter.measure(retriever, index_seconds=cell.timing["index"])
                cell.notes.extend(getattr(retriever, "notes", ()))
                run_file = Path("runs") / f"{safe_filename(spec.name)}__{safe_filename(system)}.trec"
                write_run(run, folder.path(run_file))
                shown_docs.update(run.top_k(DETAIL_DEPTH).doc_ids.tolist())
                cell.run_file = str(run_file)
                cells.append(cell)
                say(f"{spec.name} / {system}: " + ", ".join(f"{m}={v:.4f}" for m, v in cell.aggregate.items()))
            from evalsuite.retrievers.sweep import sweep_summaries

            for line in sweep_summaries({n: retrievers[n] for n in systems}):
                say(f"{spec.name}: {line}")
            if not isinstance(data, STSData):
                write_details(data, shown_docs, folder.path(f"details/{safe_filename(spec.name)}.json"))
                info["details_file"] = f"details/{safe_filename(spec.name)}.json"

        results = SuiteResults(
            suite=suite.name, run_id=run_id, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            metrics=list(suite.metrics), environment=environment(options.command), tasks=task_infos,
            systems=[{"name": n, "meta": retrievers[n].meta.to_dict()} for n in systems],
            cells=cells, config={**suite.model_dump(mode="json"), "source": suite.source, "executor": executor_name,
                                 **({"executor_settings": executor.settings()} if executor is not None else {})},
            skipped=skipped,
            timing={"total": time.perf_counter() - started},
        )
        write_per_query(results, partial / "per_query.csv")
        if options.finish is not None:
            results.path = str(partial / "results.json")
            options.finish(results, partial)
        results.path = str(final / "results.json")
        results.write(partial / "results.json")
    except BaseException:
        folder.abort()
        raise
    finally:
        if executor is not None:
            executor.close()
    folder.commit(lambda: store.add(results))
    return results


def store_path(suite: SuiteConfig, output: Path | None = None) -> Path:
    """The results store of a suite: its ``store``, else ``<output>/history.sqlite``."""
    explicit = suite.resolve(suite.store)
    if explicit is not None:
        return explicit
    return (output or suite.output_root()) / "history.sqlite"


def score_cell(cell: CellResult, result: EvalResult) -> None:
    """Put an evaluation's numbers into a retrieval cell: the aggregates, the per-query values
    (NaN -- a query excluded for this metric -- as None), the query counts and the missing and
    excluded queries. Shared by :func:`run_suite` and the fine-tune loop."""
    cell.aggregate = dict(result.aggregate)
    ids = [str(q) for q in result.query_ids.tolist()]
    cell.per_query = {str(m): {q: (None if math.isnan(v) else float(v)) for q, v in zip(ids, col.tolist())}
                      for m, col in result.values.items()}  # what result.per_query holds, without pandas
    cell.n_queries = dict(result.n_queries)
    cell.missing_queries = list(result.missing_queries)
    cell.excluded_queries = list(result.excluded_queries)


def sts_cell(spec: TaskSpec, system: str, retriever: Retriever, data: STSData, say: Progress) -> CellResult:
    """One system on an STS task: Spearman and Pearson of its cosine scores against the gold
    scores (a note, no numbers, for a system without a sentence encoder)."""
    cell = CellResult(task=spec.name, system=system, kind="sts", aggregate={})
    encoder = _encoder_of(retriever)
    if encoder is None or not hasattr(encoder, "encode"):
        cell.notes.append(f"not applicable: {system} ({retriever.meta.kind}) has no sentence encoder for STS")
        say(f"{spec.name} / {system}: not applicable (no sentence encoder)")
        return cell
    from evalsuite.retrievers.cost import model_size

    cell.costs["model_bytes"], cell.costs["parameters"] = model_size(retriever)
    from evalsuite.metrics.correlation import correlate
    from evalsuite.tasks.sts import sts_scores

    t0 = time.perf_counter()
    predicted = sts_scores(data, encoder)
    result = correlate(predicted, data.scores)
    cell.timing["encode_and_score"] = time.perf_counter() - t0
    cell.pair_scores = {"predicted": predicted.tolist(), "gold": np.asarray(data.scores, dtype=float).tolist()}
    embed_stats = getattr(retriever, "embed_stats", None)
    if isinstance(embed_stats, dict):
        cell.stats.update({f"texts_{k}": v for k, v in embed_stats.items()})
    cell.aggregate = {"spearman": result.spearman, "pearson": result.pearson}
    cell.n_queries = {"spearman": result.n, "pearson": result.n}
    say(f"{spec.name} / {system}: spearman={result.spearman:.4f}, pearson={result.pearson:.4f}")
    return cell


def run_cache_dir(suite: SuiteConfig, options: RunOptions) -> Path | None:
    """The cache folder of this run (None: caching off): embeddings, leakage summaries and the
    report's memoised statistics (:mod:`evalsuite.metrics.memo`) live under it."""
    if options.no_cache:
        return None
    from evalsuite.retrievers.cache import default_cache_dir

    return options.cache_dir or suite.resolve(suite.cache_dir) or default_cache_dir()


def _leakage_summary(data: TaskData, content_hash: str | None, cache: Path | None,
                     say: Progress | None = None) -> dict[str, Any]:
    """Leakage checks that need no training pairs (self-retrieval, duplicates, dangling qrels).

    They depend on the data only, so they are cached by its content hash."""
    import json

    from evalsuite.io._text import atomic_write
    from evalsuite.metrics.leakage import check_leakage

    cached = cache / "leakage" / f"{content_hash}.json" if cache is not None and content_hash else None
    if cached is not None and cached.is_file():
        try:
            summary: dict[str, Any] = json.loads(cached.read_text(encoding="utf-8"))
            if summary.get("content_hash") == content_hash:
                return summary
        except (OSError, ValueError):
            pass  # unreadable: computed again and rewritten
    summary = check_leakage(data).to_dict()
    for finding in summary.get("findings", []):
        finding["examples"] = finding.get("examples", [])[:5]
    summary["content_hash"] = content_hash
    if cached is not None:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(cached) as fh:
                json.dump(summary, fh)
        except OSError as exc:  # e.g. a CI cache restored read-only: computed, just not kept
            if say is not None:
                say(f"note: leakage summary not cached ({exc.strerror or exc}: {cached.parent}); computed again next "
                    "time")
    return summary


def write_details(data: TaskData, doc_ids: set[str], path: Path) -> None:
    """``details/<task>.json``: query texts, judgements and the title + snippet of each
    document of ``doc_ids`` (see the module docstring)."""
    import json

    from evalsuite.io._text import atomic_write

    docs = {}
    for doc_id in sorted(doc_ids):
        if doc_id in data.corpus:
            doc = data.corpus[doc_id]
            text = " ".join(str(doc.text).split())
            docs[doc_id] = {"title": str(doc.title),
                            "snippet": text[:_SNIPPET_CHARS] + ("…" if len(text) > _SNIPPET_CHARS else "")}
    details = {
        "queries": {str(q): str(t) for q, t in zip(data.queries.ids.tolist(), data.queries.texts.tolist())},
        "qrels": data.qrels.to_dict(),
        "docs": docs,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as fh:
        json.dump(details, fh, ensure_ascii=False, separators=(",", ":"))


def write_per_query(results: SuiteResults, path: Path) -> None:
    """``per_query.csv``: task, system, query_id and one column per metric (retrieval cells)."""
    import csv

    from evalsuite.io._text import atomic_write

    with atomic_write(path) as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["task", "system", "query_id", *results.metrics])
        for cell in results.cells:
            if cell.kind != "retrieval":
                continue
            queries = sorted({q for values in cell.per_query.values() for q in values})
            for q in queries:
                row = [cell.per_query.get(m, {}).get(q) for m in results.metrics]
                writer.writerow([cell.task, cell.system, q, *("" if v is None else repr(v) for v in row)])

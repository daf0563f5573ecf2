"""The fine-tune loop of a suite: pairs -> split -> leakage guard -> negatives -> training -> verdict.

``run_finetune(load_suite("suite.yaml"), "DIR")`` (what ``evalsuite finetune suite.yaml --output
DIR`` runs) reads the suite's ``finetune:`` section (:mod:`evalsuite.finetune.spec`) and:

1. loads the task and splits its judged queries by query with the recorded seed
   (:func:`~evalsuite.finetune.split.split_queries`; near-duplicate queries kept together);
2. builds training pairs from the training queries' qrels, the corpus titles or a file;
3. refuses training pairs that hold held-out queries (:func:`~evalsuite.finetune.split.guard_leakage`)
   unless overridden, which the results and report then state;
4. mines hard negatives with the configured miner and filters (optional);
5. trains the base model (:func:`~evalsuite.finetune.train.train_model`) into ``DIR/model``,
   a normal sentence-transformers folder with a model card and its own content fingerprint;
6. evaluates every system of the suite (or ``compare``) and the tuned model on the held-out
   queries only, and the base and tuned models on the ``out_of_domain`` tasks (forgetting);
7. decides: the gain of tuned over base per metric with a bootstrap CI and the paired
   randomization test, per-query wins / losses / ties, and the ``min_gain`` gates.

Written into DIR: ``model/``, ``pairs.jsonl`` (sentence-transformers column form),
``results.json`` (a normal results file whose ``finetune`` key holds ``test_queries``,
``train_queries``, ``before`` / ``after`` aggregates and the ``gain`` with CI and p-value),
``runs/``, ``details/``, ``per_query.csv``, ``report.html`` and ``report.md``. DIR is built in a
hidden sibling folder and renamed into place only when complete
(:func:`evalsuite._runfolder.building`): a failed or interrupted fine-tune leaves no DIR, or the
earlier fine-tune's DIR exactly as it was, never a mix of old and new files.

This module sits at the runner's level (it runs a suite's retrievers and tasks) and uses the
runner's task and retriever construction.
"""

from __future__ import annotations

import json
import math
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from evalsuite.config import SuiteConfig
from evalsuite.errors import ConfigError, DataError
from evalsuite.finetune.pairs import PairSet
from evalsuite.finetune.spec import FinetuneSpec
from evalsuite.results import CellResult, SuiteResults
from evalsuite.types import TaskData

__all__ = ["FinetuneOutcome", "run_finetune"]

Progress = Callable[[str], None]


@dataclass
class FinetuneOutcome:
    """What :func:`run_finetune` produced."""

    results: SuiteResults
    output: Path
    model: Path
    exit_code: int
    gates: list[dict[str, Any]] = field(default_factory=list)

    @property
    def finetune(self) -> dict[str, Any]:
        return self.results.finetune


def _spec(suite: SuiteConfig) -> FinetuneSpec:
    if suite.finetune is None:
        raise ConfigError(f"{suite.source}: the suite has no 'finetune:' section (see 'evalsuite finetune --help')")
    return suite.finetune


def _prepare_output(output: Path) -> Path:
    """DIR may be new, empty, or a previous fine-tune's folder (replaced whole); the path to build into
    place (where a symlink points)."""
    if output.exists() and not output.is_dir():
        raise ConfigError(f"--output {output}: exists and is not a folder")
    if output.is_dir() and any(output.iterdir()) and not _is_earlier_finetune(output):
        raise ConfigError(f"--output {output}: the folder is not empty and holds no earlier fine-tune; give a new "
                          "or empty folder")
    return output.resolve() if output.is_symlink() else output


def _is_earlier_finetune(folder: Path) -> bool:
    """Whether ``folder`` is what ``evalsuite finetune`` wrote (its results carry a ``finetune``
    section; a folder from before outputs were built whole may lack them but has pairs and a
    model): such a folder is replaced whole, so a suite run's folder (results.json too) is not one."""
    try:
        results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return (folder / "pairs.jsonl").is_file() and (folder / "model").is_dir()
    return isinstance(results, dict) and isinstance(results.get("finetune"), dict) and bool(results["finetune"])


def judged_queries(data: TaskData) -> list[str]:
    """Query ids with at least one relevant judgement that are in the queries file."""
    return sorted(q for q, docs in data.qrels.grade_maps().items() if q in data.queries and any(
        g >= 1 for g in docs.values()))


def _build_pairs(spec: FinetuneSpec, suite: SuiteConfig, data: TaskData, train: Sequence[str]) -> PairSet:
    from evalsuite.finetune.pairs import pairs_from_file, pairs_from_qrels, pairs_from_titles

    if spec.pairs == "qrels":
        pairs = pairs_from_qrels(data.queries, data.corpus, data.qrels, train, min_grade=spec.min_grade)
    elif spec.pairs == "titles":
        pairs = pairs_from_titles(data.corpus)
    else:
        path = suite.resolve(spec.pairs.file)
        assert path is not None
        pairs = pairs_from_file(path)
    if not pairs.pairs:
        raise DataError(f"no training pairs from {pairs.source} (min_grade {spec.min_grade}, "
                        f"{len(train)} training queries)")
    return pairs


def _evaluate_cell(task: str, system: str, retriever: Any, data: TaskData, metrics: list[str], k: int,
                   run_folder: Path | None) -> tuple[CellResult, Any]:
    """Index, search and evaluate one system on (held-out) data."""
    from evalsuite.io import write_run
    from evalsuite.metrics.evaluate import evaluate
    from evalsuite.runner import score_cell
    from evalsuite.safepaths import safe_filename

    cell = CellResult(task=task, system=system, kind="retrieval", aggregate={})
    t0 = time.perf_counter()
    retriever.index(data.corpus)
    cell.timing["index"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    run = retriever.search(data.queries, k=k).with_name(system)
    cell.timing["search"] = time.perf_counter() - t0
    score_cell(cell, evaluate(data.qrels, run, metrics))
    cell.stats = dict(retriever.stats)
    if run_folder is not None:
        name = Path("runs") / f"{safe_filename(task)}__{safe_filename(system)}.trec"
        write_run(run, run_folder / name)
        cell.run_file = str(name)
    return cell, run


def gain(tuned: dict[str, float | None], base: dict[str, float | None], metric: str, *, seed: int = 0,
         n_resamples: int = 10_000) -> dict[str, Any]:
    """Tuned minus base on paired queries: mean, 95% bootstrap CI, randomization p, wins/losses/ties."""
    import numpy as np

    from evalsuite.metrics.stats import align, compare

    c = compare(tuned, base, metric=metric, names=("tuned", "base"), n_resamples=n_resamples, seed=seed)
    x, y, _ = align(tuned, base)
    d = x - y
    return {"metric": metric, "n": c.n, "before": c.mean_b, "after": c.mean_a, "delta": c.delta,
            "relative": c.delta / c.mean_b if c.mean_b else None, "ci_low": c.ci_delta.low,
            "ci_high": c.ci_delta.high, "p_value": c.p_randomization, "p_t": c.p_t, "p_wilcoxon": c.p_wilcoxon,
            "wins": int(np.sum(d > 0)), "losses": int(np.sum(d < 0)), "ties": int(np.sum(d == 0)),
            "deltas": {q: float(v) for q, v in zip(sorted(set(tuned) & set(base) - _nan_keys(tuned, base)),
                                                   d.tolist())}}


def _nan_keys(a: dict[str, float | None], b: dict[str, float | None]) -> set[str]:
    return {q for q, v in a.items() if v is None or v != v} | {q for q, v in b.items() if v is None or v != v}


def min_gain_gates(spec: FinetuneSpec, gains: dict[str, dict[str, Any]], task: str) -> list[dict[str, Any]]:
    """Each ``min_gain`` gate: PASS when the tuned model's gain on ``metric`` is at least
    ``min_gain`` and significant (randomization p < alpha); FAIL otherwise, saying which."""
    from dataclasses import asdict

    from evalsuite.gates import GateResult

    out = []
    for gate in spec.gates:
        name = gate.name or f"finetune-min-gain-{gate.metric}"
        g = gains.get(gate.metric)
        result = GateResult(name, "finetune", task, spec.tuned_name, gate.metric, "fail", "", threshold=gate.min_gain)
        if g is None or g["n"] < 2:
            result.message = (f"no held-out result for {gate.metric} (metrics evaluated: {', '.join(gains)}); add it "
                              "to the suite's metrics" if g is None else "fewer than 2 held-out queries")
        else:
            significant = not math.isnan(g["p_value"]) and g["p_value"] < gate.alpha and g["delta"] > 0
            passed = g["delta"] >= gate.min_gain and significant
            result.status = "pass" if passed else "fail"
            result.decision = "FINE-TUNE GAIN CONFIRMED" if passed else "FINE-TUNE GAIN NOT SHOWN"
            why = ("" if passed else "; " + ("the gain is below the required margin" if g["delta"] < gate.min_gain
                                             else "the gain is not significant"))
            result.message = (f"{result.decision}: {gate.metric} {g['before']:.4f} -> {g['after']:.4f} "
                              f"({g['delta']:+.4f}, 95% CI [{g['ci_low']:+.4f}, {g['ci_high']:+.4f}], "
                              f"p = {g['p_value']:.4f}, n = {g['n']}) on the held-out queries of {task}; required: "
                              f"+{gate.min_gain:g} with p < {gate.alpha:g}{why}")
            result.estimate, result.delta, result.p_value, result.n = g["after"], g["delta"], g["p_value"], g["n"]
            result.ci = (g["ci_low"], g["ci_high"])
        out.append(asdict(result))
    return out


def verdict(g: dict[str, Any], alpha: float = 0.05) -> str:
    """One line: did the fine-tune help, hurt, or change nothing measurable?"""
    significant = not math.isnan(g["p_value"]) and g["p_value"] < alpha
    if significant and g["delta"] > 0:
        label = "FINE-TUNE HELPED"
    elif significant and g["delta"] < 0:
        label = "FINE-TUNE HURT"
    else:
        label = "NO SIGNIFICANT CHANGE"
    return (f"{label}: {g['metric']} {g['before']:.4f} -> {g['after']:.4f} ({g['delta']:+.4f}, 95% CI "
            f"[{g['ci_low']:+.4f}, {g['ci_high']:+.4f}], p = {g['p_value']:.4f}; {g['wins']} queries better, "
            f"{g['losses']} worse, {g['ties']} tied, of {g['n']} held out)")


def _base_folder(retriever: Any) -> tuple[str, Path | None]:
    """The base model's name and local folder (for the tokenizer and the fingerprint)."""
    from evalsuite.models import resolve_model
    from evalsuite.retrievers._common import local_model_folder

    encoder = retriever.encoder
    name = getattr(encoder, "name", None) or retriever.meta.model
    try:
        folder, _ = local_model_folder(resolve_model(name))
    except ConfigError:
        return name, None
    return name, folder


def run_finetune(
    suite: SuiteConfig,
    output: str | Path,
    *,
    allow_leakage: bool = False,
    progress: bool | None = None,
    cache_dir: Path | None = None,
    device: str | None = None,
    on_event: Progress | None = None,
    command: list[str] | None = None,
    write_report: bool = True,
) -> FinetuneOutcome:
    """Run the suite's fine-tune loop into ``output`` (see the module docstring)."""
    from evalsuite._runfolder import building

    spec = _spec(suite)
    say = on_event or (lambda _: None)
    started = time.perf_counter()
    out = _prepare_output(Path(output))
    with building(out) as work:
        return _finetune(suite, spec, out, work, allow_leakage=allow_leakage, progress=progress,
                         cache_dir=cache_dir, device=device, say=say, started=started, command=command,
                         write_report=write_report)


def _finetune(suite: SuiteConfig, spec: FinetuneSpec, out: Path, work: Path, *, allow_leakage: bool,
              progress: bool | None, cache_dir: Path | None, device: str | None, say: Progress, started: float,
              command: list[str] | None, write_report: bool) -> FinetuneOutcome:
    """:func:`run_finetune`, writing into ``work`` what ends up as ``out`` (the paths it records)."""
    from evalsuite.finetune.card import write_card
    from evalsuite.finetune.negatives import MiningConfig, false_negative_check, mine_negatives
    from evalsuite.finetune.pairs import count_truncated, write_pairs
    from evalsuite.finetune.split import drop_leaking_pairs, guard_leakage, heldout_data, split_queries
    from evalsuite.finetune.train import DevSet, TrainConfig, train_model
    from evalsuite.io._text import atomic_write
    from evalsuite.models import content_fingerprint
    from evalsuite.results import environment
    from evalsuite.retrievers import get_retriever
    from evalsuite.runner import RunOptions, build_retrievers, build_task, sts_cell, write_details, write_per_query
    from evalsuite.tasks.base import STSData

    timing: dict[str, float] = {}
    seed = spec.seed if spec.seed is not None else suite.seed
    task_spec = next(t for t in suite.tasks if t.name == spec.task)
    task = build_task(task_spec, suite)
    say(f"{spec.task}: loading")
    data = task.load()
    if isinstance(data, STSData):
        raise ConfigError(f"finetune.task {spec.task!r} is an STS task; the fine-tune needs a retrieval task")
    meta = task.metadata

    # 1. split by query
    t0 = time.perf_counter()
    judged = judged_queries(data)
    test_fraction = spec.effective_test_fraction()
    split = split_queries(judged, test_fraction=test_fraction, dev_fraction=spec.dev_fraction, seed=seed,
                          texts=[str(data.queries[q]) for q in judged], threshold=spec.leakage_threshold)
    if spec.pairs == "qrels" and not split.train:
        raise ConfigError(f"finetune: test_fraction {test_fraction} and dev_fraction {spec.dev_fraction} leave no "
                          f"training query of the {len(judged)} judged queries of {spec.task}")
    heldout = heldout_data(data, split.test)
    say(f"split: {len(split.train)} training, {len(split.dev)} dev, {len(split.test)} held-out queries (seed {seed})")

    # 2. pairs, 3. leakage guard
    pairs = _build_pairs(spec, suite, data, split.train)
    dropped_leaks: list[dict[str, Any]] = []
    if spec.drop_leaked:
        pairs, dropped_leaks = drop_leaking_pairs(pairs, heldout, threshold=spec.leakage_threshold)
        if dropped_leaks:
            say(f"dropped {len(dropped_leaks)} training pairs whose anchor (nearly) equals a held-out query "
                f"(drop_leaked), e.g. pair {dropped_leaks[0]['pair']}: {dropped_leaks[0]['anchor'][:60]!r}")
        if not pairs.pairs:
            raise ConfigError("finetune: every training pair leaked into the held-out queries and was dropped")
    overridden = spec.allow_leakage or allow_leakage
    guard = guard_leakage(pairs, heldout, threshold=spec.leakage_threshold, allow=overridden,
                          source=pairs.source.removeprefix("file:"))
    if guard.leaked_queries:
        say(f"WARNING: {len(guard.leaked_queries)} held-out queries leak into training (override given)")
    say(f"pairs: {len(pairs)} from {pairs.source}")
    timing["pairs"] = time.perf_counter() - t0

    options = RunOptions(progress=progress, cache_dir=cache_dir)
    retrievers = build_retrievers(suite, options)
    base = retrievers[spec.base]
    base_name, base_folder = _base_folder(base)
    if base_folder is None:
        raise ConfigError(f"finetune.base {spec.base!r}: model {base_name!r} has no local sentence-transformers folder")
    from evalsuite.retrievers.encoders import read_st_layout

    max_length = spec.max_seq_length or read_st_layout(base_folder).max_seq_length or 512

    # 4. negatives
    negatives_info: dict[str, Any] | None = None
    if spec.negatives is not None:
        t0 = time.perf_counter()
        n = spec.negatives
        config = MiningConfig(top_k=n.top_k, per_pair=n.per_pair, skip_top=n.skip_top,
                              absolute_margin=n.absolute_margin, relative_margin=n.relative_margin,
                              max_score=n.max_score, cross_encoder=_local_or_hub(suite, n.cross_encoder),
                              cross_encoder_margin=n.cross_encoder_margin,
                              strategy=n.strategy, fill=n.fill, positive_score=n.positive_score, seed=seed)
        miner_name = n.miner or spec.base
        miner = retrievers[miner_name] if miner_name in retrievers else get_retriever(miner_name)
        known = {q: {d for d, g in docs.items() if g >= 1} for q, docs in data.qrels.grade_maps().items()
                 if q in set(split.train)}
        say(f"mining negatives with {miner_name} (top {n.top_k}, {n.per_pair} per pair)")
        miner.index(data.corpus)
        mined = mine_negatives(pairs, data.corpus, miner, config, known_positives=known, indexed=True)
        pairs = PairSet(mined.pairs, pairs.source, pairs.stats, pairs.notes)
        negatives_info = {"miner": miner_name, "miner_label": miner.meta.label, **config.to_dict(),
                          "counts": mined.counts, "seconds": mined.seconds}
        if n.measure_false_negatives:
            train_qrels = {q: data.qrels.grade_maps()[q] for q in split.train}
            negatives_info["false_negative_check"] = false_negative_check(
                data.queries, data.corpus, train_qrels, miner, config, seed=seed, indexed=True)
        timing["mining"] = time.perf_counter() - t0
    truncated = count_truncated(pairs.pairs, base_folder, max_length)
    write_pairs(pairs.pairs, work / "pairs.jsonl")

    # 5. training
    train_config = TrainConfig(
        loss=spec.loss, matryoshka_dims=tuple(spec.matryoshka_dims) if spec.matryoshka_dims else None,
        epochs=spec.epochs, batch_size=spec.batch_size, mini_batch_size=spec.mini_batch_size,
        learning_rate=spec.learning_rate, warmup_ratio=spec.warmup_ratio, weight_decay=spec.weight_decay,
        max_seq_length=spec.max_seq_length, scale=spec.scale, margin=spec.margin, seed=seed,
        device=device or spec.device, max_steps=spec.max_steps, eval_steps=spec.eval_steps,
        dev_metric=spec.dev_metric or suite.metrics[0], keep_best=spec.keep_best)
    dev = None
    if split.dev:
        dev_data = heldout_data(data, split.dev)
        dev = DevSet(dev_data.queries, data.corpus, dev_data.qrels, tuple(suite.metrics), suite.k)
    model_dir = work / "model"
    final_model = out / "model"
    base_fingerprint = content_fingerprint(base_folder)
    card: dict[str, Any] = {
        "name": f"{spec.tuned_name} (fine-tuned {Path(base_name).name})",
        "base_model": {"name": base_name, "fingerprint": base_fingerprint},
        "task": spec.task, "data_content_hash": meta.content_hash, "seed": seed,
        "evalsuite_version": environment().get("evalsuite"),
        "pairs": pairs.summary(), "negatives": negatives_info and {k: v for k, v in negatives_info.items()
                                                                   if k != "false_negative_check"},
        "hyperparameters": train_config.to_dict(), "split": split.to_dict(),
        "leakage_override": overridden and bool(guard.leaked_queries),
    }
    say(f"training {base_name} on {len(pairs)} pairs ({train_config.loss}, {spec.epochs:g} epoch(s), batch "
        f"{spec.batch_size})")
    t0 = time.perf_counter()
    def first_card(folder: Path, _: Any) -> None:  # the card is in the folder before it is renamed into place
        write_card(folder, card)

    report = train_model(base_folder, pairs.pairs, model_dir, train_config, dev=dev, progress=progress,
                         finish=first_card)
    timing["training"] = time.perf_counter() - t0
    fingerprint = content_fingerprint(model_dir)
    say(f"trained: {report.steps} steps in {report.seconds:.0f} s on {report.hardware}")

    # 6. before / after on the held-out queries
    t0 = time.perf_counter()
    base_spec = next(r for r in suite.retrievers if r.name == spec.base)
    params = {k: v for k, v in base_spec.params.items() if k != "model"}
    cache = options.cache_dir or suite.resolve(suite.cache_dir)
    if cache is not None:
        params.setdefault("cache_dir", str(cache))
    params.setdefault("progress", progress)
    tuned = get_retriever("dense", **params, model=str(model_dir), name=spec.tuned_name)
    names = [n for n in (spec.compare if spec.compare is not None else list(retrievers)) if n != spec.base]
    systems: list[tuple[str, Any]] = [(spec.base, base), (spec.tuned_name, tuned)] + [(n, retrievers[n])
                                                                                    for n in names]
    cells: list[CellResult] = []
    shown: set[str] = set()
    for name, retriever in systems:
        say(f"{spec.task} (held-out) / {name}: evaluating {len(heldout.queries)} queries")
        cell, run = _evaluate_cell(spec.task, name, retriever, heldout, list(suite.metrics), suite.k, work)
        cell.notes.append(f"held-out queries only ({len(split.test)} of {len(judged)})")
        shown.update(run.top_k(10).doc_ids.tolist())
        cells.append(cell)
    write_details(heldout, shown, work / "details" / f"{spec.task}.json")
    base_cell, tuned_cell = cells[0], cells[1]
    gains = {m: gain(tuned_cell.per_query[m], base_cell.per_query[m], m, seed=seed)
             for m in suite.metrics if m in tuned_cell.per_query and m in base_cell.per_query}
    others = []
    for cell in cells[2:]:
        for m in suite.metrics:
            if m in cell.per_query and m in tuned_cell.per_query:
                g = gain(tuned_cell.per_query[m], cell.per_query[m], m, seed=seed)
                others.append({"system": cell.system, "metric": m, "value": g["before"], "tuned": g["after"],
                               "tuned_minus_system": g["delta"], "ci_low": g["ci_low"], "ci_high": g["ci_high"],
                               "p_value": g["p_value"]})
    out_of_domain = []
    task_infos: list[dict[str, Any]] = [{
        **meta.__dict__, "n_queries": len(heldout.queries), "n_docs": len(data.corpus),
        "n_judgements": heldout.qrels.n_rows, "details_file": f"details/{spec.task}.json",
        "notes": [*data.notes, f"fine-tune evaluation: the {len(split.test)} held-out queries only (seed {seed}); "
                               f"{len(split.train)} queries trained on"],
        "leakage": guard.report,
    }]
    for name in spec.out_of_domain:
        ood_spec = next(t for t in suite.tasks if t.name == name)
        ood_task = build_task(ood_spec, suite)
        ood = ood_task.load()
        task_infos.append({**ood_task.metadata.__dict__, "notes": ["out-of-domain check (forgetting)"]})
        for system, retriever in systems[:2]:
            say(f"{name} (out of domain) / {system}: evaluating")
            if isinstance(ood, STSData):
                ood_cell = sts_cell(ood_spec, system, retriever, ood, say)
            else:
                ood_cell, _ = _evaluate_cell(name, system, retriever, ood, list(suite.metrics), suite.k, work)
            cells.append(ood_cell)
        before_cell, after_cell = cells[-2], cells[-1]
        for m in after_cell.aggregate:
            out_of_domain.append({"task": name, "metric": m, "before": before_cell.aggregate.get(m),
                                  "after": after_cell.aggregate[m],
                                  "delta": after_cell.aggregate[m] - before_cell.aggregate.get(m, math.nan)})
    timing["evaluation"] = time.perf_counter() - t0

    # 7. verdict and gates
    main = train_config.dev_metric if train_config.dev_metric in gains else next(iter(gains))
    line = verdict(gains[main])
    gates = min_gain_gates(spec, gains, spec.task)
    exit_code = 1 if any(g["status"] == "fail" for g in gates) else 0
    timing["total"] = time.perf_counter() - started
    card.update(fingerprint=fingerprint, verdict=line, n_test_queries=len(split.test),
                before={m: g["before"] for m, g in gains.items()}, after={m: g["after"] for m, g in gains.items()},
                gain={m: {k: g[k] for k in ("delta", "ci_low", "ci_high", "p_value")} for m, g in gains.items()})
    write_card(model_dir, card)
    payload: dict[str, Any] = {
        "base": spec.base, "tuned": spec.tuned_name, "task": spec.task, "main_metric": main, "verdict": line,
        "model_path": str(final_model.resolve()), "base_model": card["base_model"],
        "tuned_model": {"path": str(final_model.resolve()), "fingerprint": fingerprint},
        "seed": seed, "split": split.to_dict(),
        "test_queries": list(split.test), "train_queries": list(split.train), "dev_queries": list(split.dev),
        "pairs": {**pairs.summary(), "truncated": truncated, "file": "pairs.jsonl"},
        "negatives": negatives_info,
        "leakage": {**guard.to_dict(), "dropped_pairs": len(dropped_leaks), "dropped": dropped_leaks[:20]},
        "training": {**report.to_dict(), "config": train_config.to_dict()},
        "before": {m: g["before"] for m, g in gains.items()}, "after": {m: g["after"] for m, g in gains.items()},
        "gain": {m: {k: v for k, v in g.items() if k != "deltas"} for m, g in gains.items()},
        "per_query_delta": {main: gains[main]["deltas"]},
        "others": others, "out_of_domain": out_of_domain, "gates": gates,
        "timing": timing, "hardware": report.hardware, "device": report.device,
    }
    run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]
    results = SuiteResults(
        suite=suite.name, run_id=run_id, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        metrics=list(suite.metrics), environment=environment(command if command is not None else sys.argv),
        tasks=task_infos, systems=[{"name": n, "meta": _moved(r.meta.to_dict(), str(model_dir), str(final_model))}
                                   for n, r in systems],
        cells=cells, config={**suite.model_dump(mode="json"), "source": suite.source}, gates=gates,
        timing={"total": timing["total"]}, path=str(work / "results.json"), finetune=payload)
    write_per_query(results, work / "per_query.csv")
    results.write(work / "results.json")
    if write_report:
        from evalsuite.report import build_report, render_html, render_markdown

        built = build_report(results, baseline_system=spec.base, seed=seed)
        with atomic_write(work / "report.md") as fh:
            fh.write(render_markdown(built))
        render_html(built, work / "report.html")  # the report reads runs/ and details/ beside results.path
    results.path = str(out / "results.json")
    return FinetuneOutcome(results, out, final_model, exit_code, gates)


def _moved(value: Any, old: str, new: str) -> Any:
    """``value`` (a retriever's meta) with the tuned model's temporary path ``old`` as its final path ``new``."""
    if isinstance(value, str):
        return new + value[len(old):] if value == old or value.startswith(old + "/") else value
    if isinstance(value, dict):
        return {k: _moved(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_moved(v, old, new) for v in value]
    return value


def _local_or_hub(suite: SuiteConfig, model: str | None) -> str | None:
    """A model path relative to the YAML file when it exists there, else the name as given (hub id)."""
    if model is None:
        return None
    local = suite.resolve(model)
    return str(local) if local is not None and local.exists() else model

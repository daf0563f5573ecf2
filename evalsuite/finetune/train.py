"""Fine-tuning a bi-encoder with sentence-transformers' own trainer.

:func:`train_model` loads the base model (any sentence-transformers folder, packaged name or
hub id), builds a ``datasets.Dataset`` in the column form the loss expects, and trains with
``SentenceTransformerTrainer``:

* ``mnrl`` (default): ``MultipleNegativesRankingLoss`` -- InfoNCE over in-batch negatives
  (plus the pairs' mined negatives when present), ``scale`` 20 (temperature 0.05);
* ``cached_mnrl``: ``CachedMultipleNegativesRankingLoss`` -- the same loss with large
  effective batches in small memory (``mini_batch_size`` texts per forward pass);
* ``triplet``: ``TripletLoss`` over (anchor, positive, negative) rows, one row per negative;
* ``contrastive``: ``ContrastiveLoss`` over (anchor, text, label) rows: positives 1, negatives 0;
* ``matryoshka_dims``: any of the above wrapped in ``MatryoshkaLoss`` so that the first 384 /
  256 / ... dimensions are trained to be embeddings too.

In-batch-negative losses use the ``NO_DUPLICATES`` batch sampler (a text repeated in a batch
would be a false in-batch negative). Training is seeded; the warm-up is ``warmup_ratio`` of
the steps; the device is chosen automatically (CUDA, then Apple MPS, then CPU) unless given.
With a dev split, the model is evaluated with evalsuite's own metrics (exact cosine search
over the whole corpus, :func:`evalsuite.evaluate`) before training and every ``eval_steps``
(default: every epoch), and the best checkpoint is kept.

The trained model is written to a temporary folder beside ``output`` and renamed into place
only when everything (weights, tokenizer, model card) is written: an interrupted or failed
training leaves no half-written model folder. A model folder that already exists at
``output`` is replaced only by a complete new one.
"""

from __future__ import annotations

import math
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from evalsuite._optional import require
from evalsuite._runfolder import replace_folder
from evalsuite.errors import ConfigError, DataError
from evalsuite.finetune.pairs import Pair
from evalsuite.types import Corpus, Qrels, Queries, Run

__all__ = ["LOSSES", "DevSet", "TrainConfig", "TrainReport", "choose_device", "train_model"]

Loss = Literal["mnrl", "cached_mnrl", "triplet", "contrastive"]
LOSSES: tuple[str, ...] = ("mnrl", "cached_mnrl", "triplet", "contrastive")
_IN_BATCH = ("mnrl", "cached_mnrl")


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters (CPU-friendly defaults; see ``../shared/FINETUNE.md``)."""

    loss: Loss = "mnrl"
    matryoshka_dims: tuple[int, ...] | None = None
    epochs: float = 1.0
    batch_size: int = 32
    mini_batch_size: int = 32
    learning_rate: float = 3e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    max_seq_length: int | None = None
    scale: float = 20.0
    margin: float | None = None
    seed: int = 0
    device: str = "auto"
    max_steps: int | None = None
    eval_steps: int | None = None
    dev_metric: str = "ndcg@10"
    keep_best: bool = True

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            import difflib

            close = difflib.get_close_matches(str(self.loss), LOSSES, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown loss {self.loss!r}{hint} (losses: {', '.join(LOSSES)})")
        for what in ("batch_size", "mini_batch_size"):
            value = getattr(self, what)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{what} must be a positive integer, got {value!r}")
        if self.loss in _IN_BATCH and self.batch_size < 2:
            raise ConfigError(f"batch_size {self.batch_size}: in-batch negatives need at least 2 pairs a batch")
        if not self.epochs > 0:
            raise ConfigError(f"epochs must be > 0, got {self.epochs}")
        if not 0 < self.learning_rate < 1:
            raise ConfigError(f"learning_rate must be in (0, 1), got {self.learning_rate}")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.eval_steps is not None and self.eval_steps < 1:
            raise ConfigError(f"eval_steps must be >= 1, got {self.eval_steps}")
        if self.max_seq_length is not None and self.max_seq_length < 2:
            raise ConfigError(f"max_seq_length must be >= 2, got {self.max_seq_length}")
        if self.matryoshka_dims is not None:
            dims = list(self.matryoshka_dims)
            if not dims or any(not isinstance(d, int) or d < 1 for d in dims):
                raise ConfigError(f"matryoshka_dims must be a list of positive integers, got {dims}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["matryoshka_dims"] = list(self.matryoshka_dims) if self.matryoshka_dims else None
        return out


@dataclass(frozen=True)
class DevSet:
    """Queries, corpus and judgements the checkpoint is chosen on (training queries held back)."""

    queries: Queries
    corpus: Corpus
    qrels: Qrels
    metrics: tuple[str, ...] = ("ndcg@10", "recall@10")
    k: int = 100


@dataclass
class TrainReport:
    """What happened in training: steps, curves, the chosen checkpoint, time and hardware."""

    rows: int
    steps: int
    epochs: float
    seconds: float
    device: str
    hardware: str
    loss: str
    loss_curve: list[dict[str, float]] = field(default_factory=list)
    dev_curve: list[dict[str, float]] = field(default_factory=list)
    dev_metric: str | None = None
    best_step: int | None = None
    best_value: float | None = None
    dev_base_value: float | None = None
    warmup_steps: int = 0
    columns: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def choose_device(device: str = "auto") -> str:
    """``"auto"``: CUDA when available, then Apple MPS, else CPU; anything else as given."""
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def _hardware(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (CUDA)"
    cpu = platform.processor() or platform.machine()
    return f"CPU {cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"


def _st_module(new: str, old: str) -> Any:
    """A sentence-transformers module under its v5.4+ path, else its older one."""
    import importlib

    try:
        return importlib.import_module(new)
    except ModuleNotFoundError:
        return importlib.import_module(old)


def _columns(pairs: Sequence[Pair], loss: str) -> dict[str, list[Any]]:
    """The training table for ``loss`` (see the module docstring)."""
    widths = {len(p.negatives) for p in pairs}
    if len(widths) > 1:
        raise DataError(f"training pairs have differing numbers of negatives ({sorted(widths)}); mine the same "
                        "number for every pair")
    width = widths.pop()
    if loss in _IN_BATCH:
        table: dict[str, list[Any]] = {"anchor": [p.anchor for p in pairs], "positive": [p.positive for p in pairs]}
        for i in range(width):
            table[f"negative_{i + 1}"] = [p.negatives[i] for p in pairs]
        return table
    if not width:
        raise ConfigError(f"loss {loss!r} needs negatives: mine them (negatives: {{...}}) or give a pairs file "
                          "with a negative column")
    if loss == "triplet":
        rows = [(p.anchor, p.positive, n) for p in pairs for n in p.negatives]
        return {"anchor": [r[0] for r in rows], "positive": [r[1] for r in rows], "negative": [r[2] for r in rows]}
    rows2 = [(p.anchor, p.positive, 1.0) for p in pairs] + [(p.anchor, n, 0.0) for p in pairs for n in p.negatives]
    return {"sentence1": [r[0] for r in rows2], "sentence2": [r[1] for r in rows2], "label": [r[2] for r in rows2]}


def _make_loss(model: Any, config: TrainConfig) -> Any:
    losses = _st_module("sentence_transformers.sentence_transformer.losses", "sentence_transformers.losses")
    if config.loss == "mnrl":
        loss = losses.MultipleNegativesRankingLoss(model, scale=config.scale)
    elif config.loss == "cached_mnrl":
        loss = losses.CachedMultipleNegativesRankingLoss(model, scale=config.scale,
                                                         mini_batch_size=config.mini_batch_size)
    elif config.loss == "triplet":
        loss = losses.TripletLoss(model, **({"triplet_margin": config.margin} if config.margin is not None else {}))
    else:
        loss = losses.ContrastiveLoss(model, **({"margin": config.margin} if config.margin is not None else {}))
    if config.matryoshka_dims:
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        full = getter()
        too_big = [d for d in config.matryoshka_dims if full is not None and d > full]
        if too_big:
            raise ConfigError(f"matryoshka_dims {too_big} exceed the model's {full} dimensions")
        loss = losses.MatryoshkaLoss(model, loss, matryoshka_dims=list(config.matryoshka_dims))
    return loss


def _dev_evaluator(dev: DevSet, main: str, batch_size: int) -> Any:
    """A sentence-transformers evaluator that scores with evalsuite's metrics (exact cosine search)."""
    base = _st_module("sentence_transformers.base.evaluation.evaluator", "sentence_transformers.evaluation")
    parent = getattr(base, "BaseEvaluator", None) or base.SentenceEvaluator
    from evalsuite.metrics.evaluate import evaluate
    from evalsuite.metrics.spec import parse_metrics

    metrics = [str(m) for m in parse_metrics([main, *dev.metrics])]
    metrics = list(dict.fromkeys(metrics))
    query_ids = dev.queries.ids
    query_texts = [str(t) for t in dev.queries.texts.tolist()]
    doc_texts = dev.corpus.contents()

    class DevEvaluator(parent):  # type: ignore[misc,valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.name = "dev"
            self.main = metrics[0]
            self.primary_metric = metrics[0]
            self.greater_is_better = True
            self.history: list[dict[str, float]] = []

        def __call__(self, model: Any, output_path: str | None = None, epoch: float = -1,
                     steps: int = -1) -> dict[str, float]:
            encode_q = getattr(model, "encode_query", model.encode)
            encode_d = getattr(model, "encode_document", model.encode)
            q = np.asarray(encode_q(query_texts, batch_size=batch_size, convert_to_numpy=True,
                                    normalize_embeddings=True, show_progress_bar=False), dtype=np.float32)
            d = np.asarray(encode_d(doc_texts, batch_size=batch_size, convert_to_numpy=True,
                                    normalize_embeddings=True, show_progress_bar=False), dtype=np.float32)
            scores = q @ d.T
            k = min(dev.k, scores.shape[1])
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            run = Run.from_topk(query_ids, dev.corpus.ids, top, np.take_along_axis(scores, top, axis=1), name="dev")
            result = evaluate(dev.qrels, run, metrics)
            values = {m: float(result.aggregate[m]) for m in metrics}
            self.history.append({"step": float(max(steps, 0)), "epoch": float(max(epoch, 0)), **values})
            return self.prefix_name_to_metrics(values, self.name)

    return DevEvaluator()


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("evalsuite", "sentence-transformers", "transformers", "torch", "accelerate", "datasets"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def train_model(
    base: str | os.PathLike[str],
    pairs: Sequence[Pair],
    output: str | os.PathLike[str],
    config: TrainConfig | None = None,
    *,
    dev: DevSet | None = None,
    progress: bool | None = None,
    finish: Callable[[Path, TrainReport], None] | None = None,
) -> TrainReport:
    """Fine-tune ``base`` on ``pairs`` and write the model folder ``output`` (see the module docstring).

    ``finish(folder, report)`` is called on the complete temporary folder before it is renamed
    into place (the loop writes the model card there).
    """
    import sys

    config = config or TrainConfig()
    if not pairs:
        raise DataError("no training pairs: nothing to train on")
    st = require("sentence_transformers", package="sentence-transformers", extra="finetune",
                 purpose="fine-tuning")
    require("accelerate", extra="finetune", purpose="fine-tuning with sentence-transformers' trainer")
    datasets = require("datasets", extra="finetune", purpose="fine-tuning with sentence-transformers' trainer")
    from evalsuite.models import resolve_model
    from evalsuite.retrievers._common import local_model_folder, quiet_transformers

    source = resolve_model(base)
    if source.format != "sentence-transformers" and source.format != "hub":
        raise ConfigError(f"base model {source.name!r} is a {source.format} model; fine-tuning needs a "
                          "sentence-transformers (torch) model folder or hub id")
    folder, _ = local_model_folder(source)
    device = choose_device(config.device)
    show = sys.stderr.isatty() if progress is None else progress
    table = _columns(pairs, config.loss)
    rows = len(next(iter(table.values())))
    target = Path(output)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.training-", dir=target.parent))
    began = time.perf_counter()
    try:
        with quiet_transformers(show):
            try:
                model = st.SentenceTransformer(str(folder), device=device)
            except Exception as exc:
                raise ConfigError(f"base model {source.name!r} ({folder}) could not be loaded as a "
                                  f"sentence-transformers model ({type(exc).__name__}: {str(exc)[:200]})") from exc
        if config.max_seq_length is not None:
            model.max_seq_length = config.max_seq_length
        loss = _make_loss(model, config)
        dataset = datasets.Dataset.from_dict(table)
        steps_per_epoch = math.ceil(rows / config.batch_size)
        total = config.max_steps or max(1, math.ceil(steps_per_epoch * config.epochs))
        warmup = math.ceil(total * config.warmup_ratio)
        samplers = _st_module("sentence_transformers.base.sampler", "sentence_transformers.training_args")
        args_module = _st_module("sentence_transformers.sentence_transformer.training_args",
                                 "sentence_transformers.training_args")
        evaluator = _dev_evaluator(dev, config.dev_metric, config.batch_size) if dev is not None else None
        evaluate_every = config.eval_steps or steps_per_epoch
        args: dict[str, Any] = {
            "output_dir": str(work / "checkpoints"),
            "num_train_epochs": config.epochs,
            "max_steps": config.max_steps or -1,
            "per_device_train_batch_size": config.batch_size,
            "per_device_eval_batch_size": config.batch_size,
            "learning_rate": config.learning_rate,
            "warmup_steps": warmup,
            "weight_decay": config.weight_decay,
            "seed": config.seed,
            "data_seed": config.seed,
            "batch_sampler": samplers.BatchSamplers.NO_DUPLICATES if config.loss in _IN_BATCH
            else samplers.BatchSamplers.BATCH_SAMPLER,
            "logging_steps": max(1, min(10, total // 20 or 1)),
            "report_to": "none",
            "disable_tqdm": not show,
            "use_cpu": device == "cpu",
            "dataloader_num_workers": 0,
            "save_strategy": "no",
            "eval_strategy": "no",
        }
        if evaluator is not None:
            args.update(eval_strategy="steps", eval_steps=evaluate_every)
            if config.keep_best:
                args.update(save_strategy="steps", save_steps=evaluate_every, load_best_model_at_end=True,
                            metric_for_best_model=f"dev_{evaluator.main}", greater_is_better=True,
                            save_total_limit=2, save_only_model=True)
        training_args = args_module.SentenceTransformerTrainingArguments(**args)
        if evaluator is not None:
            evaluator(model, epoch=0, steps=0)  # the base model on the dev split: the curve's first point
        trainer = st.SentenceTransformerTrainer(model=model, args=training_args, train_dataset=dataset, loss=loss,
                                                evaluator=evaluator)
        if not show:  # the trainer prints its logs when tqdm is off; they are in the report instead
            from transformers.trainer_callback import PrinterCallback

            trainer.remove_callback(PrinterCallback)
        with quiet_transformers(show):
            trainer.train()
        state = trainer.state
        report = TrainReport(
            rows=rows, steps=int(state.global_step), epochs=float(state.epoch or 0.0),
            seconds=time.perf_counter() - began, device=device, hardware=_hardware(device), loss=config.loss,
            loss_curve=[{"step": float(e["step"]), "epoch": float(e.get("epoch", 0.0)), "loss": float(e["loss"])}
                        for e in state.log_history if "loss" in e and "step" in e],
            dev_curve=list(evaluator.history) if evaluator is not None else [],
            dev_metric=evaluator.main if evaluator is not None else None,
            warmup_steps=warmup, columns=list(table), versions=_versions())
        if evaluator is not None and len(evaluator.history) > 1:
            metric = evaluator.main
            trained = evaluator.history[1:]  # [0] is the base model
            chosen = max(trained, key=lambda e: (e[metric], -e["step"])) if config.keep_best else trained[-1]
            report.best_step, report.best_value = int(chosen["step"]), chosen[metric]
            report.dev_base_value = evaluator.history[0][metric]
        staged = work / "model"
        trainer.model.save(str(staged))
        shutil.rmtree(work / "checkpoints", ignore_errors=True)
        if finish is not None:
            finish(staged, report)
        replace_folder(staged, target)
        return report
    finally:
        shutil.rmtree(work, ignore_errors=True)

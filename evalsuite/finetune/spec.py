"""The ``finetune:`` section of a suite YAML (validated with pydantic, like the rest of the suite).

Example (the keys of the issue's contract are fixed; the others are optional)::

    finetune:
      base: minilm-l6            # a dense retriever of the suite
      task: cranfield            # a retrieval task of the suite
      test_fraction: 0.5         # held-out share of the judged queries (default 0.5; 1.0 for titles / files)
      seed: 0                    # default: the suite's seed
      pairs: qrels               # qrels | titles | {file: pairs.jsonl}
      negatives: {miner: minilm-l6, top_k: 50, per_pair: 1, relative_margin: 0.05}
      epochs: 1
      batch_size: 32
      learning_rate: 3.0e-5
      dev_fraction: 0.2          # share of the training queries that selects the checkpoint
      gates: [{metric: ndcg@10, min_gain: 0.01}]
      out_of_domain: [stsb]      # tasks of the suite evaluated before and after (forgetting)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:
    from evalsuite.config import SuiteConfig

__all__ = ["FinetuneSpec", "MinGainGate", "NegativesSpec", "PairsFile", "check_finetune"]


class _Strict(BaseModel):
    # no .inf / .nan: no setting of the loop means them (epochs: .inf crashed mid-run, min_gain: .inf at the end)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class PairsFile(_Strict):
    """``pairs: {file: path}``: a JSONL/CSV/TSV pairs file (relative to the YAML file)."""

    file: str


class NegativesSpec(_Strict):
    """Hard-negative mining (see :mod:`evalsuite.finetune.negatives`)."""

    miner: str | None = Field(default=None, description="a retriever of the suite or a retriever type; "
                                                        "default: the base model")
    top_k: int = Field(default=50, ge=1)
    per_pair: int = Field(default=1, ge=1)
    skip_top: int = Field(default=0, ge=0)
    absolute_margin: float | None = Field(default=None, ge=0)
    relative_margin: float | None = Field(default=None, ge=0, lt=1)
    max_score: float | None = None
    cross_encoder: str | None = None
    cross_encoder_margin: float = 0.0
    strategy: Literal["top", "random"] = "top"
    fill: Literal["random", "drop"] = "random"
    positive_score: Literal["weakest", "pair"] = Field(
        default="weakest", description="the positive score the margins are taken from: the anchor's weakest "
                                       "positive (sentence-transformers' convention) or each pair's own")
    measure_false_negatives: bool = False


class MinGainGate(_Strict):
    """FAIL unless the tuned model beats the base by at least ``min_gain`` on ``metric``,
    significantly (paired randomization test, p < ``alpha``) on the held-out queries."""

    metric: str
    min_gain: float
    alpha: float = Field(default=0.05, gt=0, lt=1)
    name: str | None = None

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        from evalsuite.metrics.spec import parse_metric

        return str(parse_metric(value))


class FinetuneSpec(_Strict):
    """The fine-tune loop of a suite (see the module docstring)."""

    base: str
    task: str
    test_fraction: float | None = Field(default=None, gt=0, le=1)
    dev_fraction: float = Field(default=0.0, ge=0, lt=1)
    seed: int | None = Field(default=None, ge=0, lt=2**32, strict=True)  # as the suite's seed
    pairs: Literal["qrels", "titles"] | PairsFile = "qrels"
    min_grade: int = Field(default=1, ge=1)
    negatives: NegativesSpec | None = None
    loss: Literal["mnrl", "cached_mnrl", "triplet", "contrastive"] = "mnrl"
    matryoshka_dims: list[int] | None = None
    epochs: float = Field(default=1.0, gt=0)
    batch_size: int = Field(default=32, ge=2)
    mini_batch_size: int = Field(default=32, ge=1)
    learning_rate: float = Field(default=3e-5, gt=0, lt=1)
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    weight_decay: float = Field(default=0.0, ge=0)
    max_seq_length: int | None = Field(default=None, ge=2)
    scale: float = Field(default=20.0, gt=0)
    margin: float | None = None
    max_steps: int | None = Field(default=None, ge=1)
    eval_steps: int | None = Field(default=None, ge=1)
    dev_metric: str | None = None
    keep_best: bool = True
    device: str = "auto"
    allow_leakage: bool = False
    drop_leaked: bool = Field(default=False, description="drop training pairs whose anchor (nearly) equals a "
                                                         "held-out query, instead of refusing the run")
    leakage_threshold: float = Field(default=0.8, gt=0, le=1)
    out_of_domain: list[str] = Field(default_factory=list)
    compare: list[str] | None = Field(default=None, description="systems shown beside the tuned model; "
                                                                "default: every retriever of the suite")
    gates: list[MinGainGate] = Field(default_factory=list)
    name: str | None = Field(default=None, description="name of the tuned system; default: <base>-tuned")

    @field_validator("dev_metric")
    @classmethod
    def _dev_metric(cls, value: str | None) -> str | None:
        from evalsuite.metrics.spec import parse_metric

        return None if value is None else str(parse_metric(value))

    @property
    def tuned_name(self) -> str:
        return self.name or f"{self.base}-tuned"

    def effective_test_fraction(self) -> float:
        """0.5 for pairs from the qrels; 1.0 (every query held out) for titles or a file."""
        if self.test_fraction is not None:
            return self.test_fraction
        return 0.5 if self.pairs == "qrels" else 1.0


def check_finetune(suite: SuiteConfig, fail: Callable[[tuple[int | str, ...], str], None]) -> None:
    """Cross-references of the section: ``fail(location, message)`` reports with the YAML line."""
    from evalsuite.retrievers import RETRIEVERS

    spec = suite.finetune
    if spec is None:
        return
    retrievers = {r.name: r for r in suite.retrievers}
    tasks = {t.name: t for t in suite.tasks}
    names = ", ".join(sorted(retrievers)) or "none"
    if spec.base not in retrievers:
        fail(("finetune", "base"), f"base {spec.base!r} is not a retriever of this suite ({names})")
    elif RETRIEVERS.canonical(retrievers[spec.base].type) != "dense":
        fail(("finetune", "base"), f"base {spec.base!r} is a {retrievers[spec.base].type} retriever; fine-tuning "
                                   "needs a dense (bi-encoder) retriever")
    if spec.task not in tasks:
        fail(("finetune", "task"), f"task {spec.task!r} is not in this suite ({', '.join(sorted(tasks))})")
    elif tasks[spec.task].type not in ("golden", "beir"):
        fail(("finetune", "task"), f"task {spec.task!r} is a {tasks[spec.task].type} task; the fine-tune needs a "
                                   "retrieval task read from local files (golden or beir)")
    if spec.pairs == "qrels" and spec.effective_test_fraction() >= 1:
        fail(("finetune", "test_fraction"), "test_fraction 1.0 with pairs: qrels leaves no training query")
    miner = spec.negatives.miner if spec.negatives is not None else None
    if miner is not None and miner not in retrievers and miner not in RETRIEVERS:
        fail(("finetune", "negatives", "miner"), f"miner {miner!r} is neither a retriever of this suite ({names}) "
                                                 "nor a retriever type")
    for i, task in enumerate(spec.out_of_domain):
        if task not in tasks:
            fail(("finetune", "out_of_domain", i), f"task {task!r} is not in this suite "
                                                   f"({', '.join(sorted(tasks))})")
    for i, system in enumerate(spec.compare or []):
        if system not in retrievers:
            fail(("finetune", "compare", i), f"system {system!r} is not a retriever of this suite ({names})")
    if spec.tuned_name in retrievers:
        fail(("finetune", "name"), f"the tuned system's name {spec.tuned_name!r} is already a retriever of this "
                                   "suite; set finetune.name")


def spec_summary(spec: FinetuneSpec) -> dict[str, Any]:
    """The section as JSON (for the results)."""
    return spec.model_dump(mode="json")

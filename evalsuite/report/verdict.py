"""The verdict of a task, the pairwise matrix behind it, and the gate decisions in words.

A reader of a model comparison asks three things: who won, by how much, and how sure we are.
This module answers them from numbers :mod:`evalsuite.report.model` has computed:

* :class:`PairCell`: one system against another on one metric (row minus column), with the
  paired test's p-value corrected with Holm over the family of the task: every pair of
  systems on every metric of that task (the family a reader of that task's matrix looks at;
  a comparison on another task never changes it).
* :class:`Verdict`: the best system on the task's main metric with its value and 95% interval;
  for every other system, whether it is significantly worse (with Δ and p) or not
  distinguishable on the n queries (a tie); the gate decisions made on the task.
* :class:`Decision`: a gate decision with what it means and the action to take, apart from
  set-up warnings (no baseline yet, a skipped task), which are :class:`SetupNote` s.

The same sentences head the HTML page, ``report.md`` and the CLI's run summary
(:func:`verdict_text`), so the three never disagree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Decision", "PairCell", "SetupNote", "Standing", "Verdict", "format_p", "verdict_text"]


def format_p(p: float) -> str:
    """A p-value for people: 4 decimals, ``< 0.0001`` below that, ``n/a`` when undefined."""
    if math.isnan(p):
        return "n/a"
    return "< 0.0001" if p < 1e-4 else f"{p:.4f}"


def _p_phrase(p: float) -> str:
    text = format_p(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


@dataclass(frozen=True)
class PairCell:
    """The row system minus the column system on one metric (Δ = row - column)."""

    metric: str
    row: str
    col: str
    delta: float
    ci_low: float
    ci_high: float
    p: float  # the test's own p-value
    p_holm: float  # corrected over the task's family
    n: int  # paired queries (or sentence pairs)
    alpha: float = 0.05

    @property
    def significant(self) -> bool:
        return not math.isnan(self.p_holm) and self.p_holm < self.alpha

    @property
    def marker(self) -> str:
        """▲ the row is significantly better than the column, ▼ significantly worse, else empty."""
        if not self.significant or math.isnan(self.delta) or self.delta == 0:
            return ""
        return "▲" if self.delta > 0 else "▼"

    def flipped(self) -> PairCell:
        """The same comparison seen from the other side (column minus row)."""
        return PairCell(self.metric, self.col, self.row, -self.delta, -self.ci_high, -self.ci_low, self.p,
                        self.p_holm, self.n, self.alpha)

    @property
    def tooltip(self) -> str:
        return (f"{self.row} minus {self.col} on {self.metric}: Δ = {self.delta:+.4f} (95% CI [{self.ci_low:+.4f}, "
                f"{self.ci_high:+.4f}]), n = {self.n}, p = {format_p(self.p)}, p Holm = {format_p(self.p_holm)}")


@dataclass(frozen=True)
class Standing:
    """Another system against the best one on the main metric."""

    system: str
    value: float
    delta: float  # system - best
    p_holm: float
    n: int
    tested: bool
    significant: bool
    reason: str = ""  # why there is no test, when there is none

    @property
    def kind(self) -> str:
        """``worse`` (significantly), ``tie`` (not distinguishable) or ``untested``."""
        if not self.tested:
            return "untested"
        return "worse" if self.significant and self.delta < 0 else "tie"


@dataclass
class Verdict:
    """Who won one task on its main metric, by how much, how sure we are, and what was decided."""

    task: str
    metric: str
    unit: str  # "queries" or "sentence pairs"
    method: str  # how the p-values were computed, in words
    best: str | None = None
    value: float = math.nan
    ci: tuple[float, float] | None = None
    n: int = 0
    standings: list[Standing] = field(default_factory=list)
    decisions: list[str] = field(default_factory=list)
    not_applicable: str = ""  # "bm25, hybrid (no sentence encoder for STS)"
    n_comparisons: int = 0
    alpha: float = 0.05
    note: str | None = None

    def _value(self) -> str:
        text = f"{self.value:.4f}"
        if self.ci is not None and not math.isnan(self.ci[0]):
            text += f" [95% CI {self.ci[0]:.4f}, {self.ci[1]:.4f}]"
        return text + (f" over {self.n} {self.unit}" if self.n else "")

    @property
    def headline(self) -> str:
        if self.best is None:
            return f"{self.task}: no system has a {self.metric} value, so nothing can be compared."
        if not self.standings:
            return f"{self.task}: {self.best} is the only system with a {self.metric} value: {self._value()}."
        if all(s.kind == "worse" for s in self.standings):
            return (f"{self.task}: {self.best} is best on {self.metric}: {self._value()}, significantly better than "
                    f"every other system.")
        ties = [s.system for s in self.standings if s.kind == "tie"]
        if ties and len(ties) == len(self.standings):
            return (f"{self.task}: {self.best} has the highest {self.metric}: {self._value()}, but no other system "
                    f"is significantly worse: a tie on these {self.n} {self.unit}.")
        return f"{self.task}: {self.best} has the highest {self.metric}: {self._value()}."

    @property
    def lines(self) -> list[tuple[str, str]]:
        """(kind, sentence) under the headline: one per other system, then the decisions."""
        out: list[tuple[str, str]] = []
        for s in self.standings:
            numbers = f"{s.value:.4f}, Δ = {s.delta:+.4f}"
            if s.kind == "worse":
                out.append(("worse", f"{s.system}: significantly worse ({numbers}, {_p_phrase(s.p_holm)})."))
            elif s.kind == "tie":
                out.append(("tie", f"{s.system}: tie, not distinguishable from {self.best} on {s.n} {self.unit} "
                                   f"({numbers}, {_p_phrase(s.p_holm)})."))
            else:
                out.append(("untested", f"{s.system}: {numbers}; no test: {s.reason}."))
        if self.not_applicable:
            out.append(("na", f"Not applicable: {self.not_applicable}."))
        out += [("decision", d) for d in self.decisions]
        return out

    @property
    def method_note(self) -> str:
        if self.note:
            return self.note
        if not self.n_comparisons:
            return ""
        return (f"p: {self.method}, Holm-corrected over the {self.n_comparisons} comparisons of this task "
                f"(every pair of systems on every metric), alpha = {self.alpha:g}.")


def verdict_text(verdicts: Sequence[Verdict]) -> list[str]:
    """The verdicts as plain lines (the CLI's summary; the Markdown adds emphasis to the same words)."""
    lines: list[str] = []
    for v in verdicts:
        lines.append(v.headline)
        lines += [f"  {'-> ' if kind == 'decision' else ''}{text}" for kind, text in v.lines]
        if v.method_note:
            lines.append(f"  ({v.method_note})")
    return lines


@dataclass(frozen=True)
class Alternative:
    """Another system measured on the task and metric a decision is about."""

    system: str
    value: float
    ci: tuple[float, float] | None
    clears: bool | None  # its interval lies entirely on the good side of the threshold (None: no threshold)
    delta: float | None = None  # vs the system the decision is about
    p_holm: float | None = None
    significant: bool = False

    @property
    def text(self) -> str:
        t = f"{self.system} {self.value:.4f}"
        if self.ci is not None and not math.isnan(self.ci[0]):
            t += f" [{self.ci[0]:.4f}, {self.ci[1]:.4f}]"
        if self.delta is not None and self.p_holm is not None:
            t += (f" (Δ {self.delta:+.4f}, {_p_phrase(self.p_holm)}, "
                  f"{'significant' if self.significant else 'not significant'})")
        return t


@dataclass
class Decision:
    """A gate result that decided something (or failed for lack of evidence), with what to do."""

    status: str  # pass | warn | fail
    gate: str
    label: str  # the decision (e.g. FINE-TUNE RECOMMENDED, REGRESSION) or FAILED for missing evidence
    fired: bool  # the rule's condition holds (a pass that only confirms is not fired)
    detail: str  # the evidence, in the gate's words
    where: list[str]  # "task / system" it applies to
    run_id: str
    tasks: list[str] = field(default_factory=list)
    meaning: str = ""
    alternatives: list[Alternative] = field(default_factory=list)
    alternatives_title: str = ""

    @property
    def count(self) -> int:
        return len(self.where)


@dataclass(frozen=True)
class SetupNote:
    """Housekeeping: something about the set-up (not the models), and how to fix it."""

    text: str
    fix: str = ""
    count: int = 1
    kind: str = "task"  # "gate" (a gate check waiting on set-up), "skipped" (a task not run), "task"


def fine_tune_meaning(label: str, system: str, task: str, metric: str, threshold: float | None,
                      word: str) -> str:
    """What an absolute gate's decision asks the reader to do, in words."""
    limit = f" {word} {threshold:g}" if threshold is not None else ""
    if "FINE" in label.upper() and "TUNE" in label.upper():
        return (f"{system}'s {metric} on {task} is{limit}: it misses too many relevant documents on this data. "
                "Cheaper options come first (a stronger or larger general model, hybrid search, reranking): the "
                "systems this suite measured are listed below. Fine-tune on in-domain (query, relevant document) "
                "pairs, split by query and checked for leakage, when they still fall short.")
    return f"The rule '{metric}{limit}' fired for {system} on {task}: act as the suite's decision '{label}' says."


def regression_meaning(label: str) -> str:
    if label == "REGRESSION":
        return ("The drop is larger than allowed and not noise: find the change that caused it before merging, or, "
                "if the drop is intended, ratchet the baseline (--update-baseline) in the same pull request.")
    if label == "WITHIN NOISE":
        return "The metric dropped, but not beyond what query sampling explains: no action needed; watch the trend."
    return ""


def spec_of(config: dict[str, Any], gate: str) -> dict[str, Any]:
    """The gate's declaration in a results file's suite config ({} when absent)."""
    for spec in config.get("gates") or []:
        if isinstance(spec, dict) and spec.get("name") == gate:
            return spec
    return {}


def is_fired(gate: dict[str, Any], spec: dict[str, Any]) -> bool:
    """Whether a gate result's rule fired (its decision is the one declared for firing, not ``otherwise``)."""
    label = gate.get("decision")
    if gate.get("kind") == "regression" or spec.get("max_drop") is not None:
        return gate.get("status") != "pass"
    if spec:
        return label != (spec.get("otherwise") or "PASS")
    return gate.get("status") != "pass"

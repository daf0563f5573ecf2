"""The model card of a fine-tuned model: ``README.md`` in the model folder.

The card says what the model is and how it was made -- base model and its content
fingerprint, the data's content hash, pair counts, the negatives configuration,
hyperparameters, seed, evalsuite version, the before/after figures on the held-out queries --
in prose and in one fenced JSON block that :func:`read_card` parses back. It is written over
the card sentence-transformers generates (whose metadata header is kept). ``README.md`` is
not part of the model's content fingerprint (:func:`evalsuite.models.content_fingerprint`
hashes weights, configs and tokenizer files), so writing or rewriting the card never changes
the fingerprint the embedding cache keys vectors by.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from evalsuite.errors import DataError

__all__ = ["CARD_FILE", "read_card", "render_card", "write_card"]

CARD_FILE = "README.md"
_BEGIN = "<!-- evalsuite-finetune-card -->"
_JSON = re.compile(r"```json evalsuite-finetune\n(.*?)\n```", re.DOTALL)


def _num(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def render_card(card: dict[str, Any]) -> str:
    """The card's Markdown (see the module docstring)."""
    base = card.get("base_model", {})
    lines = [_BEGIN, f"# {card.get('name', 'fine-tuned model')}", "",
             f"A fine-tune of `{base.get('name')}` (content fingerprint `{base.get('fingerprint')}`) made by "
             f"`evalsuite finetune` {card.get('evalsuite_version', '')} on task `{card.get('task')}` "
             f"(data content hash `{card.get('data_content_hash')}`).", ""]
    tuned = card.get("fingerprint")
    if tuned:
        lines += [f"Content fingerprint of this folder: `{tuned}` (weights, configs and tokenizer; this card is "
                  "not part of it).", ""]
    verdict = card.get("verdict")
    if verdict:
        lines += [f"**{verdict}**", ""]
    before, after, gain = card.get("before") or {}, card.get("after") or {}, card.get("gain") or {}
    if before or after:
        n = card.get("n_test_queries")
        lines += [f"Held-out queries ({n}), never used in training:", "",
                  "| metric | base | tuned | gain [95% CI] | p |", "|---|---:|---:|---:|---:|"]
        for metric in dict.fromkeys([*before, *after]):
            g = gain.get(metric, {})
            ci = f" [{_num(g.get('ci_low'))}, {_num(g.get('ci_high'))}]" if g else ""
            lines.append(f"| {metric} | {_num(before.get(metric))} | {_num(after.get(metric))} | "
                         f"{_num(g.get('delta')) if g else '—'}{ci} | {_num(g.get('p_value'), 3) if g else '—'} |")
        lines.append("")
    pairs = card.get("pairs") or {}
    lines += [f"Training pairs: {pairs.get('pairs')} from {pairs.get('source')}; negatives: "
              f"{json.dumps(card.get('negatives')) if card.get('negatives') else 'in-batch only'}.",
              f"Training: {json.dumps(card.get('hyperparameters'), sort_keys=True)}; seed {card.get('seed')}.", "",
              "Everything above as JSON:", "", "```json evalsuite-finetune",
              json.dumps(card, indent=1, sort_keys=True, allow_nan=False, default=str), "```", ""]
    return "\n".join(lines)


def write_card(folder: str | Path, card: dict[str, Any]) -> Path:
    """Write (or rewrite) the card into ``folder/README.md``, keeping sentence-transformers'
    YAML metadata header when there is one."""
    from evalsuite.io._text import atomic_write

    path = Path(folder) / CARD_FILE
    header = ""
    if path.is_file():
        text = path.read_text(encoding="utf-8")
        if text.startswith("---\n"):
            end = text.find("\n---\n", 4)
            if end > 0:
                header = text[: end + 5] + "\n"
    with atomic_write(path) as fh:
        fh.write(header + render_card(card))
    return path


def read_card(folder: str | Path) -> dict[str, Any]:
    """The JSON of a card written by :func:`write_card`."""
    path = Path(folder) / CARD_FILE
    if not path.is_file():
        raise DataError("no model card", path=path, hint="a folder written by 'evalsuite finetune' has one")
    match = _JSON.search(path.read_text(encoding="utf-8"))
    if match is None:
        raise DataError("the README.md holds no evalsuite fine-tune card", path=path)
    data: dict[str, Any] = json.loads(match.group(1))
    return data

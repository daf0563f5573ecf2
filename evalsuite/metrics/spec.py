"""Metric names: parsing into a canonical :class:`MetricSpec`.

One canonical string per metric is the key everywhere (results, reports, gates):
``ndcg@10``, ``ndcg(gain=exp)@10``, ``recall@100``, ``P@5``, ``map``, ``map@100``,
``mrr@10``, ``mrr``, ``rprec``, ``success@5``, ``judged@10``, ``recall(rel=2)@100``.

The parser also accepts the spellings of trec_eval (``ndcg_cut_10``, ``ndcg_cut.10``,
``P_5``, ``P.5,10``, ``recip_rank``, ``Rprec``, ``map_cut_100``, ``success_1``),
ir_measures (``nDCG@10``, ``R@100``, ``RR@10``, ``AP``, ``Judged@10``) and common
synonyms (``precision@5``, ``hit_rate@5``, ``hits@5``), case-insensitively.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from evalsuite.errors import ConfigError, UnknownNameError

__all__ = ["DEFAULT_METRICS", "CutoffRule", "MetricSpec", "ParamRule", "parse_metric", "parse_metrics"]

CutoffRule = Literal["required", "optional", "forbidden"]

# defined here, not in evaluate.py, so that the CLI can show it without importing numpy or pandas
DEFAULT_METRICS: tuple[str, ...] = ("ndcg@10", "recall@100", "map", "mrr@10", "P@10")


@dataclass(frozen=True)
class ParamRule:
    """An option a metric family accepts, e.g. ``gain`` in ``ndcg(gain=exp)``."""

    name: str
    kind: Literal["int", "choice"]
    choices: tuple[str, ...] = ()
    default: str | None = None

    def normalise(self, family: str, raw: str) -> str:
        if self.kind == "int":
            try:
                return str(int(raw))
            except ValueError:
                raise ConfigError(f"metric {family}: option {self.name}={raw!r} must be an integer") from None
        value = raw.lower()
        if value not in self.choices:
            raise ConfigError(f"metric {family}: option {self.name}={raw!r} must be one of {list(self.choices)}")
        return value


@dataclass(frozen=True)
class FamilyInfo:
    """What the parser needs to know about a metric family."""

    name: str
    display: str
    cutoff: CutoffRule
    params: tuple[ParamRule, ...]
    aliases: tuple[str, ...]
    kind: Literal["ranking", "correlation"] = "ranking"


@dataclass(frozen=True, order=True)
class MetricSpec:
    """A parsed metric: family, optional cutoff and options. ``str(spec)`` is canonical."""

    family: str
    cutoff: int | None = None
    params: tuple[tuple[str, str], ...] = ()

    def param(self, name: str, default: str | None = None) -> str | None:
        return dict(self.params).get(name, default)

    def __str__(self) -> str:
        info = family_info(self.family)
        text = info.display
        if self.params:
            text += "(" + ",".join(f"{k}={v}" for k, v in self.params) + ")"
        if self.cutoff is not None:
            text += f"@{self.cutoff}"
        return text


_FAMILIES: dict[str, FamilyInfo] = {}
_ALIASES: dict[str, str] = {}  # folded alias -> family


def register_family(info: FamilyInfo) -> None:
    """Make a metric family known to the parser (done by each metric module)."""
    _FAMILIES[info.name] = info
    for alias in (info.name, info.display, *info.aliases):
        folded = alias.lower()
        owner = _ALIASES.get(folded)
        if owner is not None and owner != info.name:
            raise ValueError(f"metric alias {alias!r} already belongs to {owner!r}")
        _ALIASES[folded] = info.name


def family_info(family: str) -> FamilyInfo:
    _load_builtin_families()
    return _FAMILIES[family]


def known_names() -> list[str]:
    """Every accepted family spelling (for help texts and "did you mean")."""
    _load_builtin_families()
    return sorted({a for f in _FAMILIES.values() for a in (f.display, *f.aliases)})


_PATTERN = re.compile(
    r"""^\s*
    (?P<name>[A-Za-z][A-Za-z_\-]*?)          # family name
    (?:\((?P<params>[^)]*)\))?               # (key=value,...)
    (?:(?:@|_|\.)(?P<cutoffs>\d+(?:,\d+)*))? # @10 | _10 | .10 | .5,10
    \s*$""",
    re.VERBOSE,
)


def parse_metrics(names: str | MetricSpec | Iterable[str | MetricSpec]) -> list[MetricSpec]:
    """Parse one or many metric names; ``P.5,10`` expands to ``P@5`` and ``P@10``.

    Duplicates (after canonicalisation) are dropped, keeping the first.
    """
    if isinstance(names, (str, MetricSpec)):
        names = [names]
    out: list[MetricSpec] = []
    for name in names:
        specs = [name] if isinstance(name, MetricSpec) else _parse_all(name)
        for spec in specs:
            if spec not in out:
                out.append(spec)
    return out


def parse_metric(name: str | MetricSpec) -> MetricSpec:
    """Parse a single metric name into its canonical :class:`MetricSpec`."""
    if isinstance(name, MetricSpec):
        return name
    specs = _parse_all(name)
    if len(specs) != 1:
        raise ConfigError(f"metric {name!r} names {len(specs)} metrics; give one cutoff")
    return specs[0]


def _load_builtin_families() -> None:
    """Import the modules that register the built-in families (ranking and correlation)."""
    import evalsuite.metrics.correlation
    import evalsuite.metrics.ranking  # noqa: F401


def _parse_all(raw: str) -> list[MetricSpec]:
    _load_builtin_families()
    match = _PATTERN.match(raw)
    if match is None:
        raise ConfigError(f"cannot parse metric name {raw!r}; expected e.g. 'ndcg@10', 'recall@100', 'map'")
    name = match["name"].rstrip("_-.")
    family = _resolve_family(name, raw.strip())
    info = _FAMILIES[family]
    params = _parse_params(info, match["params"])
    cutoffs: list[int | None] = (
        [int(c) for c in match["cutoffs"].split(",")] if match["cutoffs"] else [None]
    )
    for cutoff in cutoffs:
        if cutoff is None and info.cutoff == "required":
            raise ConfigError(f"metric {raw!r} needs a cutoff, e.g. '{info.display}@10'")
        if cutoff is not None and info.cutoff == "forbidden":
            raise ConfigError(f"metric {info.display} takes no cutoff (got {raw!r})")
        if cutoff is not None and cutoff < 1:
            raise ConfigError(f"metric {raw!r}: the cutoff must be >= 1")
    return [MetricSpec(family, cutoff, params) for cutoff in cutoffs]


def _resolve_family(name: str, raw: str) -> str:
    folded = name.lower()
    for candidate in (folded, folded.removesuffix("_cut"), folded.removesuffix("cut")):
        if candidate in _ALIASES:
            return _ALIASES[candidate]
    error = UnknownNameError("metric", name, known_names())
    if error.suggestions:  # suggest whole metric names: 'ndgc@10' -> 'ndcg@10'
        rest = raw[raw.lower().find(folded) + len(folded):] if folded in raw.lower() else ""
        error = UnknownNameError("metric", raw, [s + rest for s in error.suggestions])
    raise error


def _parse_params(info: FamilyInfo, text: str | None) -> tuple[tuple[str, str], ...]:
    if not text or not text.strip():
        return ()
    rules: Mapping[str, ParamRule] = {p.name: p for p in info.params}
    values: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep or not key or not value:
            raise ConfigError(f"metric {info.display}: options are written key=value, got {part.strip()!r}")
        if key not in rules:
            allowed = ", ".join(sorted(rules)) or "none"
            raise ConfigError(f"metric {info.display} has no option {key!r} (options: {allowed})")
        normalised = rules[key].normalise(info.display, value)
        if normalised != rules[key].default:
            values[key] = normalised
    return tuple(sorted(values.items()))

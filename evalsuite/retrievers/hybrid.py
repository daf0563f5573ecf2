"""Hybrid retrieval: fuse the runs of two or more retrievers (RRF or a convex combination).

>>> hybrid = HybridRetriever(["bm25", {"name": "dense", "model": "minilm"}])   # doctest: +SKIP
>>> hybrid.index(corpus); run = hybrid.search(queries, k=100)               # doctest: +SKIP

Every component searches ``depth`` documents per query (at least ``k``); the runs are
fused with :func:`~evalsuite.retrievers.fusion.rrf` or
:func:`~evalsuite.retrievers.fusion.convex` (see there for the formulas and the
conventions on missing documents) and cut to ``k``.

The weight of a convex combination is a tuned parameter: choose it with
:func:`weight_sweep` on a **dev** split, then report the fused system with that weight on
the **test** split. A weight picked on the test queries overstates the gain of fusion.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
from numpy.typing import NDArray

from evalsuite.errors import ConfigError
from evalsuite.metrics.evaluate import evaluate
from evalsuite.metrics.spec import parse_metric
from evalsuite.retrievers.base import Retriever, RetrieverMeta, check_k
from evalsuite.retrievers.fusion import (
    Normalization,
    check_normalization,
    check_rrf_k,
    check_weights,
    convex,
    rrf,
)
from evalsuite.types import Corpus, Qrels, Queries, Run

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DEFAULT_SWEEP", "FusionMethod", "HybridRetriever", "RetrieverSpec", "build_retriever", "weight_sweep"]

FusionMethod = Literal["rrf", "convex"]
METHODS: tuple[str, ...] = get_args(FusionMethod)

#: A retriever, its registered name (``"bm25"``), or a dict ``{"name": "dense", **params}``.
RetrieverSpec = Retriever | str | Mapping[str, Any]

#: Weights tried by :func:`weight_sweep`: 0.0, 0.1, ..., 1.0 (weight of the first system).
DEFAULT_SWEEP: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(11))

DEFAULT_RRF_K = 60.0


def build_retriever(spec: RetrieverSpec, *, field: str = "retriever") -> Retriever:
    """A retriever from a spec: an instance (used as is), a registered name, or a dict.

    A dict gives the registered name under ``"name"`` and the constructor parameters as
    the other keys: ``{"name": "dense", "model": "minilm"}``. Because most retrievers
    also take a ``name`` parameter (the name of their runs), a dict may instead give the
    registered name under ``"retriever"``, leaving ``"name"`` as a parameter:
    ``{"retriever": "dense", "name": "dense-minilm", "model": "minilm"}``.
    ``field`` names the argument in error messages.
    """
    from evalsuite.retrievers import get_retriever

    if isinstance(spec, str):
        return get_retriever(spec)
    if isinstance(spec, Mapping):
        params = dict(spec)
        key = "retriever" if "retriever" in params else "name"
        registered = params.pop(key, None)
        if not isinstance(registered, str):
            raise ConfigError(f"{field}: a retriever given as a dict needs its registered name under 'name' "
                              f"(e.g. {{'name': 'dense', 'model': 'minilm'}}); got keys {sorted(map(str, spec))}")
        return get_retriever(registered, **params)
    if isinstance(spec, Retriever):
        return spec
    raise ConfigError(f"{field}: expected a Retriever, a registered name such as 'bm25', or a dict "
                      f"{{'name': ..., **params}}; got {type(spec).__name__}")


class HybridRetriever:
    """Fusion of two or more retrievers.

    Parameters
    ----------
    retrievers:
        Two or more components: :class:`Retriever` instances, registered names (``"bm25"``)
        or dicts ``{"name": "dense", **params}`` (see :func:`build_retriever`).
    method:
        ``"rrf"`` (default): Reciprocal Rank Fusion, ``sum 1 / (rrf_k + rank)``; reads ranks
        only. ``"convex"``: ``sum w_i * normalised score_i``; reads score margins, needs
        weights tuned on a dev split (:func:`weight_sweep`).
    rrf_k:
        RRF rank constant (``None``: 60, Cormack et al. 2009). Only for ``method="rrf"``.
    weights:
        One non-negative weight per component, not all zero, rescaled to sum to 1
        (``None``: equal weights). Only for ``method="convex"``.
    normalization:
        ``"min-max"``, ``"z-score"`` or ``"none"`` (``None``: ``"min-max"``). Only for
        ``method="convex"``.
    depth:
        Documents each component retrieves per query before fusion; a search with a larger
        ``k`` uses ``k`` instead (the fused list cannot be longer than the union of the
        components' lists). Default 1000.
    name:
        Name of the produced runs.

    Giving an option that the chosen method does not use raises :class:`ConfigError`
    rather than being ignored.

    ``meta`` (kind ``"hybrid"``) lists every component's meta in ``components`` and has a
    label such as ``"RRF(k=60) of bm25 + dense"`` or ``"convex(min-max) of 0.3 bm25 + 0.7
    dense"``. ``stats`` holds ``depth`` (the depth searched), ``seconds_index``,
    ``seconds_fusion`` and, per component, its own stats and timings under ``<name>/``.
    """

    def __init__(
        self,
        retrievers: Sequence[RetrieverSpec],
        *,
        method: FusionMethod = "rrf",
        rrf_k: float | None = None,
        weights: Sequence[float] | None = None,
        normalization: Normalization | None = None,
        depth: int = 1000,
        name: str = "hybrid",
    ) -> None:
        if isinstance(retrievers, (str, Mapping)) or not isinstance(retrievers, Sequence):
            raise ConfigError("hybrid: retrievers must be a list of two or more retrievers, names or dicts, "
                              f"e.g. ['bm25', 'dense']; got {type(retrievers).__name__}")
        if len(retrievers) < 2:
            raise ConfigError(f"hybrid: fusion needs at least two retrievers, got {len(retrievers)}")
        if method not in METHODS:
            raise ConfigError(f"hybrid: method must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ConfigError(f"hybrid: depth must be a positive integer, got {depth!r}")
        if method == "rrf":
            unused = [n for n, v in (("weights", weights), ("normalization", normalization)) if v is not None]
            if unused:
                raise ConfigError(f"hybrid: {' and '.join(unused)} {'are' if len(unused) > 1 else 'is'} only used "
                                  "by method='convex'; drop it or set method='convex'")
            self.rrf_k: float | None = check_rrf_k(DEFAULT_RRF_K if rrf_k is None else rrf_k, "rrf_k")
            self.weights: NDArray[np.float64] | None = None
            self.normalization: Normalization | None = None
        else:
            if rrf_k is not None:
                raise ConfigError("hybrid: rrf_k is only used by method='rrf'; drop it or set method='rrf'")
            self.rrf_k = None
            self.normalization = check_normalization("min-max" if normalization is None else normalization)
            w = check_weights([1.0] * len(retrievers) if weights is None else weights, len(retrievers))
            self.weights = w / w.sum()
        self.method: FusionMethod = method
        self.depth = depth
        # built last, so that a bad option fails before any model is loaded
        self.components: tuple[Retriever, ...] = tuple(
            build_retriever(spec, field=f"hybrid: retrievers[{i}]") for i, spec in enumerate(retrievers)
        )
        self._name = name
        self._index_stats: dict[str, float] = {}
        self.stats: dict[str, float] = {}
        self.meta = self._make_meta()

    # -- description -----------------------------------------------------------------------

    def _component_names(self) -> list[str]:
        """Component names for labels and stats keys; repeated names get ``#2``, ``#3``..."""
        names = [c.meta.name for c in self.components]
        out = []
        for i, name in enumerate(names):
            repeats = names[:i].count(name)
            out.append(name if names.count(name) == 1 else f"{name}#{repeats + 1}")
        return out

    def _make_meta(self) -> RetrieverMeta:
        names = self._component_names()
        params: dict[str, Any] = {"method": self.method, "depth": self.depth}
        if self.method == "rrf":
            params["rrf_k"] = self.rrf_k
            label = f"RRF(k={self.rrf_k:g}) of {' + '.join(names)}"
        else:
            assert self.weights is not None
            params["weights"] = [float(w) for w in self.weights]
            params["normalization"] = self.normalization
            terms = " + ".join(f"{w:.3g} {n}" for w, n in zip(self.weights.tolist(), names))
            label = f"convex({self.normalization}) of {terms}"
        return RetrieverMeta(
            name=self._name,
            kind="hybrid",
            label=label,
            params=params,
            components=tuple(c.meta for c in self.components),
        )

    def __repr__(self) -> str:
        return f"HybridRetriever({self.meta.label!r})"

    # -- retrieval -------------------------------------------------------------------------

    def index(self, corpus: Corpus, *, components_indexed: bool = False) -> None:
        """Index the corpus with every component.

        A hybrid keeps no index of its own: :meth:`search` only calls its components'
        ``search``, so components indexed by the caller (e.g. a suite that also reports
        each component alone) need no call here. ``components_indexed=True`` says so
        explicitly: nothing is indexed again, only the components' stats are collected.
        """
        stats: dict[str, float] = {"seconds_index": 0.0}
        for name, component in zip(self._component_names(), self.components):
            start = time.perf_counter()
            if not components_indexed:
                component.index(corpus)
            seconds = time.perf_counter() - start
            stats["seconds_index"] += seconds
            stats[f"{name}/seconds_index"] = seconds
            stats.update({f"{name}/{key}": value for key, value in component.stats.items()})
        self._index_stats = stats
        self.stats = dict(stats)
        self.meta = self._make_meta()  # components may complete their meta when indexing

    def search(self, queries: Queries, *, k: int = 100) -> Run:
        """Search every component ``max(depth, k)`` deep, fuse, keep the best ``k`` per query."""
        k = check_k(k)
        depth = max(self.depth, k)
        runs: list[Run] = []
        stats: dict[str, float] = {"depth": float(depth)}
        for name, component in zip(self._component_names(), self.components):
            start = time.perf_counter()
            runs.append(component.search(queries, k=depth))
            stats[f"{name}/seconds_search"] = time.perf_counter() - start
            stats.update({f"{name}/{key}": value for key, value in component.stats.items()})
        start = time.perf_counter()
        if self.method == "rrf":
            assert self.rrf_k is not None
            fused = rrf(runs, k=self.rrf_k, depth=depth, name=self._name)
        else:
            assert self.weights is not None and self.normalization is not None
            fused = convex(runs, self.weights, normalization=self.normalization, depth=depth, name=self._name)
        result = fused.top_k(k)
        stats["seconds_fusion"] = time.perf_counter() - start
        self.stats = {**self._index_stats, **stats}
        self.meta = self._make_meta()
        return result


def weight_sweep(
    components: Sequence[Run | RetrieverSpec],
    qrels: Qrels | Mapping[str, Mapping[str, int]],
    *,
    metric: str = "ndcg@10",
    weights: Sequence[float] | NDArray[np.floating] = DEFAULT_SWEEP,
    normalization: Normalization = "min-max",
    queries: Queries | None = None,
    corpus: Corpus | None = None,
    depth: int = 1000,
) -> pd.DataFrame:
    r"""``metric`` of the convex combination of two systems at each weight.

    At weight :math:`w` the fused score is :math:`w\,\tilde s_1 + (1 - w)\,\tilde s_2`
    (:func:`~evalsuite.retrievers.fusion.convex`, per-query ``normalization``), so ``w = 1``
    ranks by the first system and ``w = 0`` by the second (documents only the other system
    retrieved follow at the tail). Each system's list is cut to ``depth`` first.

    **Protocol**: run the sweep on a *dev* split (its queries and qrels), take the best
    weight, and report the fused system with that weight on the *test* split:

    >>> frame = weight_sweep([bm25_dev_run, dense_dev_run], dev_qrels)       # doctest: +SKIP
    >>> w = frame.loc[frame["best"], "weight"].iloc[0]                        # doctest: +SKIP
    >>> test_run = convex([bm25_test_run, dense_test_run], [w, 1 - w])        # doctest: +SKIP

    Args:
        components: exactly two systems, each a :class:`Run` or a retriever spec (an
            instance, a registered name or a dict, see :func:`build_retriever`). Retrievers
            search ``queries`` ``depth`` deep; with ``corpus`` they index it first, otherwise
            they must already be indexed.
        qrels: the judgements that score each weight (queries outside them are ignored).
        metric: the metric to compare (any accepted spelling; canonical name in the output).
        weights: the weights of the first system to try, each in ``[0, 1]``
            (default ``0.0, 0.1, ..., 1.0``).
        normalization: ``"min-max"`` (default), ``"z-score"`` or ``"none"``.
        queries, corpus, depth: see ``components``.

    Returns:
        A DataFrame, one row per weight in the given order: ``weight`` (of the first
        system; the second gets ``1 - weight``), the metric (column named by its canonical
        name, e.g. ``ndcg@10``), ``queries`` (how many were averaged) and ``best`` (True on
        every row that reaches the maximum; ties are all marked). ``frame.attrs`` records
        ``first``, ``second`` (the systems' names), ``metric`` and ``normalization``.
    """
    if isinstance(components, (str, Mapping, Run)) or not isinstance(components, Sequence) \
            or len(components) != 2:
        raise ConfigError("weight_sweep: components must be a list of exactly two runs or retrievers, "
                          f"got {components!r:.200}")
    method = check_normalization(normalization)
    spec = parse_metric(metric)
    grid = _check_sweep_weights(weights)
    runs = [_component_run(c, i, queries, corpus, depth) for i, c in enumerate(components)]
    qrels_obj = qrels if isinstance(qrels, Qrels) else Qrels.from_dict(qrels)

    import pandas as pd

    rows = []
    for w in grid.tolist():
        fused = convex(runs, [w, 1.0 - w], normalization=method, depth=depth, name=f"convex@{w:g}")
        result = evaluate(qrels_obj, fused, [spec])
        rows.append({"weight": w, str(spec): result.aggregate[str(spec)], "queries": result.n_queries[str(spec)]})
    frame = pd.DataFrame(rows, columns=["weight", str(spec), "queries"])
    values = frame[str(spec)]
    frame["best"] = values == values.max() if values.notna().any() else False
    frame.attrs.update({"first": runs[0].name, "second": runs[1].name, "metric": str(spec),
                        "normalization": method})
    return frame


def _check_sweep_weights(weights: Sequence[float] | NDArray[np.floating]) -> NDArray[np.float64]:
    try:
        grid = np.array(weights, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"weight_sweep: weights must be a list of numbers in [0, 1], got {weights!r}") from None
    if grid.ndim != 1 or len(grid) == 0:
        raise ConfigError(f"weight_sweep: weights must be a non-empty list of numbers in [0, 1], got {weights!r}")
    if not (np.isfinite(grid).all() and (grid >= 0).all() and (grid <= 1).all()):
        raise ConfigError(f"weight_sweep: every weight must be in [0, 1] (the first system's share), "
                          f"got {grid.tolist()}")
    return grid


def _component_run(component: Run | RetrieverSpec, i: int, queries: Queries | None, corpus: Corpus | None,
                   depth: int) -> Run:
    if isinstance(component, Run):
        return component
    retriever = build_retriever(component, field=f"weight_sweep: components[{i}]")
    if queries is None:
        raise ConfigError(f"weight_sweep: components[{i}] is a retriever; pass queries= (the dev split's "
                          "queries) so that it can search, or pass its run instead")
    if corpus is not None:
        retriever.index(corpus)
    return retriever.search(queries, k=check_k(depth))

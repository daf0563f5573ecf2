"""The data model: Corpus, Queries, Qrels, Run and TaskData.

All four collections are immutable from the caller's point of view: constructors copy
their input, the numpy arrays they expose are read-only, and "changing" methods
(:meth:`Run.top_k`, :meth:`Run.with_name`) return new objects.

Storage is columnar. A :class:`Run` holds one row per (query, document) pair, grouped
by query: ``query_ids`` (one per query), ``offsets`` (rows of query ``i`` are
``offsets[i]:offsets[i+1]``), ``doc_ids`` and ``scores``. Rows keep the order in which
they were given; the ranking order is defined once, lazily, as **score descending, then
doc id descending** (the trec_eval convention), see :meth:`Run.ranking`. Like trec_eval,
which stores scores as C ``float``, the ranking compares scores at 32-bit precision:
scores that differ only beyond float32 precision tie. Scores themselves are kept as
given (float64).
Dict conversion (``from_dict`` / ``to_dict``) is supported for convenience.

Identifiers are strings. Integer ids in dict input are converted with ``str()``; any
other id type is an error, because a silent mismatch between ``1`` and ``"1"`` would
make relevant documents look unjudged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from evalsuite._ids import (
    arrow_codes,
    arrow_codes_within,
    arrow_strings,
    group_codes,
    is_arrow,
    object_codes,
    take_arrow,
    take_strings,
)
from evalsuite._segments import (
    argsort_within,
    first_segment_with_repeat,
    offsets_from_counts,
    segment_ids,
    sort_within,
)
from evalsuite.errors import DataError

if TYPE_CHECKING:  # pandas is imported where a function needs it: `import evalsuite.types` stays light
    import pandas as pd

__all__ = ["Corpus", "Document", "Qrels", "Queries", "Run", "TaskData"]

ObjArray = NDArray[np.object_]
IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


def _frozen(array: NDArray[Any]) -> NDArray[Any]:
    array.flags.writeable = False
    return array


def _object_array(values: Iterable[Any], count: int | None = None) -> ObjArray:
    if isinstance(values, np.ndarray) and values.dtype == object:
        return values.copy()
    if count is not None:
        return np.fromiter(values, dtype=object, count=count)
    out = np.empty(len(values) if isinstance(values, Sequence) else 0, dtype=object)
    if isinstance(values, Sequence):
        out[:] = values
        return out
    return np.array(list(values), dtype=object)


def _check_ids(ids: ObjArray, what: str) -> ObjArray:
    """Return ``ids`` with int ids turned into str; raise on any other non-str id."""
    if len(ids) < 50_000:  # pure Python is as fast here, and spares importing pandas
        if all(type(x) is str for x in ids.tolist()):
            return ids
    else:
        from pandas.api.types import infer_dtype

        if infer_dtype(ids, skipna=False) in ("string", "empty"):
            return ids
    kinds = set(map(type, ids.tolist()))
    if kinds <= {str}:
        return ids
    bad = kinds - {str, int, np.int64, np.int32}
    if bad:
        example = next(x for x in ids.tolist() if type(x) in bad)
        raise DataError(
            f"{what} must be strings, got {type(example).__name__} {example!r}",
            hint="convert ids with str() before building the collection",
        )
    return np.array([str(x) for x in ids.tolist()], dtype=object)


def _query_codes(query_ids: Any, check: bool) -> tuple[NDArray[np.integer], ObjArray]:
    """Row-wise query ids as ``(codes, uniques)``: from a pyarrow array (dictionary-encoded or
    not), a ``pandas.Categorical``, or any sequence of ids (``check``: ints become str)."""
    if is_arrow(query_ids):
        codes, dictionary = arrow_codes(query_ids, "query ids")
        return codes, arrow_strings(dictionary)
    if type(query_ids).__name__ == "Categorical" and type(query_ids).__module__.startswith("pandas"):
        codes = np.asarray(query_ids.codes)
        if len(codes) and int(codes.min()) < 0:
            raise DataError("query ids must be strings, got a missing value")
        return codes, _check_ids(np.asarray(query_ids.categories, dtype=object), "query ids")
    q = _object_array(query_ids)
    if check:
        q = _check_ids(q, "query ids")
    codes64, uniques = object_codes(q)
    if len(codes64) and int(codes64.min()) < 0:  # factorize codes None/NaN as -1
        raise DataError("query ids must be strings, got a missing value")
    return codes64, _check_ids(uniques, "query ids") if check else uniques


def _group_rows(query_ids: Any, check: bool) -> tuple[ObjArray, IntArray, IntArray | None]:
    """Group row-wise query ids: (unique ids in first-seen order, offsets, permutation or None)."""
    codes, uniques = _query_codes(query_ids, check)
    order, offsets, perm = group_codes(codes, len(uniques))
    return uniques[order], offsets, perm


def _find_duplicate(offsets: IntArray, codes: NDArray[np.integer]) -> tuple[int, int] | None:
    """Positions (first, second) of the first repeated code (doc) inside one segment (query), or None.

    Vectorised: every segment is sorted once (see :func:`first_segment_with_repeat`); only
    the segment holding the first repeat is then walked to name its two positions.
    """
    seg = first_segment_with_repeat(codes, offsets)
    if seg is None:
        return None
    start, end = int(offsets[seg]), int(offsets[seg + 1])
    seen: dict[int, int] = {}
    for pos, code in enumerate(np.asarray(codes[start:end]).tolist(), start):
        first = seen.setdefault(code, pos)
        if first != pos:
            return first, pos
    raise AssertionError("unreachable: a repeat was found in this segment")  # pragma: no cover


def _doc_codes(doc_ids: ObjArray) -> IntArray:
    return object_codes(doc_ids)[0]


class DuplicateError(DataError):
    """A (query, doc) pair given twice; ``rows`` are the two input positions."""

    def __init__(self, message: str, rows: tuple[int, int], **kwargs: Any) -> None:
        self.rows = rows
        super().__init__(message, **kwargs)


def _float_scores(values: Iterable[Any], count: int, what: str) -> FloatArray:
    try:
        return np.fromiter(values, dtype=np.float64, count=count)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what}: every score must be a number ({exc})") from None


class _Collection:
    """Shared plumbing of Run and Qrels: query ids, offsets, doc ids per row."""

    __slots__ = ("_cache", "_doc_ids", "_offsets", "_query_ids")

    _query_ids: ObjArray
    _offsets: IntArray
    _doc_ids: ObjArray
    _cache: dict[str, Any]

    @property
    def query_ids(self) -> ObjArray:
        """Query ids, one per query, in first-seen order (read-only)."""
        return self._query_ids

    @property
    def offsets(self) -> IntArray:
        """Row boundaries: rows of query ``i`` are ``offsets[i]:offsets[i + 1]`` (read-only)."""
        return self._offsets

    @property
    def doc_ids(self) -> ObjArray:
        """Doc id of every row, grouped by query, in input order (read-only)."""
        return self._doc_ids

    @property
    def n_rows(self) -> int:
        """Number of (query, doc) rows."""
        return int(self._offsets[-1])

    def __len__(self) -> int:
        return len(self._query_ids)

    def __iter__(self) -> Iterator[str]:
        return iter(self._query_ids.tolist())

    def __contains__(self, query_id: object) -> bool:
        return query_id in self._index()

    def _index(self) -> dict[str, int]:
        index = self._cache.get("index")
        if index is None:
            index = {q: i for i, q in enumerate(self._query_ids.tolist())}
            self._cache["index"] = index
        return index

    def _slice(self, query_id: str) -> slice:
        try:
            i = self._index()[query_id]
        except KeyError:
            raise KeyError(query_id) from None
        return slice(int(self._offsets[i]), int(self._offsets[i + 1]))

    def row_query_ids(self) -> ObjArray:
        """The query id of every row (length ``n_rows``)."""
        return np.repeat(self._query_ids, np.diff(self._offsets))


class Run(_Collection):
    """Ranked retrieval results: query id -> doc id -> score, as returned by a retriever.

    Build one with ``Run({"q1": {"d1": 2.3, ...}})``, :meth:`from_dict`,
    :meth:`from_arrays`, :meth:`from_frame`, or the readers in :mod:`evalsuite.io`.
    A doc id may appear at most once per query (as in trec_eval); scores must be numbers
    (``inf`` allowed, ``NaN`` not).
    """

    __slots__ = ("_doc_codes", "_doc_dictionary", "_name", "_scores")

    _name: str
    _scores: FloatArray
    _doc_ids: ObjArray | None  # type: ignore[assignment]  # None until asked for, when _doc_codes is set
    _doc_codes: NDArray[np.integer] | None
    _doc_dictionary: Any  # pyarrow string array of the distinct doc ids, with _doc_codes

    def __init__(self, results: Mapping[str, Mapping[str, float]], *, name: str = "run") -> None:
        other = Run.from_dict(results, name=name)
        self._name = other._name
        self._query_ids, self._offsets = other._query_ids, other._offsets
        self._doc_ids, self._scores, self._cache = other._doc_ids, other._scores, other._cache
        self._doc_codes, self._doc_dictionary = None, None

    @classmethod
    def _make(
        cls,
        query_ids: ObjArray,
        offsets: IntArray,
        doc_ids: ObjArray | None,
        scores: FloatArray,
        *,
        name: str,
        cache: dict[str, Any] | None = None,
        doc_codes: NDArray[np.integer] | None = None,
        doc_dictionary: Any = None,
    ) -> Run:
        """A run from grouped columns. Doc ids are an object array, or (``doc_ids=None``)
        codes into a pyarrow dictionary, turned into Python strings only when asked for."""
        run = cls.__new__(cls)
        run._name = name
        run._query_ids = _frozen(query_ids)
        run._offsets = _frozen(offsets)
        run._doc_ids = None if doc_ids is None else _frozen(doc_ids)
        run._doc_codes = None if doc_codes is None else _frozen(doc_codes)
        run._doc_dictionary = doc_dictionary
        run._scores = _frozen(scores)
        run._cache = {} if cache is None else cache
        return run

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_dict(cls, results: Mapping[str, Mapping[str, float]], *, name: str = "run") -> Run:
        """Build from ``{query_id: {doc_id: score}}``. The input is copied, never kept."""
        if not isinstance(results, Mapping):
            raise DataError(f"a run must be a mapping query id -> {{doc id: score}}, got {type(results).__name__}")
        raw_query_ids = _object_array(list(results.keys()))
        query_ids = _check_ids(raw_query_ids, "query ids")
        query_ids_given = query_ids is raw_query_ids
        inner = list(results.values())
        for qid, docs in zip(query_ids.tolist(), inner):
            if not isinstance(docs, Mapping):
                raise DataError(
                    f"run query {qid!r}: expected a mapping doc id -> score, got {type(docs).__name__}"
                )
        counts = np.fromiter(map(len, inner), dtype=np.int64, count=len(inner))
        n = int(counts.sum())
        doc_ids = np.fromiter(chain.from_iterable(inner), dtype=object, count=n)
        checked = _check_ids(doc_ids, "doc ids")
        scores = _float_scores(chain.from_iterable(d.values() for d in inner), n, "run")
        offsets = offsets_from_counts(counts)
        cache: dict[str, Any] = {"ids_as_given": checked is doc_ids and query_ids_given}
        if checked is not doc_ids:
            doc_ids = checked
            if (dup := _find_duplicate(offsets, _doc_codes(doc_ids))) is not None:
                query = query_ids[np.searchsorted(offsets, dup[1], "right") - 1]
                raise DataError(f"run query {query!r}: doc id {doc_ids[dup[1]]!r} appears twice after "
                                "converting ids to str")
        run = cls._make(query_ids, offsets, doc_ids, scores, name=name, cache=cache)
        run._check_scores()
        return run

    @classmethod
    def from_arrays(
        cls,
        query_ids: Sequence[str] | ObjArray | pd.Categorical | Any,
        doc_ids: Sequence[str] | ObjArray | Any,
        scores: Sequence[float] | FloatArray,
        *,
        name: str = "run",
        check_ids: bool = True,
        copy_scores: bool = True,
    ) -> Run:
        """Build from three equally long row-wise columns.

        Rows of one query need not be contiguous (they are grouped, keeping their order).
        A doc repeated within a query raises :class:`DuplicateError` naming both rows.
        ``check_ids=False`` skips the per-row id type check, for callers (the file readers)
        that already guarantee string ids; ``copy_scores=False`` keeps a float64 score array
        as given instead of copying it, for callers that hand over an array nobody else holds
        (the file readers: 80 MB less to allocate for a 10M-line run).

        The id columns may also be pyarrow string arrays (the Arrow file reader passes
        them): doc ids then stay in Arrow memory as dictionary codes, and Python strings
        are built only for the rows someone asks for (:attr:`doc_ids`, :meth:`doc_ids_at`).
        """
        uniques, offsets, perm = _group_rows(query_ids, check_ids)
        doc_codes: NDArray[np.integer] | None = None
        dictionary = None
        d: ObjArray | None = None
        arrow_docs = is_arrow(doc_ids)
        if arrow_docs:
            n_docs = len(doc_ids)
        else:
            d = _object_array(doc_ids)
            if check_ids:
                d = _check_ids(d, "doc ids")
            n_docs = len(d)
        try:
            s = np.array(scores, dtype=np.float64) if copy_scores else np.asarray(scores, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(f"run: every score must be a number ({exc})") from None
        n_query_rows = int(offsets[-1])
        if not (n_query_rows == n_docs == len(s)):
            raise DataError(f"run columns differ in length: {n_query_rows} query ids, {n_docs} doc ids, "
                            f"{len(s)} scores")
        if perm is not None:
            s = s[perm]
            if arrow_docs:
                doc_ids = take_arrow(doc_ids, perm)
            else:
                d = d[perm]  # type: ignore[index]
        if arrow_docs:
            doc_codes, dictionary = arrow_codes_within(doc_ids, offsets, "doc ids")
        codes = doc_codes if doc_codes is not None else _doc_codes(d)  # type: ignore[arg-type]
        if (dup := _find_duplicate(offsets, codes)) is not None:
            first, second = (int(perm[r]) if perm is not None else r for r in dup)
            doc = d[dup[1]] if d is not None else take_strings(dictionary, codes[dup[1]:dup[1] + 1])[0]
            raise DuplicateError(
                f"doc {doc!r} appears twice for query {uniques[np.searchsorted(offsets, dup[1], 'right') - 1]!r} "
                f"(rows {first + 1} and {second + 1})",
                rows=(first, second),
                hint="trec_eval rejects duplicate documents in a ranking; keep one score per doc",
            )
        run = cls._make(uniques, offsets, d, s, name=name, doc_codes=doc_codes, doc_dictionary=dictionary)
        run._check_scores(perm, name_row=True)
        return run

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        query_col: str = "query_id",
        doc_col: str = "doc_id",
        score_col: str = "score",
        name: str = "run",
    ) -> Run:
        """Build from a DataFrame with one row per (query, doc) and a score column."""
        missing = [c for c in (query_col, doc_col, score_col) if c not in frame.columns]
        if missing:
            raise DataError(f"run DataFrame lacks column(s) {missing}; it has {list(frame.columns)}")
        return cls.from_arrays(
            frame[query_col].to_numpy(dtype=object),
            frame[doc_col].to_numpy(dtype=object),
            frame[score_col].to_numpy(),
            name=name,
        )

    @classmethod
    def from_topk(
        cls,
        query_ids: Sequence[str] | ObjArray,
        doc_ids: Sequence[str] | ObjArray,
        indices: NDArray[np.integer],
        scores: NDArray[np.floating],
        *,
        name: str = "run",
    ) -> Run:
        """Build from search results: row ``i`` of ``indices``/``scores`` (queries x k) holds the
        positions in ``doc_ids`` and the scores of query ``i``'s hits. Negative indices mark
        empty slots (as FAISS returns when fewer than k hits exist) and are dropped.
        """
        q = _check_ids(_object_array(query_ids), "query ids")
        docs = _check_ids(_object_array(doc_ids), "doc ids")
        idx = np.asarray(indices)
        val = np.asarray(scores, dtype=np.float64)
        if idx.ndim != 2 or idx.shape != val.shape or idx.shape[0] != len(q):
            raise DataError(f"from_topk: indices {idx.shape} and scores {val.shape} must both be "
                            f"(queries={len(q)}, k)")
        valid = idx >= 0
        counts = valid.sum(axis=1).astype(np.int64)
        flat_idx = idx[valid]
        if len(flat_idx) and int(flat_idx.max()) >= len(docs):
            raise DataError(f"from_topk: index {int(flat_idx.max())} is out of range for {len(docs)} docs")
        if len(np.unique(q)) != len(q):
            raise DataError("from_topk: query ids must be unique")
        offsets = offsets_from_counts(counts)
        if (dup := _find_duplicate(offsets, flat_idx)) is not None:
            raise DataError(f"from_topk: doc {docs[flat_idx[dup[1]]]!r} appears twice in one query's results")
        run = cls._make(q, offsets, docs[flat_idx], val[valid], name=name)
        run._check_scores()
        return run

    def _check_scores(self, original_rows: IntArray | None = None, *, name_row: bool = False) -> None:
        """Refuse NaN scores. With ``name_row`` the message names the input row (``original_rows``
        maps rows back to input rows when they were regrouped)."""
        nan = np.isnan(self._scores)
        if nan.any():
            row = int(np.flatnonzero(nan)[0])
            q = self.row_query_ids()[row]
            where = ""
            if name_row:
                where = f" (row {int(original_rows[row]) + 1 if original_rows is not None else row + 1})"
            doc = self.doc_ids_at(np.array([row]))[0]
            raise DataError(f"run query {q!r}, doc {doc!r}: score is missing or NaN{where}")

    # -- access -------------------------------------------------------------------------

    @property
    def doc_ids(self) -> ObjArray:
        """Doc id of every row, grouped by query, in input order (read-only)."""
        if self._doc_ids is None:
            self._doc_ids = _frozen(self._dictionary_strings()[self._doc_codes])
        return self._doc_ids

    def doc_ids_at(self, rows: NDArray[np.integer]) -> ObjArray:
        """``doc_ids[rows]``, without building the whole column when it is not built yet."""
        if self._doc_ids is not None:
            return self._doc_ids[rows]
        codes = self._doc_codes[rows]  # type: ignore[index]
        if "dictionary_strings" in self._cache or len(codes) * 8 > len(self._doc_dictionary):
            return self._dictionary_strings()[codes]
        return take_strings(self._doc_dictionary, codes)

    def doc_codes(self) -> tuple[NDArray[np.integer], Any] | None:
        """``(codes, dictionary)`` when the doc ids are held as codes into a pyarrow string
        array (runs read by the Arrow engine), else None. For joins that should not build
        one Python string per row."""
        if self._doc_codes is None:
            return None
        return self._doc_codes, self._doc_dictionary

    def _dictionary_strings(self) -> ObjArray:
        strings = self._cache.get("dictionary_strings")
        if strings is None:
            strings = arrow_strings(self._doc_dictionary)
            self._cache["dictionary_strings"] = strings
        return strings

    @property
    def name(self) -> str:
        """The run's name (used as the run tag when written as a TREC file)."""
        return self._name

    @property
    def scores(self) -> FloatArray:
        """Score of every row, aligned with :attr:`doc_ids` (read-only)."""
        return self._scores

    def with_name(self, name: str) -> Run:
        """The same results under another name (arrays are shared, not copied)."""
        return Run._make(self._query_ids, self._offsets, self._doc_ids, self._scores, name=name, cache=self._cache,
                         doc_codes=self._doc_codes, doc_dictionary=self._doc_dictionary)

    def rank_keys(self) -> NDArray[np.float32]:
        """``-score`` as float32 per row: ascending key order is the ranking (see module doc)."""
        keys = self._cache.get("rank_keys")
        if keys is None:
            keys = _frozen(rank_keys(self._scores))
            self._cache["rank_keys"] = keys
        return keys

    def ranking_order(self) -> IntArray:
        """Row permutation that sorts every query by score desc, then doc id desc (trec_eval)."""
        order = self._cache.get("order")
        if order is None:
            keys = self.rank_keys()
            order = argsort_within(keys, self._offsets)
            sorted_scores = keys[order]
            seg = segment_ids(self._offsets)
            tied = (sorted_scores[1:] == sorted_scores[:-1]) & (seg[1:] == seg[:-1])
            if tied.any():
                order = _break_ties_by_doc(order, tied, seg, self.doc_ids_at)
            self._cache["order"] = _frozen(order)
        return order

    def sorted_rank_keys(self) -> NDArray[np.float32]:
        """:meth:`rank_keys` sorted ascending within every query (same offsets); cached."""
        values = self._cache.get("sorted_keys")
        if values is None:
            values = _frozen(sort_within(self.rank_keys(), self._offsets))
            self._cache["sorted_keys"] = values
        return values

    def ranking(self, query_id: str) -> list[tuple[str, float]]:
        """``[(doc_id, score), ...]`` of one query in rank order."""
        rows = self.ranking_order()[self._slice(query_id)]
        return list(zip(self.doc_ids_at(rows).tolist(), self._scores[rows].tolist()))

    def ids_as_given(self) -> bool:
        """True when built by :meth:`from_dict` without converting any id to str."""
        return bool(self._cache.get("ids_as_given"))

    def top_k(self, k: int) -> Run:
        """A new run keeping the ``k`` best-ranked documents of every query."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        order = self.ranking_order()
        seg = segment_ids(self._offsets)
        rank = np.arange(len(order)) - self._offsets[seg]
        keep = order[rank < k]
        counts = np.minimum(np.diff(self._offsets), k)
        if self._doc_ids is None:  # keep the codes: top_k of a big file run builds no strings
            return Run._make(self._query_ids, offsets_from_counts(counts), None, self._scores[keep], name=self._name,
                             doc_codes=self._doc_codes[keep], doc_dictionary=self._doc_dictionary)  # type: ignore[index]
        return Run._make(
            self._query_ids, offsets_from_counts(counts), self._doc_ids[keep], self._scores[keep], name=self._name
        )

    # -- conversion ---------------------------------------------------------------------

    def to_dict(self) -> dict[str, dict[str, float]]:
        """``{query_id: {doc_id: score}}`` with docs in rank order."""
        order = self.ranking_order()
        docs, scores = self.doc_ids[order].tolist(), self._scores[order].tolist()
        bounds = zip(self._offsets[:-1].tolist(), self._offsets[1:].tolist())
        return {q: dict(zip(docs[s:e], scores[s:e])) for q, (s, e) in zip(self._query_ids.tolist(), bounds)}

    def to_frame(self) -> pd.DataFrame:
        """Columns ``query_id, doc_id, score, rank`` (rank from 1), rows in rank order."""
        import pandas as pd

        order = self.ranking_order()
        seg = segment_ids(self._offsets)
        return pd.DataFrame(
            {
                "query_id": pd.Series(self._query_ids[seg], dtype=object, copy=False),
                "doc_id": pd.Series(self.doc_ids[order], dtype=object, copy=False),
                "score": self._scores[order],
                "rank": np.arange(len(order), dtype=np.int64) - self._offsets[seg] + 1,
            }
        )

    def __repr__(self) -> str:
        return f"Run(name={self._name!r}, queries={len(self)}, rows={self.n_rows})"


def rank_keys(scores: FloatArray) -> NDArray[np.float32]:
    """Sort keys of scores: ``-float32(score)``, so ascending key = descending score (trec_eval)."""
    with np.errstate(over="ignore"):  # beyond float32 range becomes +-inf, as in trec_eval
        return np.negative(scores.astype(np.float32))


def _break_ties_by_doc(order: IntArray, tied: NDArray[np.bool_], seg: IntArray,
                       doc_ids_at: Callable[[IntArray], ObjArray]) -> IntArray:
    """Reorder runs of equal scores (within one query) by doc id descending."""
    order = order.copy()
    in_tie = np.zeros(len(order), dtype=bool)
    in_tie[1:] |= tied
    in_tie[:-1] |= tied
    positions = np.flatnonzero(in_tie)
    # a new group starts at each tie position not tied to its predecessor
    starts = np.ones(len(positions), dtype=bool)
    inner = positions[1:]
    starts[1:] = ~tied[inner - 1] | (inner - 1 != positions[:-1])
    group = np.cumsum(starts)
    rows = order[positions]
    _, doc_rank = np.unique(doc_ids_at(rows), return_inverse=True)
    sub = np.lexsort((-doc_rank.astype(np.int64), group))
    order[positions] = rows[sub]
    return order


class Qrels(_Collection):
    """Graded relevance judgements: query id -> doc id -> integer grade.

    Grades follow trec_eval: any integer; grades >= the relevance level (default 1)
    count as relevant for binary metrics; nDCG uses ``max(grade, 0)`` as gain.
    Queries whose judgements are all below the level have no relevant document and
    are excluded from metric means (and reported).
    """

    __slots__ = ("_grades",)

    _grades: IntArray

    def __init__(self, judgements: Mapping[str, Mapping[str, int]]) -> None:
        other = Qrels.from_dict(judgements)
        self._query_ids, self._offsets = other._query_ids, other._offsets
        self._doc_ids, self._grades, self._cache = other._doc_ids, other._grades, other._cache

    @classmethod
    def _make(
        cls, query_ids: ObjArray, offsets: IntArray, doc_ids: ObjArray, grades: IntArray,
        cache: dict[str, Any] | None = None,
    ) -> Qrels:
        qrels = cls.__new__(cls)
        qrels._query_ids = _frozen(query_ids)
        qrels._offsets = _frozen(offsets)
        qrels._doc_ids = _frozen(doc_ids)
        qrels._grades = _frozen(grades)
        qrels._cache = {} if cache is None else cache
        return qrels

    @classmethod
    def from_dict(cls, judgements: Mapping[str, Mapping[str, int]]) -> Qrels:
        """Build from ``{query_id: {doc_id: grade}}`` (grades are integers)."""
        if not isinstance(judgements, Mapping):
            raise DataError(f"qrels must be a mapping query id -> {{doc id: grade}}, got {type(judgements).__name__}")
        query_ids = _check_ids(_object_array(list(judgements.keys())), "query ids")
        inner = list(judgements.values())
        for qid, docs in zip(query_ids.tolist(), inner):
            if not isinstance(docs, Mapping):
                raise DataError(f"qrels query {qid!r}: expected a mapping doc id -> grade, got {type(docs).__name__}")
        counts = np.fromiter(map(len, inner), dtype=np.int64, count=len(inner))
        n = int(counts.sum())
        doc_ids = np.fromiter(chain.from_iterable(inner), dtype=object, count=n)
        checked = _check_ids(doc_ids, "doc ids")
        offsets = offsets_from_counts(counts)
        raw = list(chain.from_iterable(d.values() for d in inner))
        grades = _int_grades(raw, lambda i: f"qrels query {query_ids[np.searchsorted(offsets, i, 'right') - 1]!r}, "
                             f"doc {doc_ids[i]!r}")
        cache: dict[str, Any] = {}
        if checked is doc_ids:
            cache["grade_maps"] = {q: dict(zip(d.keys(), grades[s:e].tolist()))
                                   for q, d, s, e in zip(query_ids.tolist(), inner,
                                                         offsets[:-1].tolist(), offsets[1:].tolist())}
        elif (dup := _find_duplicate(offsets, _doc_codes(checked))) is not None:
            raise DataError(f"qrels: doc id {checked[dup[1]]!r} appears twice in one query after converting ids to str")
        return cls._make(query_ids, offsets, checked, grades, cache)

    @classmethod
    def from_arrays(
        cls,
        query_ids: Sequence[str] | ObjArray | pd.Categorical | Any,
        doc_ids: Sequence[str] | ObjArray | Any,
        grades: Sequence[int] | IntArray,
        *,
        check_ids: bool = True,
    ) -> Qrels:
        """Build from row-wise columns; a (query, doc) pair given twice raises :class:`DuplicateError`.

        The id columns may be pyarrow string arrays, as for :meth:`Run.from_arrays`."""
        uniques, offsets, perm = _group_rows(query_ids, check_ids)
        codes: NDArray[np.integer] | None = None
        if is_arrow(doc_ids):
            codes, dictionary = arrow_codes(doc_ids, "doc ids")
            d = arrow_strings(dictionary)[codes]
        else:
            d = _object_array(doc_ids)
            if check_ids:
                d = _check_ids(d, "doc ids")
        g = _int_grades(list(grades) if not isinstance(grades, np.ndarray) else grades,
                        lambda i: f"qrels row {i + 1}")
        n_query_rows = int(offsets[-1])
        if not (n_query_rows == len(d) == len(g)):
            raise DataError(f"qrels columns differ in length: {n_query_rows} query ids, {len(d)} doc ids, "
                            f"{len(g)} grades")
        if perm is not None:
            d, g = d[perm], g[perm]
            codes = None if codes is None else codes[perm]
        if (dup := _find_duplicate(offsets, codes if codes is not None else _doc_codes(d))) is not None:
            first, second = (int(perm[r]) if perm is not None else r for r in dup)
            query = uniques[np.searchsorted(offsets, dup[1], "right") - 1]
            raise DuplicateError(
                f"doc {d[dup[1]]!r} is judged twice for query {query!r} (rows {first + 1} and {second + 1})",
                rows=(first, second),
                hint="keep one grade per (query, doc)",
            )
        return cls._make(uniques, offsets, d, g)

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        query_col: str = "query_id",
        doc_col: str = "doc_id",
        grade_col: str = "relevance",
    ) -> Qrels:
        """Build from a DataFrame with one row per judgement."""
        missing = [c for c in (query_col, doc_col, grade_col) if c not in frame.columns]
        if missing:
            raise DataError(f"qrels DataFrame lacks column(s) {missing}; it has {list(frame.columns)}")
        return cls.from_arrays(
            frame[query_col].to_numpy(dtype=object),
            frame[doc_col].to_numpy(dtype=object),
            frame[grade_col].to_numpy(),
        )

    @property
    def grades(self) -> IntArray:
        """Grade of every row, aligned with :attr:`doc_ids` (read-only)."""
        return self._grades

    def grade_maps(self) -> dict[str, dict[str, int]]:
        """``{query_id: {doc_id: grade}}`` built once and cached (treat as read-only)."""
        maps = self._cache.get("grade_maps")
        if maps is None:
            docs, grades = self._doc_ids.tolist(), self._grades.tolist()
            bounds = zip(self._offsets[:-1].tolist(), self._offsets[1:].tolist())
            maps = {q: dict(zip(docs[s:e], grades[s:e])) for q, (s, e) in zip(self._query_ids.tolist(), bounds)}
            self._cache["grade_maps"] = maps
        return maps

    def num_relevant(self, level: int = 1) -> IntArray:
        """Number of docs with grade >= ``level`` per query (aligned with :attr:`query_ids`)."""
        seg = segment_ids(self._offsets)
        return np.bincount(seg, weights=self._grades >= level, minlength=len(self)).astype(np.int64)

    def judgements(self, query_id: str) -> dict[str, int]:
        """``{doc_id: grade}`` of one query."""
        rows = self._slice(query_id)
        return dict(zip(self._doc_ids[rows].tolist(), self._grades[rows].tolist()))

    def to_dict(self) -> dict[str, dict[str, int]]:
        """``{query_id: {doc_id: grade}}`` (a fresh copy)."""
        return {q: dict(d) for q, d in self.grade_maps().items()}

    def to_frame(self) -> pd.DataFrame:
        """Columns ``query_id, doc_id, relevance``."""
        import pandas as pd

        return pd.DataFrame(
            {
                "query_id": pd.Series(self.row_query_ids(), dtype=object, copy=False),
                "doc_id": pd.Series(self._doc_ids, dtype=object, copy=True),
                "relevance": self._grades.copy(),
            }
        )

    def __repr__(self) -> str:
        return f"Qrels(queries={len(self)}, judgements={self.n_rows})"


def _int_grades(values: Sequence[Any] | NDArray[Any], where: Any) -> IntArray:
    """Integer grades; integral floats ("2.0") are accepted, anything else is an error."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu":
        return values.astype(np.int64)
    out = np.empty(len(values), dtype=np.int64)
    for i, value in enumerate(values.tolist() if isinstance(values, np.ndarray) else values):
        integral = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
        if integral or (isinstance(value, (float, np.floating)) and math.isfinite(value) and value == int(value)):
            out[i] = int(value)
        else:
            raise DataError(f"{where(i)}: relevance grade {value!r} is not an integer")
    return out


class Document(NamedTuple):
    """One corpus document."""

    title: str
    text: str


class Corpus:
    """Documents by id: ``{doc_id: Document(title, text)}``, immutable and columnar."""

    __slots__ = ("_ids", "_index", "_texts", "_titles")

    def __init__(
        self, ids: Sequence[str] | ObjArray, titles: Sequence[str] | ObjArray, texts: Sequence[str] | ObjArray
    ) -> None:
        ids_arr = _check_ids(_object_array(ids), "doc ids")
        if not (len(ids_arr) == len(titles) == len(texts)):
            raise DataError("corpus columns differ in length")
        self._ids = _frozen(ids_arr)
        self._titles = _frozen(_object_array(titles))
        self._texts = _frozen(_object_array(texts))
        self._index = {d: i for i, d in enumerate(ids_arr.tolist())}
        if len(self._index) != len(ids_arr):
            dup = _first_duplicate(ids_arr.tolist())
            raise DataError(f"corpus: doc id {dup!r} appears more than once")

    @classmethod
    def from_dict(cls, docs: Mapping[str, Mapping[str, str] | str]) -> Corpus:
        """Build from ``{doc_id: {"title": ..., "text": ...}}`` or ``{doc_id: text}``."""
        ids, titles, texts = [], [], []
        for doc_id, value in docs.items():
            if isinstance(value, str):
                title, text = "", value
            elif isinstance(value, Mapping):
                if "text" not in value:
                    raise DataError(f"corpus doc {doc_id!r}: no 'text' field (has {sorted(value)})")
                title, text = value.get("title") or "", value["text"]
            else:
                raise DataError(f"corpus doc {doc_id!r}: expected a text or a mapping, got {type(value).__name__}")
            if not isinstance(text, str) or not isinstance(title, str):
                raise DataError(f"corpus doc {doc_id!r}: title and text must be strings")
            ids.append(doc_id)
            titles.append(title)
            texts.append(text)
        return cls(ids, titles, texts)

    @property
    def ids(self) -> ObjArray:
        return self._ids

    @property
    def titles(self) -> ObjArray:
        return self._titles

    @property
    def texts(self) -> ObjArray:
        return self._texts

    def contents(self, sep: str = " ") -> list[str]:
        """Title and text joined by ``sep`` (the BEIR convention), per document in id order."""
        return [f"{t}{sep}{x}" if t else x for t, x in zip(self._titles.tolist(), self._texts.tolist())]

    def __getitem__(self, doc_id: str) -> Document:
        i = self._index[doc_id]
        return Document(self._titles[i], self._texts[i])

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids.tolist())

    def __len__(self) -> int:
        return len(self._ids)

    def subset(self, doc_ids: Iterable[str]) -> Corpus:
        """A new corpus with only ``doc_ids`` (in the given order)."""
        rows = [self._index[d] for d in doc_ids]
        return Corpus(self._ids[rows], self._titles[rows], self._texts[rows])

    def __repr__(self) -> str:
        return f"Corpus(docs={len(self)})"


class Queries:
    """Query texts by id, with optional tags per query (used to report metrics per slice)."""

    __slots__ = ("_ids", "_index", "_tags", "_texts")

    def __init__(
        self,
        ids: Sequence[str] | ObjArray,
        texts: Sequence[str] | ObjArray,
        tags: Sequence[Sequence[str]] | None = None,
    ) -> None:
        ids_arr = _check_ids(_object_array(ids), "query ids")
        if len(ids_arr) != len(texts) or (tags is not None and len(tags) != len(texts)):
            raise DataError("queries columns differ in length")
        self._ids = _frozen(ids_arr)
        self._texts = _frozen(_object_array(texts))
        self._tags: tuple[tuple[str, ...], ...] = (
            tuple(() for _ in texts) if tags is None else tuple(tuple(t) for t in tags)
        )
        self._index = {q: i for i, q in enumerate(ids_arr.tolist())}
        if len(self._index) != len(ids_arr):
            raise DataError(f"queries: query id {_first_duplicate(ids_arr.tolist())!r} appears more than once")

    @classmethod
    def from_dict(cls, queries: Mapping[str, str | Mapping[str, Any]]) -> Queries:
        """Build from ``{query_id: text}`` or ``{query_id: {"text": ..., "tags": [...]}}``."""
        ids, texts, tags = [], [], []
        for qid, value in queries.items():
            if isinstance(value, str):
                text, qtags = value, ()
            elif isinstance(value, Mapping) and isinstance(value.get("text"), str):
                text, qtags = value["text"], tuple(value.get("tags") or ())
            else:
                raise DataError(f"query {qid!r}: expected a text or a mapping with a 'text' string")
            ids.append(qid)
            texts.append(text)
            tags.append(qtags)
        return cls(ids, texts, tags)

    @property
    def ids(self) -> ObjArray:
        return self._ids

    @property
    def texts(self) -> ObjArray:
        return self._texts

    @property
    def tags(self) -> tuple[tuple[str, ...], ...]:
        return self._tags

    def __getitem__(self, query_id: str) -> str:
        return str(self._texts[self._index[query_id]])

    def tags_of(self, query_id: str) -> tuple[str, ...]:
        return self._tags[self._index[query_id]]

    def __contains__(self, query_id: object) -> bool:
        return query_id in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids.tolist())

    def __len__(self) -> int:
        return len(self._ids)

    def subset(self, query_ids: Iterable[str]) -> Queries:
        """A new Queries with only ``query_ids`` (in the given order)."""
        rows = [self._index[q] for q in query_ids]
        return Queries(self._ids[rows], self._texts[rows], [self._tags[i] for i in rows])

    def __repr__(self) -> str:
        return f"Queries(queries={len(self)})"


def _first_duplicate(values: Iterable[Any]) -> Any:
    seen: set[Any] = set()
    for v in values:
        if v in seen:
            return v
        seen.add(v)
    return None


@dataclass(frozen=True)
class TaskData:
    """What a task loads: the corpus, the queries and their judgements."""

    corpus: Corpus
    queries: Queries
    qrels: Qrels
    name: str = "task"
    notes: tuple[str, ...] = field(default=())

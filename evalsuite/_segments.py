"""Vectorised operations on arrays split into contiguous segments (one per query).

A segmented array is a flat array plus ``offsets`` (length ``n_segments + 1``): segment
``i`` is ``values[offsets[i]:offsets[i + 1]]``. Runs and qrels are stored this way, so
per-query work becomes a few numpy calls instead of a Python loop over queries.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "argsort_within",
    "first_segment_with_repeat",
    "offsets_from_counts",
    "searchsorted_within",
    "segment_ids",
    "sort_within",
]

# Sorting a padded (segments x longest) matrix is much faster than a loop over
# segments, as long as padding does not blow up memory.
_MAX_PADDING_FACTOR = 2.0


def offsets_from_counts(counts: NDArray[np.int64]) -> NDArray[np.int64]:
    """``[0, c0, c0 + c1, ...]``: segment boundaries for the given segment lengths."""
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets


def segment_ids(offsets: NDArray[np.int64]) -> NDArray[np.int64]:
    """The segment index of every element (``0 0 0 1 1 2 ...``)."""
    counts = np.diff(offsets)
    return np.repeat(np.arange(len(counts), dtype=np.int64), counts)


def _padded_shape(offsets: NDArray[np.int64]) -> tuple[int, int] | None:
    counts = np.diff(offsets)
    if len(counts) == 0:
        return None
    longest = int(counts.max())
    n = int(offsets[-1])
    if longest == 0 or len(counts) * longest > _MAX_PADDING_FACTOR * n + 4096:
        return None
    return len(counts), longest


def sort_within(values: NDArray[np.floating], offsets: NDArray[np.int64]) -> NDArray[np.floating]:
    """A copy of ``values`` with every segment sorted ascending. ``values`` must not hold NaN."""
    n = int(offsets[-1]) if len(offsets) else 0
    shape = _padded_shape(offsets)
    if shape is None:
        out = np.empty(n, dtype=values.dtype)
        for start, end in zip(offsets[:-1].tolist(), offsets[1:].tolist()):
            out[start:end] = np.sort(values[start:end])
        return out
    rows, cols = shape
    if rows * cols == n:
        return np.sort(values.reshape(rows, cols), axis=1).reshape(n)
    seg = segment_ids(offsets)
    pos = np.arange(n, dtype=np.int64) - offsets[seg]
    padded = np.full(shape, np.nan, dtype=values.dtype)
    padded[seg, pos] = values
    padded.sort(axis=1)  # NaN padding sorts last
    valid = np.arange(cols)[None, :] < np.diff(offsets)[:, None]
    return padded[valid]


def argsort_within(values: NDArray[np.floating], offsets: NDArray[np.int64]) -> NDArray[np.int64]:
    """Global indices that sort every segment of ``values`` ascending (segments stay in place).

    Ties come out in an unspecified order; callers that need a tie-break fix ties afterwards.
    ``values`` must not hold NaN.
    """
    n = int(offsets[-1]) if len(offsets) else 0
    shape = _padded_shape(offsets)
    if shape is None:
        out = np.empty(n, dtype=np.int64)
        for start, end in zip(offsets[:-1].tolist(), offsets[1:].tolist()):
            out[start:end] = np.argsort(values[start:end]) + start
        return out
    rows, cols = shape
    if rows * cols == n:
        local = np.argsort(values.reshape(rows, cols), axis=1)
        return (local + offsets[:-1, None]).reshape(n)
    seg = segment_ids(offsets)
    pos = np.arange(n, dtype=np.int64) - offsets[seg]
    padded = np.full(shape, np.nan, dtype=values.dtype)
    padded[seg, pos] = values
    local = np.argsort(padded, axis=1)
    valid = np.arange(cols)[None, :] < np.diff(offsets)[:, None]
    return (local + offsets[:-1, None])[valid]


def searchsorted_within(
    sorted_values: NDArray[np.floating],
    starts: NDArray[np.int64],
    ends: NDArray[np.int64],
    needles: NDArray[np.floating],
    *,
    side: str = "left",
) -> NDArray[np.int64]:
    """``np.searchsorted`` of each needle in its own sorted slice ``[starts[i], ends[i])``.

    Returns global positions. A vectorised binary search: about log2(longest slice)
    passes over the needles, instead of one ``np.searchsorted`` call per slice.
    """
    lo = np.asarray(starts, dtype=np.int64).copy()
    hi = np.asarray(ends, dtype=np.int64).copy()
    if len(lo) == 0 or len(sorted_values) == 0:
        return lo
    last = len(sorted_values) - 1
    longest = int((hi - lo).max())
    for _ in range(max(longest, 1).bit_length() + 1):
        active = lo < hi
        if not active.any():
            break
        mid = (lo + hi) >> 1
        probe = sorted_values[np.minimum(mid, last)]
        right = probe < needles if side == "left" else probe <= needles
        go_right = active & right
        lo = np.where(go_right, mid + 1, lo)
        hi = np.where(active & ~right, mid, hi)
    return lo


def first_segment_with_repeat(values: NDArray[np.integer], offsets: NDArray[np.int64]) -> int | None:
    """Index of the first segment in which some value occurs twice, or None.

    ``values`` are integers (codes of ids). One sort of every segment at once -- a
    (segments x longest) matrix when padding is cheap, else a single sort by (segment,
    value) -- then a comparison of neighbours: no Python loop over segments or rows.
    """
    n = int(offsets[-1]) if len(offsets) else 0
    if n < 2:
        return None
    values = np.asarray(values)
    shape = _padded_shape(offsets)
    if shape is not None:
        rows, cols = shape
        if rows * cols == n:
            ordered = np.sort(values.reshape(rows, cols), axis=1)
        else:
            seg = segment_ids(offsets)
            pos = np.arange(n, dtype=np.int64) - offsets[seg]
            top = int(values.max()) + 1
            # distinct padding values above every real one, so padding never repeats
            ordered = np.broadcast_to(np.arange(top, top + cols, dtype=np.int64), shape).copy()
            ordered[seg, pos] = values
            ordered.sort(axis=1)
        repeated = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
        hits = np.flatnonzero(repeated)
        return int(hits[0]) if len(hits) else None
    seg = segment_ids(offsets)
    order = np.lexsort((values, seg))
    same = (values[order][1:] == values[order][:-1]) & (seg[order][1:] == seg[order][:-1])
    hits = np.flatnonzero(same)
    return int(seg[order][hits].min()) if len(hits) else None

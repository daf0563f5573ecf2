"""Identifier columns as integer codes (factorising), without a Python object per row.

A column of ids becomes ``codes`` (one integer per row) into ``uniques`` (each distinct id
once). Grouping rows by query, finding a doc repeated within a query and joining a run
with qrels then work on integers. Columns come either as numpy object arrays (codes by
``pandas.factorize``) or as pyarrow arrays (codes by Arrow's ``dictionary_encode``, the
distinct values staying in Arrow memory): a 10M-row run read by the Arrow engine never
becomes 10M Python strings unless someone asks for them.

pyarrow and pandas are imported only when a function needs them.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np
from numpy.typing import NDArray

from evalsuite.errors import DataError

__all__ = [
    "arrow_codes",
    "arrow_codes_within",
    "arrow_numbers",
    "arrow_strings",
    "group_codes",
    "is_arrow",
    "match_dictionary",
    "object_codes",
    "take_arrow",
    "take_strings",
]

IntArray = NDArray[np.int64]


def is_arrow(values: Any) -> bool:
    """True for a pyarrow Array or ChunkedArray (checked without importing pyarrow)."""
    return type(values).__module__.startswith("pyarrow")


def _compute(name: str, args: list[Any], options: Any = None) -> Any:
    """Call an Arrow compute function. ``pyarrow._compute.call_function`` is what
    ``pyarrow.compute`` wraps; calling it directly spares that module's import (it builds
    Python wrappers and docstrings for every kernel: ~0.1 s of the CLI's start-up)."""
    try:
        from pyarrow._compute import call_function
    except ImportError:  # pragma: no cover - a pyarrow without the private module
        from pyarrow.compute import call_function
    return call_function(name, args, options)


def _encode(strings: Any) -> Any:
    from pyarrow._compute import DictionaryEncodeOptions

    return _compute("dictionary_encode", [strings], DictionaryEncodeOptions())


def arrow_numbers(values: Any, dtype: Any) -> NDArray[Any]:
    """A pyarrow numeric Array or ChunkedArray without nulls as a numpy array (zero-copy for
    one chunk). Read from the buffers: pyarrow's own ``to_numpy`` imports pandas."""
    chunks = values.chunks if hasattr(values, "chunks") else [values]
    parts = []
    for chunk in chunks:
        if chunk.null_count:
            raise ValueError("arrow_numbers: the array has nulls")
        item = np.dtype(dtype).itemsize
        parts.append(np.frombuffer(chunk.buffers()[1], dtype=dtype, count=len(chunk), offset=chunk.offset * item))
    if not parts:
        return np.zeros(0, dtype=dtype)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def arrow_codes(values: Any, what: str) -> tuple[NDArray[np.integer], Any]:
    """``(codes, dictionary)`` of a pyarrow string (or dictionary-of-string) array.

    ``codes`` is a numpy integer array (one per row); ``dictionary`` a pyarrow string
    array of the distinct values. Nulls are an error.
    """
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        if pa.types.is_dictionary(values.type):
            chunks = values.unify_dictionaries().chunks
            if not chunks:
                return np.zeros(0, dtype=np.int32), _strings_to_arrow(np.empty(0, dtype=object))
            encoded = pa.DictionaryArray.from_arrays(pa.concat_arrays([c.indices for c in chunks]),
                                                     chunks[0].dictionary)
        else:
            encoded = values.combine_chunks()
    else:
        encoded = values
    if encoded.null_count:
        raise DataError(f"{what} must be strings, got a missing value (null)")
    if not pa.types.is_dictionary(encoded.type):
        if not (pa.types.is_string(encoded.type) or pa.types.is_large_string(encoded.type)):
            raise DataError(f"{what} must be strings, got an Arrow array of {encoded.type}")
        encoded = _encode(encoded)
    dictionary = encoded.dictionary
    if not (pa.types.is_string(dictionary.type) or pa.types.is_large_string(dictionary.type)):
        raise DataError(f"{what} must be strings, got an Arrow dictionary of {dictionary.type}")
    return arrow_numbers(encoded.indices, np.dtype(f"int{encoded.indices.type.bit_width}")), dictionary


_PART_ROWS = 4096  # rows per encoded part: its hash table stays in the CPU cache
_PARALLEL_MIN_ROWS = 500_000  # rows per thread below which one thread does the work
_MAX_PARTS: int | None = None  # threads at most (None: one per core); tests lower these to exercise the parts


def _threads(n: int) -> int:
    import os

    return max(1, min(_MAX_PARTS or os.cpu_count() or 1, n // _PARALLEL_MIN_ROWS))


def _in_threads(work: Any, items: list[Any], threads: int) -> list[Any]:
    """``[work(batch) ...]`` over ``threads`` contiguous batches of ``items``, concatenated in
    order. Arrow's kernels release the GIL, so the batches run on all cores."""
    if threads < 2 or len(items) < 2:
        return list(work(items))
    from concurrent.futures import ThreadPoolExecutor

    size = -(-len(items) // threads)
    batches = [items[i:i + size] for i in range(0, len(items), size)]
    with ThreadPoolExecutor(len(batches)) as pool:
        return [out for batch in pool.map(lambda b: list(work(b)), batches) for out in batch]


def arrow_codes_within(values: Any, offsets: NDArray[np.int64], what: str) -> tuple[NDArray[np.integer], Any]:
    """Like :func:`arrow_codes` for a pyarrow string array grouped in segments (``offsets``:
    the rows of one query), cheaper and on all cores.

    The array is encoded in small parts of whole segments (about :data:`_PART_ROWS` rows),
    whose hash tables stay in the CPU cache -- 2-3x less work than one table of millions of
    distinct ids -- on every core at once; their dictionaries are then concatenated. A
    value met in two parts gets two codes, so codes identify values **within a segment**
    (what a duplicate check per query needs), not across segments; joins go through
    :func:`match_dictionary`, which handles repeated dictionary values.
    """
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):
        return arrow_codes(values, what)
    if values.null_count:
        raise DataError(f"{what} must be strings, got a missing value (null)")
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        raise DataError(f"{what} must be strings, got an Arrow array of {values.type}")
    n = len(values)
    cuts = offsets[np.minimum(np.searchsorted(offsets, np.arange(_PART_ROWS, n, _PART_ROWS)), len(offsets) - 1)]
    bounds = np.unique(np.concatenate([[0], cuts, [n]])).tolist()
    parts = list(pairwise(bounds))

    def encode(batch: list[tuple[int, int]]) -> Any:
        for a, b in batch:
            part = _encode(values.slice(a, b - a))
            yield arrow_numbers(part.indices, np.int32), part.dictionary

    encoded = _in_threads(encode, parts, _threads(n))
    if not encoded:
        return np.zeros(0, dtype=np.int32), values
    dictionaries = [d for _, d in encoded]
    sizes = np.fromiter(map(len, dictionaries), dtype=np.int64, count=len(dictionaries))
    bases = np.cumsum(sizes) - sizes  # the first code of every part in the merged dictionary
    codes: NDArray[np.integer] = np.concatenate([c for c, _ in encoded]).astype(
        np.int64 if int(sizes.sum()) >= 2**31 else np.int32, copy=False)
    for (start, end), base in zip(parts, bases.tolist()):
        codes[start:end] += base
    try:
        merged = pa.concat_arrays(dictionaries)
    except pa.ArrowInvalid:  # over 2 GB of ids: 64-bit offsets
        merged = pa.concat_arrays([d.cast(pa.large_string()) for d in dictionaries])
    return codes, merged


def match_dictionary(dictionary: Any, values: NDArray[np.object_]) -> tuple[NDArray[np.integer], IntArray]:
    """Match a pyarrow string ``dictionary`` (maybe with repeated values) against ``values``.

    Returns ``(entry_match, value_key)``: for every dictionary entry, the key of the equal
    value or -1; for every value, its key (equal values share a key). The few values are
    hashed and every dictionary entry is probed against them, cheaper than hashing a
    dictionary of millions of entries.
    """
    from pyarrow._compute import SetLookupOptions

    if len(values) == 0:
        return np.full(len(dictionary), -1, dtype=np.int32), np.zeros(0, dtype=np.int64)
    encoded = _encode(_strings_to_arrow(values))
    value_key = arrow_numbers(encoded.indices, np.int32).astype(np.int64)
    options = SetLookupOptions(encoded.dictionary)
    n = len(dictionary)
    threads = _threads(n)
    step = -(-n // threads) if n else 1
    slices = [(a, min(a + step, n)) for a in range(0, n, step)]

    def probe(batch: list[tuple[int, int]]) -> Any:
        for a, b in batch:
            found = _compute("index_in", [dictionary.slice(a, b - a)], options)
            yield np.where(_validity(found), arrow_numbers_with_nulls(found, np.int32), np.int32(-1))

    matches = _in_threads(probe, slices, threads)
    entry_match = np.concatenate(matches) if matches else np.zeros(0, dtype=np.int32)
    return entry_match, value_key


def arrow_strings(strings: Any) -> NDArray[np.object_]:
    """The values of a pyarrow string array (no nulls) as a numpy object array of str.

    Decoded from the buffers (pyarrow's ``to_pylist``/``to_numpy`` import pandas): one
    decode of the whole data buffer when it is ASCII, then one slice per value."""
    import pyarrow as pa

    n = len(strings)
    out = np.empty(n, dtype=object)
    if n == 0:
        return out
    offset_type = np.int64 if pa.types.is_large_string(strings.type) else np.int32
    _, offsets_buffer, data_buffer = strings.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=offset_type, count=n + 1,
                            offset=strings.offset * np.dtype(offset_type).itemsize)
    base = int(offsets[0])
    data = bytes(memoryview(data_buffer)[base:int(offsets[-1])]) if data_buffer is not None else b""
    starts, ends = (offsets[:-1] - base).tolist(), (offsets[1:] - base).tolist()
    if data.isascii():
        text = data.decode("ascii")
        out[:] = [text[a:b] for a, b in zip(starts, ends)]
    else:
        out[:] = [data[a:b].decode("utf-8") for a, b in zip(starts, ends)]
    return out


def _strings_to_arrow(values: NDArray[np.object_]) -> Any:
    """A pyarrow large_string array of Python strings, built from buffers (``pa.array`` on
    Python objects imports pandas)."""
    import pyarrow as pa

    encoded = [v.encode("utf-8") for v in values.tolist()]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)), out=offsets[1:])
    return pa.Array.from_buffers(pa.large_string(), len(encoded),
                                 [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))])


def _indices_to_arrow(codes: NDArray[np.integer]) -> Any:
    import pyarrow as pa

    array = np.ascontiguousarray(codes, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(array), [None, pa.py_buffer(array)])


def take_arrow(values: Any, rows: NDArray[np.integer]) -> Any:
    """``values[rows]`` for a pyarrow (chunked) array."""
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return _compute("take", [values, _indices_to_arrow(rows)])


def take_strings(dictionary: Any, codes: NDArray[np.integer]) -> NDArray[np.object_]:
    """``dictionary[codes]`` as a numpy object array, building only those strings."""
    if len(codes) == 0:
        return np.empty(0, dtype=object)
    return arrow_strings(_compute("take", [dictionary, _indices_to_arrow(codes)]))


def _validity(array: Any) -> NDArray[np.bool_]:
    """Which entries of a pyarrow array are not null, as a numpy bool array."""
    n = len(array)
    bitmap = array.buffers()[0]
    if bitmap is None or array.null_count == 0:
        return np.ones(n, dtype=bool)
    bits = np.unpackbits(np.frombuffer(bitmap, dtype=np.uint8), bitorder="little")
    return bits[array.offset:array.offset + n].view(bool)


def arrow_numbers_with_nulls(array: Any, dtype: Any) -> NDArray[Any]:
    """The value buffer of a numeric pyarrow Array as numpy (entries under nulls are arbitrary)."""
    item = np.dtype(dtype).itemsize
    return np.frombuffer(array.buffers()[1], dtype=dtype, count=len(array), offset=array.offset * item)


_SMALL = 50_000  # below this many values a dict is as fast as pandas.factorize
# ... and below this many, about as fast as importing pandas (~0.25 s) to factorize them: measured
# 11 ms / 53 ms / 432 ms for 50k / 200k / 1M ids with a dict, 4 / 18 / 116 ms with pandas
_SMALL_WITHOUT_PANDAS = 1_000_000


def object_codes(values: NDArray[np.object_]) -> tuple[IntArray, NDArray[np.object_]]:
    """``(codes, uniques)`` of an object array of ids, uniques in first-seen order
    (a dict for small arrays, ``pandas.factorize`` for large ones)."""
    import sys

    if len(values) < (_SMALL if "pandas" in sys.modules else _SMALL_WITHOUT_PANDAS):
        index: dict[Any, int] = {}
        codes = np.fromiter((index.setdefault(v, len(index)) for v in values.tolist()), dtype=np.int64,
                            count=len(values))
        uniques = np.empty(len(index), dtype=object)
        uniques[:] = list(index)
        return codes, uniques
    import pandas as pd

    codes, found = pd.factorize(values, sort=False)
    return codes.astype(np.int64, copy=False), np.asarray(found, dtype=object)


def group_codes(codes: NDArray[np.integer], n_uniques: int) -> tuple[IntArray, IntArray, IntArray | None]:
    """Group rows by code, groups in first-seen order.

    Returns ``(order, offsets, perm)``: ``order[i]`` is the code of group ``i``; rows of
    group ``i`` are ``perm[offsets[i]:offsets[i + 1]]`` (``perm`` None when the rows are
    already grouped in first-seen order, the usual case for files, which costs one pass).
    Codes that no row uses get no group.
    """
    from evalsuite._segments import offsets_from_counts

    n = len(codes)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(1, dtype=np.int64), None
    steps = np.diff(codes)
    if int(codes[0]) == 0 and bool(((steps == 0) | (steps == 1)).all()):
        last = int(codes[-1]) + 1
        counts = np.bincount(codes, minlength=last).astype(np.int64)
        return np.arange(last, dtype=np.int64), offsets_from_counts(counts), None
    used, first = np.unique(codes, return_index=True)
    by_first = np.argsort(first, kind="stable")
    order = used[by_first].astype(np.int64)
    group_of_code = np.full(max(n_uniques, int(used[-1]) + 1), -1, dtype=np.int64)
    group_of_code[order] = np.arange(len(order), dtype=np.int64)
    group = group_of_code[codes]
    counts = np.bincount(group, minlength=len(order)).astype(np.int64)
    steps = np.diff(group)
    perm = None if bool((steps >= 0).all()) else np.argsort(group, kind="stable").astype(np.int64)
    return order, offsets_from_counts(counts), perm

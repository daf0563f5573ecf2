"""Segment kernels against plain per-segment numpy, on generated layouts."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from evalsuite._segments import argsort_within, offsets_from_counts, searchsorted_within, sort_within

layouts = st.lists(st.integers(0, 30), min_size=1, max_size=20)


@settings(max_examples=200, deadline=None)
@given(counts=layouts, data=st.data())
def test_sort_and_search_within_match_per_segment_numpy(counts: list[int], data: st.DataObject) -> None:
    offsets = offsets_from_counts(np.asarray(counts, dtype=np.int64))
    n = int(offsets[-1])
    values = np.asarray(data.draw(st.lists(st.sampled_from([0.0, 1.0, 2.5, -3.0, np.inf]), min_size=n, max_size=n)),
                        dtype=np.float32)
    sorted_values = sort_within(values, offsets)
    order = argsort_within(values, offsets)
    for s, e in itertools.pairwise(offsets):
        np.testing.assert_array_equal(sorted_values[s:e], np.sort(values[s:e]))
        np.testing.assert_array_equal(values[order[s:e]], np.sort(values[s:e]))
        assert set(order[s:e].tolist()) == set(range(s, e))
    needles = np.asarray([0.0, 1.0, 2.0, np.inf, -5.0] * len(counts), dtype=np.float32)[: len(counts)]
    for side in ("left", "right"):
        got = searchsorted_within(sorted_values, offsets[:-1], offsets[1:], needles, side=side)
        expected = [s + np.searchsorted(sorted_values[s:e], x, side=side)
                    for s, e, x in zip(offsets[:-1], offsets[1:], needles)]
        np.testing.assert_array_equal(got, expected)


def test_loop_fallback_for_very_uneven_segments() -> None:
    counts = np.array([1] * 50 + [10_000], dtype=np.int64)  # padding would be ~50x the data
    offsets = offsets_from_counts(counts)
    values = np.random.default_rng(0).random(int(offsets[-1]))
    out = sort_within(values, offsets)
    np.testing.assert_array_equal(out[50:], np.sort(values[50:]))

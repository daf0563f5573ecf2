"""Damage to SQLite files that ``PRAGMA quick_check`` does not see, for the cache tests."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path


def swapped_index_keys(path: Path, table: str, keys: Sequence[str]) -> Iterator[tuple[int, bytes]]:
    """For each pair of neighbouring ``keys`` (sorted), the file's bytes with the two swapped in
    ``table``'s primary-key index: ``(j, damaged)`` for keys ``j`` and ``j + 1``. The index must
    fit on one page (a few dozen short keys). Each damaged file still passes quick_check."""
    with sqlite3.connect(path) as conn:
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
        (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE type = 'index' AND tbl_name = ?",
                               (table,)).fetchone()
    clean = path.read_bytes()
    index = slice((root - 1) * page_size, root * page_size)
    ordered = sorted(keys)
    for j in range(len(ordered) - 1):
        a, b = ordered[j].encode(), ordered[j + 1].encode()
        page = bytearray(clean[index])
        at_a, at_b = page.index(a), page.index(b)
        page[at_a:at_a + len(a)], page[at_b:at_b + len(b)] = b, a
        damaged = bytearray(clean)
        damaged[index] = page
        yield j, bytes(damaged)

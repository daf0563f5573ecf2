"""Fixtures on the tiny corpus (``tests/_tinydata.py``), and a stand-in encoder, for fast retriever tests."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from evalsuite import Corpus, Qrels, Queries
from tests._tinydata import DOCS, QRELS, QUERIES


@pytest.fixture(scope="session")
def tiny_corpus() -> Corpus:
    return Corpus.from_dict(DOCS)


@pytest.fixture(scope="session")
def tiny_queries() -> Queries:
    return Queries.from_dict(QUERIES)


@pytest.fixture(scope="session")
def tiny_qrels() -> Qrels:
    return Qrels(QRELS)


class HashEncoder:
    """A deterministic stand-in encoder: each text maps to a fixed random unit vector, or to
    the vector given for it in ``table``. Counts the texts it encodes."""

    name = "hash-encoder"

    def __init__(self, dim: int = 16, table: dict[str, np.ndarray] | None = None) -> None:
        self._dim = dim
        self.table = table or {}
        self.fingerprint: dict[str, Any] = {"model": self.name, "dim": dim, "normalize": True}
        self.encoded = 0

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, texts: Sequence[str], *, kind: str, batch_size: int = 32,
               show_progress: bool = False) -> np.ndarray:
        self.encoded += len(texts)
        rows = []
        for text in texts:
            if text in self.table:
                rows.append(np.asarray(self.table[text], dtype=np.float32))
                continue
            seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
            vector = np.random.default_rng(seed).standard_normal(self._dim).astype(np.float32)
            rows.append(vector / np.linalg.norm(vector))
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), self._dim)

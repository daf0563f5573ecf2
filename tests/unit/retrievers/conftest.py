"""A tiny corpus with unambiguous answers, and a stand-in encoder, for fast retriever tests."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from evalsuite import Corpus, Qrels, Queries

DOCS = {
    "d1": {"title": "Boundary layer",
           "text": "The boundary layer thickens along a flat plate as the flow slows near the wall."},
    "d2": {"title": "Wing flutter",
           "text": "Aeroelastic flutter of a swept wing grows when structural damping is low."},
    "d3": {"title": "Heat transfer", "text": "Heat conduction in composite slabs of two materials was solved exactly."},
    "d4": {"title": "Shock waves", "text": "A normal shock wave forms ahead of a blunt body at supersonic speed."},
    "d5": {"title": "Propellers", "text": "A propeller slipstream increases the lift of the wing behind it."},
    "d6": {"title": "Cooking", "text": "Bake the bread in a hot oven for forty minutes until golden."},
    "d7": {"title": "Gardening", "text": "Tomatoes need sun, water and well drained soil to grow."},
    "d8": {"title": "Hypersonic heating", "text": "Aerodynamic heating of a blunt nose at hypersonic speed is severe."},
    "d9": {"title": "", "text": "Laminar flow becomes turbulent when the Reynolds number is high."},
    "d10": {"title": "Music", "text": "The orchestra played a symphony in a minor key."},
}
QUERIES = {
    "q1": "how does the boundary layer grow on a flat plate",
    "q2": "flutter of swept wings and structural damping",
    "q3": "heat conduction through composite slabs",
    "q4": "shock wave in front of a blunt body at supersonic speeds",
    "q5": "effect of propeller slipstream on wing lift",
    "q6": "when does laminar flow turn turbulent",
}
QRELS = {"q1": {"d1": 2, "d9": 1}, "q2": {"d2": 2}, "q3": {"d3": 2}, "q4": {"d4": 2, "d8": 1}, "q5": {"d5": 2},
         "q6": {"d9": 2, "d1": 1}}


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

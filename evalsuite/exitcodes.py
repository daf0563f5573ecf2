"""The exit-code contract of the ``evalsuite`` command, and how failures become one line.

====  =====================================================================================
code  meaning
====  =====================================================================================
0     success; for ``run`` and ``gate``: every gate passed (warnings allowed)
1     a gate failed (``run``, ``gate``), or ``check-leakage --max-rate`` was exceeded
2     bad input or usage: a file, option, suite or environment problem, one line on stderr
      naming the file (and line or field) and what to do
3     internal error: an unexpected exception, i.e. a bug in evalsuite; one line on stderr
      says so and where the full traceback was written (``--debug`` prints it)
130   interrupted (Ctrl-C / SIGINT, or SIGTERM): nothing half-written is left behind
====  =====================================================================================

CI reads 1 as "the model is not good enough" and 2/3 as "the evaluation itself broke", so a
crash must never exit 1.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import tempfile
import threading
import traceback
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

__all__ = ["EXIT_BAD_INPUT", "EXIT_GATE_FAILED", "EXIT_INTERNAL", "EXIT_INTERRUPTED", "EXIT_OK", "describe_os_error",
           "forget_handled_interrupt", "ignore_signals_at_exit", "internal_error", "one_line",
           "sigterm_as_interrupt"]

EXIT_OK = 0
EXIT_GATE_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130

#: longest error line printed (values quoted in messages are cut well before this)
MAX_MESSAGE = 1000


def one_line(message: str, limit: int = MAX_MESSAGE) -> str:
    """``message`` on one line (line breaks shown as ``\\n``), cut to ``limit`` characters."""
    text = message.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\r")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_os_error(exc: OSError, *, option: str | None = "--output", cache_dir: bool = True) -> str:
    """``path: what happened (what to do)`` for an OSError from the user's environment.

    ``option``: the flag that chose the file (``--markdown``), or None when the command has none
    to offer; ``cache_dir``: whether the command has ``--cache-dir``."""
    import errno

    where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
    what = exc.strerror or str(exc)
    if exc.errno in (errno.EEXIST, errno.ENOTDIR) and where and os.path.isfile(exc.filename):
        what = "is a file, where a folder is needed (to hold what is written there)"  # not "File exists"
    elsewhere = ((f"choose another {option}" if option else "write it elsewhere") if where
                 else "write the output elsewhere")  # no file: stdout, a pipe
    hint = {errno.ENOSPC: f"free some space or {elsewhere}",
            errno.EDQUOT: f"free some space or {elsewhere}",
            errno.EACCES: "check the permissions",
            errno.EPERM: "check the permissions",
            errno.EROFS: f"the file system is read-only; {elsewhere}" + (" or --cache-dir" if where and cache_dir
                                                                         else "")}.get(exc.errno or 0)
    return f"{where}{what}" + (f" ({hint})" if hint else "")


def internal_error(exc: BaseException, *, debug: bool = False) -> str:
    """The one line printed for an unexpected exception; the traceback goes to a file (and stderr with ``debug``)."""
    from evalsuite import __version__

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if debug:
        sys.stderr.write(text)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    where = "not written"
    try:
        fd, path = tempfile.mkstemp(prefix=f"evalsuite-crash-{stamp}-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as fh:
            fh.write(f"evalsuite {__version__}\ncommand: {sys.argv!r}\n\n{text}")
        where = f"written to {path}"
    except OSError as write_error:
        where = f"not written ({write_error.strerror or write_error})"
    summary = one_line(f"{type(exc).__name__}: {exc}", 300)
    return (f"evalsuite: internal error (a bug in evalsuite, please report it): {summary}; traceback {where}"
            + ("" if debug else "; run with --debug to print it"))


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises KeyboardInterrupt (so clean-up runs as for Ctrl-C); restored on exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def forget_handled_interrupt() -> None:
    """Tell CPython that the KeyboardInterrupt just caught was handled (call it where it is caught).

    CPython remembers a KeyboardInterrupt that left code run by ``exec()`` of a string (which
    ``dataclasses`` and ``collections.namedtuple`` do, e.g. during a lazy import that Ctrl-C
    interrupts) as "unhandled", even when the caller catches it; under ``python -m evalsuite``
    the interpreter then kills itself with SIGINT at exit (return code -2) instead of exiting
    130. Running ``exec()`` on any string resets that memory, and this is all it does here."""
    exec("")


_AT_EXIT: list[bool] = []


def ignore_signals_at_exit() -> None:
    """At interpreter exit, after the other exit handlers, ignore SIGINT and SIGTERM (once per process).

    The command's work is over then (its exit code decided, its output complete); a signal
    during the interpreter's own shutdown, when Python no longer handles signals, would
    otherwise kill the process (return code -2 or -15) in place of that exit code. Exit
    handlers run last-registered first, so registered when the command starts, this one
    runs after the handlers that later imports register (thread pools, temporary folders)."""
    if _AT_EXIT or threading.current_thread() is not threading.main_thread():
        return
    _AT_EXIT.append(True)

    def ignore() -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(OSError, ValueError):
                signal.signal(signum, signal.SIG_IGN)

    atexit.register(ignore)

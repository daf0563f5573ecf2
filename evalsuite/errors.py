"""Typed errors for everything a user can get wrong.

Every error a user can trigger (a bad file, an unknown name, a missing optional
dependency, a bad config) is an :class:`EvalsuiteError`. The CLI prints its message
as one line and exits with :attr:`EvalsuiteError.exit_code`; library callers can
catch the specific subclass.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "ConfigError",
    "DataError",
    "EvalsuiteError",
    "MissingExtraError",
    "UnknownNameError",
]


class EvalsuiteError(Exception):
    """Base class of all user-facing evalsuite errors."""

    exit_code: int = 2


class DataError(EvalsuiteError, ValueError):
    """Malformed or inconsistent input data.

    The message starts with ``path:line:`` when the problem is in a file, so that
    editors and CI logs can jump to it.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.path = None if path is None else str(path)
        self.line = line
        self.reason = message
        self.hint = hint
        super().__init__(self._format())

    def _format(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path if self.line is None else f"{self.path}:{self.line}"
            where += ": "
        text = where + self.reason
        if self.hint:
            text += f" ({self.hint})"
        return text


class ConfigError(EvalsuiteError, ValueError):
    """A bad option, argument or suite configuration value."""


class UnknownNameError(EvalsuiteError, KeyError):
    """A name (metric, retriever, task, ...) that no registry knows.

    The message lists the closest known names ("did you mean ...?").
    """

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        self.kind = kind
        self.name = name
        self.known = sorted(set(known))
        self.suggestions = difflib.get_close_matches(name, self.known, n=3, cutoff=0.5)
        if not self.suggestions:
            lowered = {k.lower(): k for k in self.known}
            self.suggestions = [
                lowered[m]
                for m in difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.5)
            ]
        message = f"unknown {kind} {name!r}"
        if self.suggestions:
            message += "; did you mean " + " or ".join(repr(s) for s in self.suggestions) + "?"
        else:
            message += "; known: " + ", ".join(self.known)
        super().__init__(message)

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class MissingExtraError(EvalsuiteError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"{purpose} needs the Python package {package!r}, which is not installed; "
            f"install it with: pip install 'evalsuite[{extra}]'"
        )

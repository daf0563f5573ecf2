"""Lazy imports of optional dependencies, with an install hint when one is missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from evalsuite.errors import MissingExtraError

__all__ = ["require"]


def require(module: str, *, package: str | None = None, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming the extra to install.

    Only a missing ``module`` itself is translated; an ImportError raised while importing
    an installed package (a real bug or a broken install) propagates unchanged.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        top = module.split(".")[0]
        if exc.name is not None and exc.name.split(".")[0] != top:
            raise
        raise MissingExtraError(package or top, extra, purpose) from None

"""A small name -> object registry with aliases and "did you mean" errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from evalsuite.errors import UnknownNameError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps canonical names (and case-insensitive aliases) to objects of one kind.

    >>> r: Registry[int] = Registry("number")
    >>> r.add("one", 1, aliases=("uno",))
    >>> r.get("UNO")
    1
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    def add(self, name: str, item: T, *, aliases: tuple[str, ...] = ()) -> None:
        """Register ``item`` under ``name`` and ``aliases``; a name already taken is an error."""
        for key in (name, *aliases):
            folded = key.lower()
            owner = self._aliases.get(folded)
            if owner is not None and owner != name:
                raise ValueError(f"{self.kind} name {key!r} is already registered for {owner!r}")
            self._aliases[folded] = name
        self._items[name] = item

    def register(self, name: str, *, aliases: tuple[str, ...] = ()) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""

        def decorate(item: T) -> T:
            self.add(name, item, aliases=aliases)
            return item

        return decorate

    def canonical(self, name: str) -> str:
        """The canonical name for ``name`` or an alias of it (case-insensitive)."""
        try:
            return self._aliases[name.lower()]
        except KeyError:
            raise UnknownNameError(self.kind, name, self.names(with_aliases=True)) from None

    def get(self, name: str) -> T:
        """The object registered under ``name`` or one of its aliases."""
        return self._items[self.canonical(name)]

    def names(self, *, with_aliases: bool = False) -> list[str]:
        """Canonical names (sorted); with ``with_aliases`` also every alias as registered."""
        if not with_aliases:
            return sorted(self._items)
        return sorted(set(self._items) | set(self._aliases))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

"""Registries of named entries (mechanisms, agents, value distributions).

An unknown id raises :class:`UnknownIdError` with the closest known ids as a suggestion:

>>> r = Registry("mechanism", {"second_price": 2, "first_price": 1})
>>> r.get("second_prize")
Traceback (most recent call last):
...
mecharena.core.errors.UnknownIdError: unknown mechanism 'second_prize'; did you mean 'second_price' or 'first_price'? Known: first_price, second_price
"""

import difflib
from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

from mecharena.core.errors import UnknownIdError

T = TypeVar("T")


class Registry(Generic[T]):
    """An ordered, read-only mapping from id to entry with helpful lookup errors."""

    def __init__(self, kind: str, entries: Mapping[str, T]) -> None:
        self.kind = kind
        self._entries = dict(sorted(entries.items()))

    def get(self, name: str) -> T:
        """Return the entry registered as ``name``.

        Raises:
            UnknownIdError: ``name`` is not registered; the message suggests close matches.
        """
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownIdError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, self._entries, n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else "."
        return f"unknown {self.kind} {name!r}{hint} Known: {', '.join(self._entries)}"

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(self._entries.items())

"""Registries of named entries (mechanisms, agents, value distributions).

An unknown id raises :class:`UnknownIdError` with the closest known ids as a suggestion:

>>> r = Registry("mechanism", {"second_price": 2, "first_price": 1})
>>> r.get("second_prize")
Traceback (most recent call last):
...
mecharena.core.errors.UnknownIdError: unknown mechanism 'second_prize'; did you mean 'second_price' or 'first_price'? Known: first_price, second_price

Entries are added with :meth:`Registry.register`, which refuses an id that another entry holds:

>>> r.register("all_pay", 3, source="my_plugin.py")
>>> r.register("all_pay", 3, source="my_plugin.py")  # the same entry again: nothing happens
>>> r.register("all_pay", 4, source="other.py")
Traceback (most recent call last):
...
mecharena.core.errors.ConfigError: mechanism 'all_pay' from other.py is already registered from my_plugin.py as a different entry; give one of them another id
"""

import difflib
from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

from mecharena.core.errors import ConfigError, UnknownIdError

T = TypeVar("T")


class Registry(Generic[T]):
    """An ordered mapping from id to entry with helpful lookup errors; entries are only ever added."""

    def __init__(self, kind: str, entries: Mapping[str, T], source: str = "mecharena") -> None:
        self.kind = kind
        self._entries = dict(sorted(entries.items()))
        self._sources = dict.fromkeys(self._entries, source)

    def get(self, name: str) -> T:
        """Return the entry registered as ``name``.

        Raises:
            UnknownIdError: ``name`` is not registered; the message suggests close matches.
        """
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownIdError(self.unknown_message(name)) from None

    def conflict(self, name: str, entry: T, source: str) -> str | None:
        """Why ``entry`` from ``source`` cannot be registered as ``name``, or None when it can."""
        held = self._entries.get(name)
        if held is None or held is entry or held == entry:
            return None
        return (f"{self.kind} {name!r} from {source} is already registered from {self._sources[name]} "
                "as a different entry; give one of them another id")

    def register(self, name: str, entry: T, source: str) -> None:
        """Add ``entry`` as ``name``; ``source`` says where it came from (for messages).

        Registering the entry already held under ``name`` (the same object, or an equal one) does
        nothing, so loading a plug-in twice is harmless.

        Raises:
            ConfigError: ``name`` is registered to a different entry; the message names both sources.
        """
        if (message := self.conflict(name, entry, source)) is not None:
            raise ConfigError(message)
        if name not in self._entries:
            self._entries = dict(sorted({**self._entries, name: entry}.items()))
            self._sources[name] = source

    def source(self, name: str) -> str:
        """Where the entry ``name`` came from: ``mecharena`` for built-ins, else the plug-in's path or module."""
        self.get(name)
        return self._sources[name]

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

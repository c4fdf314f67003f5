"""YAML text -> plain Python data, plus the line of every field (for error messages).

PyYAML's *composed* nodes carry the position of every scalar, sequence and mapping. Walking
them once gives a :class:`Lines` tree that maps a field path such as
``("mechanisms", 0, "config", "reserve_price")`` to its line, so that any later check (a
pydantic error, an unknown registry id) can point at the line that caused it.

>>> data, lines = parse_yaml("name: x\\nseeds:\\n  - 0\\n  - 1\\n", "spec.yaml")
>>> data
{'name': 'x', 'seeds': [0, 1]}
>>> lines.line_of(("seeds", 1)), lines.line_of(("seeds", 7)), lines.line_of(("nope",))
(4, 2, 1)
>>> format_path(("mechanisms", 0, "config", "reserve_price"))
'mechanisms[0].config.reserve_price'
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from mecharena.core.errors import ConfigError

Path = tuple[str | int, ...]
MAX_DEPTH = 64
MAX_ERRORS = 20


class SpecError(ConfigError):
    """A spec is invalid. ``issues`` holds ``(line, path, message)`` for every problem found
    (line 0: the file as a whole); the message has one ``FILE:LINE: PATH: problem`` line each."""

    def __init__(self, where: str, issues: list[tuple[int, Path, str]]) -> None:
        self.where = where
        self.issues = sorted(issues, key=lambda issue: issue[0])
        lines = [f"{where}{f':{line}' if line else ''}: {format_path(path) + ': ' if path else ''}{message}"
                 for line, path, message in self.issues[:MAX_ERRORS]]
        if len(self.issues) > MAX_ERRORS:
            lines.append(f"... and {len(self.issues) - MAX_ERRORS} more problems")
        super().__init__("\n".join(lines))


@dataclass(slots=True)
class Lines:
    """Lines (1-based) of a node and, for a mapping entry, of its key; children by key or index."""

    line: int
    key_line: int | None = None
    children: dict[str | int, "Lines"] = field(default_factory=dict)

    def find(self, path: Sequence[Any]) -> tuple["Lines", int]:
        """The deepest entry along ``path`` and how many path elements it consumed."""
        node, depth = self, 0
        for element in path:
            child = node.children.get(element)
            if child is None and not isinstance(element, str):
                child = node.children.get(str(element))
            if child is None:
                break
            node, depth = child, depth + 1
        return node, depth

    def line_of(self, path: Sequence[Any]) -> int:
        """Line of ``path`` (of its key, for a mapping entry: a block value starts below it), else
        of its deepest existing ancestor."""
        node, _ = self.find(path)
        return node.key_line if node.key_line is not None else node.line


def format_path(path: Sequence[Any]) -> str:
    """``("mechanisms", 0, "id")`` -> ``"mechanisms[0].id"``; the empty path is ``"<top level>"``."""
    text = ""
    for element in path:
        text += f"[{element}]" if isinstance(element, int) else (f".{element}" if text else str(element))
    return text or "<top level>"


def _walk(node: yaml.Node, ancestors: tuple[int, ...], where: str) -> Lines:
    entry = Lines(node.start_mark.line + 1)
    if len(ancestors) > MAX_DEPTH or id(node) in ancestors:  # an alias back to an ancestor: a cycle
        return entry
    ancestors = (*ancestors, id(node))
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            entry.children[i] = _walk(item, ancestors, where)
    elif isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else f"<{key_node.tag}>"
            if key in entry.children:
                first = entry.children[key].key_line
                message = f"duplicate key {key!r} (first given on line {first}); each key may appear once"
                raise SpecError(where, [(key_node.start_mark.line + 1, (), message)])
            child = _walk(value_node, ancestors, where)
            child.key_line = key_node.start_mark.line + 1
            entry.children[key] = child
    return entry


def parse_yaml(text: str, where: str) -> tuple[Any, Lines]:
    """Parse one YAML document with the safe loader and map every field to its line.

    Args:
        text: the YAML source.
        where: how to name the source in messages (usually the file path).

    Returns:
        The data (``None`` for an empty document) and its :class:`Lines`.

    Raises:
        SpecError: malformed YAML or a duplicate key; the message starts with ``where:LINE:``.
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, Lines(1)
        lines = _walk(node, (), where)
        return loader.construct_document(node), lines
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        column = f" (column {mark.column + 1})" if mark is not None else ""
        context = f" {exc.context}" if exc.context else ""
        raise SpecError(where, [(line, (), f"invalid YAML: {exc.problem}{column}{context}")]) from None
    except yaml.YAMLError as exc:
        raise SpecError(where, [(1, (), f"invalid YAML: {exc}")]) from None
    finally:
        loader.dispose()

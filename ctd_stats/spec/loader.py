"""Safe YAML loading that remembers where every key and value came from.

Specs are plain YAML read with :class:`yaml.SafeLoader` only (no Python object tags). Besides the
data, :func:`load_yaml` returns a :class:`YAMLDocument` that maps every path into the document
(``("calibration", "budget")``, ``("simulation", "sizes", 2)``) to the line and column of its value
and of its key, so that validation errors can point at ``spec.yaml:12:11``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ctd_stats.errors import CTDInputError

PathKey = tuple[str | int, ...]


@dataclass(frozen=True)
class Position:
    """A 1-based line and column in a file."""

    line: int
    column: int

    @classmethod
    def from_mark(cls, mark: yaml.Mark | None) -> Position:
        if mark is None:
            return cls(1, 1)
        return cls(mark.line + 1, mark.column + 1)


@dataclass
class YAMLDocument:
    """Parsed YAML data plus the position of every node.

    Attributes
    ----------
    path
        The file the document was read from.
    data
        The plain Python data (dicts, lists, scalars).
    values
        Path into the document -> position of the value node.
    keys
        Path into the document -> position of the mapping key (for mapping entries only).
    """

    path: Path
    data: Any
    values: dict[PathKey, Position] = field(default_factory=dict)
    keys: dict[PathKey, Position] = field(default_factory=dict)

    def resolve(
        self, loc: Sequence[str | int], *, trailing_key: bool = True
    ) -> tuple[PathKey, Position, bool]:
        """Match a validation error location against the document.

        Segments that are not in the data (pydantic inserts union tags such as ``"float"`` or
        ``"parametric"``) are skipped, except a trailing one when ``trailing_key`` is true: that one
        names a missing or unknown key.

        Returns
        -------
        tuple
            ``(path, position, exists)``: the path as it appears in the document (plus a trailing
            missing key, if any), the best position for it, and whether the full path exists.
        """
        node: Any = self.data
        matched: list[str | int] = []
        loc = list(loc)
        for i, seg in enumerate(loc):
            last = i == len(loc) - 1
            if isinstance(node, dict) and seg in node:
                matched.append(seg)
                node = node[seg]
            elif isinstance(node, list) and isinstance(seg, int) and 0 <= seg < len(node):
                matched.append(seg)
                node = node[seg]
            elif last and trailing_key and isinstance(node, dict):
                pos = self.values.get(tuple(matched), Position(1, 1))
                return (*matched, seg), pos, False
            elif isinstance(node, dict):
                continue  # a union tag inserted by pydantic
            else:
                break  # e.g. the scalar 0.3 validated as the list [0.3]
        key = tuple(matched)
        pos = self.values.get(key) or self.keys.get(key) or Position(1, 1)
        return key, pos, True

    def key_position(self, path: PathKey) -> Position | None:
        """Position of the key of a mapping entry (e.g. an unknown key)."""
        return self.keys.get(tuple(path))


def format_location(file: str | os.PathLike[str], pos: Position) -> str:
    """``file:line:column``."""
    return f"{file}:{pos.line}:{pos.column}"


def format_path(path: Sequence[str | int]) -> str:
    """``calibration.budget[0]``-style dotted path (``<root>`` for the empty path)."""
    out = ""
    for seg in path:
        if isinstance(seg, int):
            out += f"[{seg}]"
        else:
            out += ("." if out else "") + str(seg)
    return out or "<root>"


_PLAIN_TAGS = frozenset({"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})


class _Builder:
    """Turns a composed node tree into Python data, recording positions."""

    def __init__(self, loader: yaml.SafeLoader, source: str) -> None:
        self.loader = loader
        self.source = source
        self.values: dict[PathKey, Position] = {}
        self.keys: dict[PathKey, Position] = {}

    def build(self, node: yaml.Node, path: PathKey) -> Any:
        self.values.setdefault(path, Position.from_mark(node.start_mark))
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and node.tag not in _PLAIN_TAGS:
            pos = Position.from_mark(node.start_mark)
            raise CTDInputError(
                f"{format_location(self.source, pos)}: invalid YAML: unsupported tag {node.tag!r} "
                "(only plain mappings, lists and scalars are allowed)"
            )
        if isinstance(node, yaml.MappingNode):
            self.loader.flatten_mapping(node)  # resolve "<<" merge keys
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.loader.construct_object(key_node, deep=True)
                if isinstance(key, list | dict):
                    pos = Position.from_mark(key_node.start_mark)
                    raise CTDInputError(
                        f"{format_location(self.source, pos)}: {format_path(path)}: "
                        "expected a plain key (got a list or mapping as a key)"
                    )
                if key in out:
                    pos = Position.from_mark(key_node.start_mark)
                    raise CTDInputError(
                        f"{format_location(self.source, pos)}: {format_path((*path, key))}: "
                        f"duplicate key {key!r}"
                    )
                self.keys[(*path, key)] = Position.from_mark(key_node.start_mark)
                out[key] = self.build(value_node, (*path, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self.loader.construct_object(node, deep=True)


class _SpecLoader(yaml.SafeLoader):
    """SafeLoader that also reads every float a person writes (YAML 1.2 style: ``1e-3``, ``5E2``).

    PyYAML's YAML 1.1 resolver needs a dot and a signed exponent (``1.0e-3``), so ``delta: 1e-3``
    would arrive as the string ``'1e-3'``. Integers still resolve as integers (their resolver is
    tried first).
    """


_SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)(?:[eE][-+]?[0-9]+)?$"),
    list("-+0123456789."),
)


def parse_yaml(text: str, source: str | os.PathLike[str] = "<string>") -> YAMLDocument:
    """Parse YAML ``text`` safely; errors become :class:`CTDInputError` with ``source:line:col``."""
    name = str(source)
    loader = _SpecLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            data: Any = None
            builder = _Builder(loader, name)
        else:
            builder = _Builder(loader, name)
            data = builder.build(node, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "malformed YAML"
        context = f" ({exc.context})" if exc.context and exc.problem else ""
        raise CTDInputError(
            f"{format_location(name, Position.from_mark(mark))}: invalid YAML: {problem}{context}"
        ) from None
    except yaml.YAMLError as exc:  # pragma: no cover - every parser error is marked in practice
        raise CTDInputError(f"{name}: invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    return YAMLDocument(path=Path(name), data=data, values=builder.values, keys=builder.keys)


def load_yaml(path: str | os.PathLike[str]) -> YAMLDocument:
    """Read and parse a YAML file safely.

    Raises
    ------
    CTDInputError
        If the file is missing or unreadable, not UTF-8, or not valid YAML.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CTDInputError(f"{p}: file not found") from None
    except IsADirectoryError:
        raise CTDInputError(f"{p}: is a directory, expected a YAML file") from None
    except UnicodeDecodeError as exc:
        raise CTDInputError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise CTDInputError(f"{p}: cannot read ({exc.strerror})") from None
    return parse_yaml(text, p)

"""Safe YAML loading that remembers where every key and value came from.

Specs are plain YAML read with :class:`yaml.SafeLoader` only (no Python object tags). Besides the
data, :func:`load_yaml` returns a :class:`YAMLDocument` that maps every path into the document
(``("calibration", "budget")``, ``("simulation", "sizes", 2)``) to the line and column of its value
and of its key, so that validation errors can point at ``spec.yaml:12:11``.

Hostile documents are refused before anything is expanded (:class:`YAMLLimits`): the file must be a
regular file of at most ``CTD_MAX_SPEC_BYTES`` (1 MiB), nesting is limited while the node tree is
composed (before Python's recursion limit could be reached), aliases are counted as they are read,
and the size of the document *with every alias expanded* is computed on the composed graph (each
shared node counted once per reference, in time linear in the graph) before any Python data is
built, so an alias bomb ("billion laughs") costs milliseconds, not gigabytes. A recursive alias is
refused. Each refusal is one line naming the file, the position and the limit.
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
from ctd_stats.input_files import SPEC, read_capped_bytes

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


@dataclass(frozen=True)
class YAMLLimits:
    """What a YAML document may contain (checked before any alias is expanded).

    Attributes
    ----------
    max_depth
        Nesting of lists and mappings (a spec needs fewer than 10 levels).
    max_aliases
        ``*alias`` references in the document.
    max_nodes
        Nodes of the document with every alias expanded (a spec has a few hundred).
    """

    max_depth: int = 64
    max_aliases: int = 1_000
    max_nodes: int = 200_000


DEFAULT_LIMITS = YAMLLimits()


class _LimitExceeded(Exception):
    def __init__(self, message: str, mark: yaml.Mark | None) -> None:
        super().__init__(message)
        self.message, self.mark = message, mark


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


class _LimitedLoader(_SpecLoader):
    """:class:`_SpecLoader` that counts nesting and aliases while composing (see :class:`YAMLLimits`)."""

    limits: YAMLLimits = DEFAULT_LIMITS

    def __init__(self, stream: str, limits: YAMLLimits) -> None:
        super().__init__(stream)
        self.limits = limits
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > self.limits.max_aliases:
                raise _LimitExceeded(
                    f"more than {self.limits.max_aliases} aliases (limit max_aliases)",
                    self.peek_event().start_mark,
                )
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > self.limits.max_depth:
            raise _LimitExceeded(
                f"nested more than {self.limits.max_depth} levels deep (limit max_depth)",
                self.peek_event().start_mark,
            )
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _check_expanded_size(root: yaml.Node, limits: YAMLLimits) -> None:
    """Refuse a composed graph whose alias-expanded tree exceeds ``limits.max_nodes`` or is cyclic.

    Shared nodes (aliases) are sized once and their size reused, so this is linear in the composed
    graph, which the alias and byte limits bound; iterative, so no recursion limit is involved.
    """
    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            total = 1
            for child in _children(node):
                total += size[id(child)]
            if total > limits.max_nodes:
                raise _LimitExceeded(
                    f"more than {limits.max_nodes} nodes once its aliases are expanded "
                    "(limit max_nodes; an alias bomb?)",
                    node.start_mark,
                )
            size[key] = total
            continue
        if key in size:
            continue
        if key in on_path:
            raise _LimitExceeded("a recursive alias (a node that contains itself)", node.start_mark)
        on_path.add(key)
        stack.append((node, True))
        for child in _children(node):
            ckey = id(child)
            if ckey in on_path:
                raise _LimitExceeded(
                    "a recursive alias (a node that contains itself)", child.start_mark
                )
            if ckey not in size:
                stack.append((child, False))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def parse_yaml(
    text: str, source: str | os.PathLike[str] = "<string>", limits: YAMLLimits = DEFAULT_LIMITS
) -> YAMLDocument:
    """Parse YAML ``text`` safely within ``limits``.

    Errors (malformed YAML, a limit exceeded) become :class:`CTDInputError` with ``source:line:col``.
    """
    name = str(source)
    loader = _LimitedLoader(text, limits)
    try:
        node = loader.get_single_node()
        if node is None:
            data: Any = None
            builder = _Builder(loader, name)
        else:
            _check_expanded_size(node, limits)
            builder = _Builder(loader, name)
            data = builder.build(node, ())
    except _LimitExceeded as exc:
        where = format_location(name, Position.from_mark(exc.mark))
        raise CTDInputError(f"{where}: refused YAML: {exc.message}") from None
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


def load_yaml(path: str | os.PathLike[str], limits: YAMLLimits = DEFAULT_LIMITS) -> YAMLDocument:
    """Read and parse a YAML file safely (a regular file of at most ``CTD_MAX_SPEC_BYTES``).

    Raises
    ------
    CTDInputError
        If the file is missing, unreadable, not a regular file, too large, not UTF-8, not valid
        YAML, or over one of ``limits``.
    """
    p = Path(path)
    raw = read_capped_bytes(p, SPEC)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CTDInputError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return parse_yaml(text, p, limits)

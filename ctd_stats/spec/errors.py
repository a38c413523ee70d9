"""Validation errors of a YAML document as located one-line messages (``file:line:col: field: ...``)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from ctd_stats.spec.loader import YAMLDocument, format_location, format_path


def _allowed_keys(
    root: type[BaseModel], loc: Sequence[str | int], variants: Mapping[str, type[BaseModel]]
) -> list[str] | None:
    """Field names of the model at ``loc`` under ``root`` (for 'unknown key' messages)."""
    model: Any = root
    for seg in loc:
        if isinstance(seg, int):
            continue
        fields = getattr(model, "model_fields", None)
        if fields is None:
            return None
        if seg in fields:
            model = _first_model(fields[seg].annotation)
        elif seg in variants:
            model = variants[seg]
        else:
            model = model  # a dict key (e.g. an expert name): keep the value model
        if model is None:
            return None
    fields = getattr(model, "model_fields", None)
    return list(fields) if fields else None


def _first_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _first_model(arg)
        if found is not None:
            return found
    return None


def short_text(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _at_named_field(
    doc: YAMLDocument, path: tuple[str | int, ...], pos: Any, msg: str
) -> tuple[tuple[str | int, ...], Any, str]:
    """A rule checked over a whole block (a model validator) names the field it is about at the
    start of its message (``calibration.groups: ...``): locate the error at that field's line when
    the document has it, and drop the repeated name. Otherwise ``(path, pos, msg)`` unchanged."""
    m = re.match(r"([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*): ", msg)
    if m is None:
        return path, pos, msg
    named = m.group(1).split(".")
    here = format_path(path) if path else ""
    if here and not (m.group(1) == here or m.group(1).startswith(here + ".")):
        return path, pos, msg
    found, at, _ = doc.resolve(named, trailing_key=False)
    if list(found) != named:
        return path, pos, msg
    return tuple(found), at, msg[m.end() :]


def format_validation_error(
    exc: ValidationError,
    doc: YAMLDocument | None,
    file: str,
    prefix: tuple[str | int, ...] = (),
    *,
    root: type[BaseModel] | None = None,
    variants: Mapping[str, type[BaseModel]] | None = None,
) -> str:
    """One line per error: ``file:line:col: field.path: what was expected (got X)``.

    ``root`` is the model validated (its field names complete 'unknown key' messages; ``variants``
    maps tagged-union tags to their models); ``prefix`` is where a sub-block's errors sit in the file.
    """
    lines: list[tuple[tuple[int, int], str]] = []
    seen: set[str] = set()
    for err in exc.errors(include_url=False):
        loc = (*prefix, *err["loc"])
        etype = err["type"]
        if doc is not None:
            path, pos, _ = doc.resolve(loc, trailing_key=etype in ("missing", "extra_forbidden"))
        else:
            path, pos = tuple(loc), None
        if etype == "extra_forbidden":
            key = loc[-1]
            if doc is not None:
                pos = doc.key_position(path) or pos
            allowed = (
                _allowed_keys(root, loc[:-1], variants or {})
                if root is not None and not prefix
                else None
            )
            hint = f" (expected one of: {', '.join(allowed)})" if allowed else ""
            what = f"unknown key {key!r}{hint}"
        elif etype == "missing":
            what = "required field is missing"
        else:
            msg = str(err["msg"])
            for lead in ("Value error, ", "Assertion failed, "):
                if msg.startswith(lead):
                    msg = msg[len(lead) :]
            if msg.startswith("Input should be "):
                msg = "expected " + msg[len("Input should be ") :]
                msg = re.sub(r"^expected (greater|less) than", r"expected a number \1 than", msg)
            if doc is not None:
                path, pos, msg = _at_named_field(doc, path, pos, msg)
            what = msg
            if err.get("input") is not None and etype not in ("union_tag_invalid",):
                if not isinstance(err["input"], dict | list) or "type" in etype:
                    what += f" (got {short_text(err['input'])})"
        where = f"{format_location(file, pos)}: " if pos is not None else f"{file}: "
        line = f"{where}{format_path(path)}: {what}"
        if line not in seen:
            seen.add(line)
            key_sort = (pos.line, pos.column) if pos is not None else (0, 0)
            lines.append((key_sort, line))
    lines.sort(key=lambda t: t[0])
    return "\n".join(text for _, text in lines)

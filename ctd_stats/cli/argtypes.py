"""Typed values and shared options of the ``ctd`` command line (click parameter types).

Each type refuses what the spec or the server would refuse, with the project's one-line wording
(never silently replaced), and tells the shell what to complete (files, folders, choices). A bad
value is a :class:`click.BadParameter`; :func:`ctd_stats.cli.entry.main` prints it as one line,
``ctd: error: --trials: must be a positive integer (≥ 1), got 0``, and exits 2 before the command
runs (so before anything is created).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, TypeVar

import click
from click.shell_completion import CompletionItem

from ctd_stats.engines.local import ENGINES

F = TypeVar("F", bound=Callable[..., Any])


def is_database_url(value: object) -> bool:
    """True for ``postgresql://...`` / ``postgres://...`` (a decision log in PostgreSQL), by the
    audit layer's one rule (:func:`ctd_stats.audit.logs.postgres.postgres_url`)."""
    from ctd_stats.audit.logs.postgres import postgres_url

    return isinstance(value, str) and postgres_url(value) is not None


def _parse_int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        return None


class CountRange(click.IntRange):
    """An integer ≥ 1 with an optional cap (``--repeats``, ``--trials``).

    ``--trials 0`` is an error, not 'use the default'; above the cap the message names the cap.
    """

    name = "integer"

    def __init__(self, maximum: int | None = None, what: str = "") -> None:
        super().__init__(min=1, max=maximum)
        self.what = what

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        number = _parse_int(value)
        if number is None:
            self.fail(f"expected a positive integer, got {value!r}", param, ctx)
        if number < 1:
            self.fail(f"must be a positive integer (≥ 1), got {number}", param, ctx)
        if self.max is not None and number > self.max:
            self.fail(f"at most {self.max:,} {self.what}, got {number:,}", param, ctx)
        return number


class Seed(click.IntRange):
    """A seed: an integer ≥ 0."""

    name = "seed"

    def __init__(self) -> None:
        super().__init__(min=0)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        number = _parse_int(value)
        if number is None:
            self.fail(f"expected a non-negative integer seed, got {value!r}", param, ctx)
        if number < 0:
            self.fail(f"a seed must be ≥ 0, got {number}", param, ctx)
        return number


class Port(click.IntRange):
    """A TCP port, 1-65535 (refused before the server creates anything)."""

    name = "port"

    def __init__(self) -> None:
        super().__init__(min=1, max=65535)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        flag = "--port" if param is None else max(param.opts, key=len)
        number = _parse_int(value)
        if number is None:
            self.fail(f"{flag} {value!r}: not an integer", param, ctx)
        if not 1 <= number <= 65535:
            self.fail(f"{flag} {number}: a TCP port is 1-65535", param, ctx)
        return number


class PositiveFloat(click.ParamType):
    """A finite number > 0 (timeouts, in seconds)."""

    name = "seconds"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"not a number: {value!r}", param, ctx)
        if not (number > 0 and math.isfinite(number)):
            self.fail(f"must be a finite number > 0: {value!r}", param, ctx)
        return number


class Level(click.FloatRange):
    """A test level in the open interval (0, 1)."""

    name = "level"

    def __init__(self) -> None:
        super().__init__(min=0.0, max=1.0, min_open=True, max_open=True)

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"not a number: {value!r}", param, ctx)
        if not 0.0 < number < 1.0:
            self.fail(f"must be in (0, 1): {value!r}", param, ctx)
        return number


class LogLocation(click.ParamType):
    """A decision log: a path (file, folder or glob; checked by the reader, which names the file)
    or a ``postgresql://`` URL, passed through unchanged as text (never made a path)."""

    name = "path|url"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        return str(value)

    def shell_complete(
        self, ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[CompletionItem]:
        if is_database_url(incomplete):
            return []
        return [CompletionItem(incomplete, type="file")]


class AnyPath(click.Path):
    """A path passed on as text, unchecked: the readers and writers check it and name the file in
    their own error (not found, a folder, a FIFO, too large, a file where a folder should be).
    Typed as a path so that the shell completes file names (``folder=True``: folder names)."""

    def __init__(self, *, folder: bool = False) -> None:
        super().__init__(file_okay=not folder, readable=False)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        return os.fsdecode(value) if isinstance(value, bytes) else str(value)


class ExistingFile(click.Path):
    """A file that must exist (a certificate): refused before the command starts."""

    def __init__(self, what: str) -> None:
        super().__init__(exists=True, dir_okay=False, readable=False)
        self.what = what

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = os.fsdecode(value) if isinstance(value, bytes) else str(value)
        if not os.path.exists(text):
            self.fail(f"{text}: {self.what} not found", param, ctx)
        if os.path.isdir(text):
            self.fail(f"{text}: is a folder, not a {self.what} file", param, ctx)
        return text


#: A YAML spec, a table, a monitor bundle...: completed as a file, checked by its reader.
FILE = AnyPath()
#: An output folder, completed as a folder, checked by the output writer.
FOLDER = AnyPath(folder=True)


def json_option(func: F) -> F:
    """``--json``: machine-readable JSON on stdout (also accepted before the command)."""
    return click.option("--json", "json", is_flag=True, help="JSON on stdout")(func)


def output_option(func: F) -> F:
    """``-o/--output DIR``."""
    return click.option(
        "--output",
        "-o",
        type=FOLDER,
        default=None,
        help="output directory (default: the spec's outputs.directory)",
    )(func)


def force_option(func: F) -> F:
    """``--force``."""
    return click.option("--force", is_flag=True, help="write even where another run's outputs are")(
        func
    )


def engine_options(func: F) -> F:
    """``--engine`` and ``--address`` (where the work runs)."""
    func = click.option(
        "--address",
        default=None,
        help="Ray cluster address with --engine ray: auto, HOST:PORT or ray://HOST:PORT "
        "(default: start a small local cluster)",
    )(func)
    return click.option(
        "--engine",
        type=click.Choice(ENGINES),
        default="local",
        help="where the work runs: this process (local, default) or a Ray cluster (ray; "
        "pip install -e '.[ray]')",
    )(func)


def arguments(ctx: click.Context, values: dict[str, Any]) -> SimpleNamespace:
    """The command's parsed values as attributes (``args.spec``...), ``json`` true when given
    before the command (``ctd --json validate``) or after it."""
    root = ctx.find_root().params
    return SimpleNamespace(**{**values, "json": bool(values.get("json") or root.get("json"))})

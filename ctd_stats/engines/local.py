"""Execution engines: where independent pieces of work (simulation chunks, study splits) run.

``local`` (the default) runs the pieces one after the other in this process and never imports Ray.
``ray`` sends each piece to a Ray cluster as a task (:mod:`ctd_stats.engines.ray_engine`, imported only
then). Both engines receive the *same* pieces, each carrying its own seed, and return the results in
submission order, so a computation gives the same numbers whichever engine runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from ctd_stats.errors import CTDInputError

#: Engine names accepted by ``--engine``.
ENGINES: tuple[str, ...] = ("local", "ray")

S = TypeVar("S")
T = TypeVar("T")
R = TypeVar("R")


class Engine(Protocol):
    """Runs ``fn(shared, item)`` for every item; results in item order."""

    name: str

    def map(self, fn: Callable[[S, T], R], shared: S, items: Sequence[T]) -> list[R]:
        """Apply ``fn`` to every item with the shared (read-only) object."""
        ...  # pragma: no cover


class LocalEngine:
    """Runs every piece in this process, in order."""

    name = "local"

    def map(self, fn: Callable[[S, T], R], shared: S, items: Sequence[T]) -> list[R]:
        """Apply ``fn(shared, item)`` to each item, in order."""
        return [fn(shared, item) for item in items]


def get_engine(name: str | None = "local", address: str | None = None) -> Engine:
    """The engine called ``name`` (``None`` = local).

    Parameters
    ----------
    name : {"local", "ray"}, optional
        Engine name.
    address : str, optional
        Ray only: ``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``; default: the cluster this process
        is connected to, else a small local one.

    Raises
    ------
    CTDInputError
        An unknown engine, an address without the Ray engine, or an unreachable cluster.
    """
    if name in (None, "local"):
        if address is not None:
            raise CTDInputError("--address needs --engine ray")
        return LocalEngine()
    if name == "ray":
        from ctd_stats.engines.ray_engine import RayEngine

        return RayEngine(address)
    raise CTDInputError(f"unknown engine {name!r}: expected one of {', '.join(ENGINES)}")


def add_engine_arguments(parser: Any) -> None:
    """Add ``--engine`` and ``--address`` to a sub-command's parser."""
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="local",
        help="where the work runs: this process (local, default) or a Ray cluster (ray; "
        "pip install -e '.[ray]')",
    )
    parser.add_argument(
        "--address",
        default=None,
        help="Ray cluster address with --engine ray: auto, HOST:PORT or ray://HOST:PORT "
        "(default: start a small local cluster)",
    )

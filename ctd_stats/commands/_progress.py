"""Progress bars for long commands: shown on a terminal, silent in CI and when piped."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress_enabled() -> bool:
    """True when stderr is a terminal and the ``CI`` environment variable is unset."""
    return sys.stderr.isatty() and not os.environ.get("CI")


def progress(items: Iterable[T], *, desc: str, total: int | None = None) -> Iterator[T]:
    """Wrap ``items`` in a tqdm bar on stderr when :func:`progress_enabled`, else pass through."""
    if not progress_enabled():
        yield from items
        return
    from tqdm import tqdm

    yield from tqdm(items, desc=desc, total=total, file=sys.stderr, leave=False, dynamic_ncols=True)

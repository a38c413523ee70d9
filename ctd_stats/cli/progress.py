"""Progress for long commands: a bar on a terminal, plain throttled lines when piped or in CI.

On a terminal (stderr is a TTY and ``CI`` is unset) a tqdm bar is drawn. Otherwise, so that a piped
``ctd run ... | tee log`` does not sit silent for minutes, a stage that has run for more than
``QUIET_FOR`` seconds prints one line every ``EVERY`` seconds (count, percent, elapsed, ETA) and a
closing line; short stages print nothing, so one-line error messages stay one line.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

#: Seconds a stage runs before the first plain progress line.
QUIET_FOR = 5.0
#: The command line's ``-q`` (-1), default (0) or ``-v`` (1); see :func:`verbosity`.
VERBOSITY = 0


@contextlib.contextmanager
def verbosity(level: int) -> Iterator[None]:
    """While a command runs: ``-q`` (-1) prints no progress at all, ``-v`` (1) prints plain progress
    lines from the start of every stage (not only of stages longer than ``QUIET_FOR``)."""
    global VERBOSITY
    old, VERBOSITY = VERBOSITY, level
    try:
        yield
    finally:
        VERBOSITY = old


#: Seconds between plain progress lines.
EVERY = 15.0


def progress_enabled() -> bool:
    """True when stderr is a terminal, the ``CI`` environment variable is unset and ``-q`` was not
    given (bars)."""
    return VERBOSITY >= 0 and sys.stderr.isatty() and not os.environ.get("CI")


def quiet_library_progress() -> None:
    """Silence the model libraries' own progress bars when output is not a terminal."""
    if progress_enabled():
        return
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    if "transformers" in sys.modules:
        try:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        except Exception:  # pragma: no cover - a transformers without the helper
            pass


class LineProgress:
    """Throttled plain-text progress on stderr: ``ctd: DESC: 30/200 (15%), 12 s elapsed, ETA 68 s``."""

    def __init__(self, desc: str, total: int | None, *, clock: Any = time.monotonic) -> None:
        self.desc, self.total, self.n = desc, total, 0
        self._clock = clock
        self._start = self._last = clock()
        self._printed = False

    def _line(self, now: float) -> str:
        elapsed = now - self._start
        if self.total:
            eta = elapsed / self.n * (self.total - self.n) if self.n else float("nan")
            return (
                f"ctd: {self.desc}: {self.n}/{self.total} ({100 * self.n / self.total:.0f}%), "
                f"{elapsed:.0f} s elapsed, ETA {eta:.0f} s"
            )
        return f"ctd: {self.desc}: {self.n} done, {elapsed:.0f} s elapsed"

    def update(self, n: int = 1) -> None:
        """Count ``n`` more items; print a line if the stage is long and the last line is old."""
        self.n += n
        if VERBOSITY < 0:
            return
        now = self._clock()
        quiet_for = 0.0 if VERBOSITY > 0 else QUIET_FOR
        if now - self._start >= quiet_for and (not self._printed or now - self._last >= EVERY):
            print(self._line(now), file=sys.stderr, flush=True)
            self._printed, self._last = True, now

    def close(self) -> None:
        """A closing line, if any progress line was printed."""
        if self._printed:
            print(
                f"ctd: {self.desc}: done, {self.n} in {self._clock() - self._start:.0f} s",
                file=sys.stderr,
                flush=True,
            )


def progress_counter(desc: str, total: int | None) -> Any:
    """An object with ``update(n)`` and ``close()``: a tqdm bar on a terminal, else :class:`LineProgress`."""
    if progress_enabled():
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True)
    return LineProgress(desc, total)


def progress(items: Iterable[T], *, desc: str, total: int | None = None) -> Iterator[T]:
    """Wrap ``items``: a tqdm bar on a terminal, throttled plain lines otherwise (see the module)."""
    if progress_enabled():
        from tqdm import tqdm

        yield from tqdm(
            items, desc=desc, total=total, file=sys.stderr, leave=False, dynamic_ncols=True
        )
        return
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    counter = LineProgress(desc, total)
    for item in items:
        yield item
        counter.update()
    counter.close()

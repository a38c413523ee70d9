"""Time estimates printed before the long part of a command (``ctd run``, ``ctd simulate``).

Within the caps of :mod:`ctd_stats.limits` a run can still take hours; a person should learn that in
the first seconds, not after the fact. :class:`SplitEstimate` measures the first splits of the study
(no extra work) and :func:`pilot_estimate` times a small pilot of a simulation; either prints one
line on stderr when the whole run is expected to take at least
:data:`~ctd_stats.limits.ANNOUNCE_AFTER_S` seconds.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from ctd_stats.limits import ANNOUNCE_AFTER_S, format_duration


def announce(line: str) -> None:
    """One ``ctd: ...`` line on stderr (none under ``-q``)."""
    from ctd_stats.cli import progress as _progress

    if _progress.VERBOSITY >= 0:
        print(f"ctd: {line}", file=sys.stderr, flush=True)


class SplitEstimate:
    """``update(n)`` counter for the splits of one expert's study, that announces the whole run's
    duration once, from the rate of the splits measured after the first piece of work (the first
    tick also carries the fixed cost that precedes the splits: the guarantee check).

    Parameters
    ----------
    total
        Splits per expert.
    experts
        Experts studied one after the other (the estimate covers all of them).
    after
        Then ``after(n)`` is called too (a progress bar), if given.
    """

    def __init__(
        self,
        total: int,
        experts: int,
        *,
        after: Callable[[int], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        emit: Callable[[str], None] = announce,
    ) -> None:
        self.total, self.experts, self.after = total, experts, after
        self._clock, self._emit = clock, emit
        self._start = clock()
        self._first: tuple[float, int] | None = None
        self.n = 0
        self.estimate_s: float | None = None

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.after is not None:
            self.after(n)
        if self.estimate_s is not None:
            return
        now = self._clock()
        if self._first is None:
            self._first = (now, self.n)
            if self.n >= self.total:
                self._conclude(now - self._start)
            return
        t1, n1 = self._first
        if now - t1 >= 0.5 or self.n >= self.total:
            rate = (now - t1) / (self.n - n1)
            self._conclude((t1 - self._start) + (self.total - n1) * rate)

    def _conclude(self, per_expert_s: float) -> None:
        self.estimate_s = per_expert_s * self.experts
        if self.estimate_s >= ANNOUNCE_AFTER_S:
            who = f" × {self.experts} experts" if self.experts > 1 else ""
            self._emit(
                f"estimated time: about {format_duration(self.estimate_s)} for {self.total:,} splits"
                f"{who} (measured on the first {self.n}; cap: evaluation.repeats / --repeats)"
            )


def pilot_estimate(
    pilot: Callable[[int], Any],
    pilot_units: int,
    total_units: int,
    what: str,
    *,
    clock: Callable[[], float] = time.monotonic,
    emit: Callable[[str], None] = announce,
) -> float:
    """Time ``pilot(pilot_units)``, scale it to ``total_units`` and announce it if long; the estimate."""
    t0 = clock()
    pilot(pilot_units)
    seconds = (clock() - t0) / max(pilot_units, 1) * total_units
    if seconds >= ANNOUNCE_AFTER_S:
        emit(
            f"estimated time: about {format_duration(seconds)} for {total_units:,} {what} "
            f"(timed on a pilot of {pilot_units:,})"
        )
    return seconds

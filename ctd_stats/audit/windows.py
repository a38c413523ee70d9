"""Per-window and per-group delegation rates with exact (Clopper–Pearson) intervals.

These tables are *descriptive*: each interval has confidence ``1 - alpha`` on its own, with no
correction for the number of windows or groups, so some windows of a compliant deployment will lie
above the budget by chance. The verdict of an audit never rests on them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ctd_stats.errors import CTDInputError
from ctd_stats.intervals import clopper_pearson

#: Most windows an audit tracks (a finer window is a bad-input error).
MAX_WINDOWS = 100_000

_UNITS_NS = {
    "s": 10**9,
    "sec": 10**9,
    "second": 10**9,
    "seconds": 10**9,
    "m": 60 * 10**9,
    "min": 60 * 10**9,
    "minute": 60 * 10**9,
    "minutes": 60 * 10**9,
    "h": 3600 * 10**9,
    "hr": 3600 * 10**9,
    "hour": 3600 * 10**9,
    "hours": 3600 * 10**9,
    "d": 86400 * 10**9,
    "day": 86400 * 10**9,
    "days": 86400 * 10**9,
    "w": 7 * 86400 * 10**9,
    "week": 7 * 86400 * 10**9,
    "weeks": 7 * 86400 * 10**9,
}
_WINDOW_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$")


@dataclass(frozen=True)
class WindowSpec:
    """``kind="rows"`` (``size`` decisions per window), ``"time"`` (``size`` ns, epoch-aligned) or
    ``"auto"`` (about 40 windows of equal row counts)."""

    kind: str
    size: int
    text: str


def parse_window(text: str | None) -> WindowSpec:
    """Parse ``"1000rows"``, ``"1h"``, ``"30min"``, ``"15s"``, ``"1d"``, ``"2w"`` or ``"auto"``/None."""
    if text is None or text.strip().lower() == "auto":
        return WindowSpec("auto", 0, "auto")
    m = _WINDOW_RE.match(text.lower())
    if m is None:
        raise CTDInputError(f"--window {text!r}: expected e.g. 1000rows, 30min, 1h, 1d or auto")
    value, unit = float(m.group(1)), m.group(2)
    if unit in ("row", "rows"):
        if value < 1 or value != int(value):
            raise CTDInputError(f"--window {text!r}: the number of rows must be a positive integer")
        return WindowSpec("rows", int(value), text)
    if unit not in _UNITS_NS:
        raise CTDInputError(f"--window {text!r}: unknown unit {unit!r} (rows, s, min, h, d, w)")
    ns = round(value * _UNITS_NS[unit])
    if ns <= 0:
        raise CTDInputError(f"--window {text!r}: the width must be positive")
    return WindowSpec("time", ns, text)


class WindowAccumulator:
    """Counts decisions and delegations per window over chunks that arrive in time order."""

    def __init__(self, spec: WindowSpec) -> None:
        self.spec = spec
        self.ids: list[int] = []
        self.n: list[int] = []
        self.k: list[int] = []
        self.first_ts: list[int] = []
        self.last_ts: list[int] = []

    def update(self, start_row: int, delegated: NDArray[np.bool_], ts: NDArray[np.int64]) -> None:
        """Add a chunk; ``start_row`` is the 0-based position of its first row in time order."""
        m = delegated.size
        if m == 0 or self.spec.kind == "auto":
            return
        if self.spec.kind == "rows":
            wid = (start_row + np.arange(m, dtype=np.int64)) // self.spec.size
        else:
            wid = ts // self.spec.size
        cuts = np.flatnonzero(np.diff(wid)) + 1
        starts = np.concatenate(([0], cuts))
        ends = np.concatenate((cuts, [m]))
        csum = np.concatenate(([0], np.cumsum(delegated, dtype=np.int64)))
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            w = int(wid[s])
            n, k = e - s, int(csum[e] - csum[s])
            if self.ids and self.ids[-1] == w:
                self.n[-1] += n
                self.k[-1] += k
                self.last_ts[-1] = int(ts[e - 1])
            else:
                if len(self.ids) >= MAX_WINDOWS:
                    raise CTDInputError(
                        f"--window {self.spec.text!r} gives more than {MAX_WINDOWS} windows; use a wider window"
                    )
                self.ids.append(w)
                self.n.append(n)
                self.k.append(k)
                self.first_ts.append(int(ts[s]))
                self.last_ts.append(int(ts[e - 1]))


class GroupAccumulator:
    """Counts decisions and delegations per group code."""

    def __init__(self) -> None:
        self.n = np.zeros(0, dtype=np.int64)
        self.k = np.zeros(0, dtype=np.int64)

    def update(self, codes: NDArray[np.int32], delegated: NDArray[np.bool_]) -> None:
        if codes.size == 0:
            return
        size = max(int(codes.max()) + 1, self.n.size)
        n = np.bincount(codes, minlength=size)
        k = np.bincount(codes, weights=delegated, minlength=size).astype(np.int64)
        if self.n.size < size:
            self.n = np.concatenate((self.n, np.zeros(size - self.n.size, dtype=np.int64)))
            self.k = np.concatenate((self.k, np.zeros(size - self.k.size, dtype=np.int64)))
        self.n += n
        self.k += k


def rate_table(
    n: NDArray[np.int64], k: NDArray[np.int64], alpha: float, budget: float
) -> dict[str, NDArray[np.float64] | NDArray[np.bool_]]:
    """Rates, two-sided Clopper–Pearson intervals, and ``above`` = the whole interval is above budget."""
    n = np.asarray(n, dtype=np.int64)
    k = np.asarray(k, dtype=np.int64)
    lo, hi = clopper_pearson(k, n, alpha)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(n > 0, k / np.maximum(n, 1), np.nan)
    return {"rate": rate, "ci_low": lo, "ci_high": hi, "above": lo > budget}

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

from ctd_stats.audit.result import RateRow, format_timestamp
from ctd_stats.errors import CTDInputError
from ctd_stats.stats.intervals import clopper_pearson

#: Most windows an audit tracks (a finer window is a bad-input error).
MAX_WINDOWS = 100_000
#: About how many equal-count windows ``window="auto"`` makes.
_AUTO_WINDOWS = 40

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


def window_rows(
    windows: WindowAccumulator,
    *,
    trace_t: list[int],
    trace_k: list[int],
    trace_ts: list[int],
    first_ts: int | None,
    tkind: str,
    alpha: float,
    budget: float,
) -> list[RateRow]:
    """Per-window rows of the audit. ``trace_*`` are the cumulative counts and timestamps of the
    audit's trace, ending at the last row; ``window="auto"`` cuts it into about 40 equal-count
    windows, the other kinds use what ``windows`` counted."""
    kind = windows.spec.kind
    if kind == "auto":
        t, k, ts = np.asarray(trace_t), np.asarray(trace_k), trace_ts
        count = min(_AUTO_WINDOWS, len(t))
        ends = sorted(set(np.round(np.linspace(0, len(t) - 1, count + 1)[1:]).astype(int).tolist()))
        te = t[ends]
        ke = k[ends]
        n = np.diff(np.concatenate(([0], te)))
        kk = np.diff(np.concatenate(([0], ke)))
        starts_ts = [first_ts or 0] + [ts[e] for e in ends[:-1]]
        ends_ts = [ts[e] for e in ends]
        labels = [
            f"rows {a:,}–{b - 1:,}" for a, b in zip(np.concatenate(([0], te[:-1])), te, strict=True)
        ]
    else:
        w = windows
        n, kk = np.asarray(w.n, dtype=np.int64), np.asarray(w.k, dtype=np.int64)
        starts_ts, ends_ts = w.first_ts, w.last_ts
        if kind == "rows":
            size = w.spec.size
            labels = [
                f"rows {i * size:,}–{i * size + c - 1:,}" for i, c in zip(w.ids, w.n, strict=True)
            ]
        else:
            labels = [str(format_timestamp(i * w.spec.size, tkind)) for i in w.ids]
    tab = rate_table(n, kk, alpha, budget)
    return [
        RateRow(
            label=labels[i],
            start=format_timestamp(int(starts_ts[i]), tkind),
            end=format_timestamp(int(ends_ts[i]), tkind),
            n=int(n[i]),
            k=int(kk[i]),
            rate=float(tab["rate"][i]),
            ci_low=float(tab["ci_low"][i]),
            ci_high=float(tab["ci_high"][i]),
            above_budget=bool(tab["above"][i]),
        )
        for i in range(len(n))
    ]


def group_rows(
    groups: GroupAccumulator, names: list[str], alpha: float, budget: float
) -> list[RateRow]:
    """Per-group rows of the audit, in the order of the group codes (first appearance)."""
    if not groups.n.size:
        return []
    g = rate_table(groups.n, groups.k, alpha, budget)
    return [
        RateRow(
            label=name,
            start=None,
            end=None,
            n=int(groups.n[i]),
            k=int(groups.k[i]),
            rate=float(g["rate"][i]),
            ci_low=float(g["ci_low"][i]),
            ci_high=float(g["ci_high"][i]),
            above_budget=bool(g["above"][i]),
        )
        for i, name in enumerate(names)
    ]


def rate_row_warnings(
    windows: list[RateRow], groups: list[RateRow], alpha: float, warnings: list[str]
) -> None:
    """Append a warning for windows and for groups whose whole interval lies above the budget."""
    conf = 1 - alpha
    n_above_w = sum(w.above_budget for w in windows)
    if n_above_w:
        warnings.append(
            f"{n_above_w} of {len(windows)} windows have their whole {100 * conf:g}% interval above the "
            "budget (descriptive, no multiplicity correction)"
        )
    n_above_g = sum(g_.above_budget for g_ in groups)
    if n_above_g:
        warnings.append(
            f"{n_above_g} of {len(groups)} groups have their whole {100 * conf:g}% interval above the budget "
            "(descriptive; the certificate controls the overall rate, not per-group rates)"
        )

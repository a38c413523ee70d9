"""Parsed log chunks: strict parsing of each raw chunk, and time-ordered replay for the monitor.

:func:`parse_frame` is the one parser of raw log rows (timestamps, scores, decisions); the local
reader (:func:`parse_chunks`) and the Ray workers (:func:`ctd_stats.audit.logs.ray_logs.parse_block`)
both call it.

Cost: one pass over the log for :func:`parse_chunks`; :func:`time_sorted_chunks` holds the parsed
columns of the whole log (int64 + bool + float64 per row) to sort them by time once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from ctd_stats.audit.logs.reader import (
    GroupCoder,
    LogColumns,
    LogReader,
    parse_decisions,
    parse_scores,
    parse_timestamps,
)
from ctd_stats.errors import CTDInputError


@dataclass
class LogChunk:
    """Parsed rows of a log: row numbers, timestamps (int64 ns), decisions, scores, group codes."""

    rows: NDArray[np.int64]  # original 0-based row numbers
    ts: NDArray[np.int64]
    delegated: NDArray[np.bool_]
    score: NDArray[np.float64] | None
    group: NDArray[np.int32] | None


class RowSource(Protocol):
    """What error messages need from where rows came from: a name and a row locator."""

    name: str

    def where(self, row: int) -> str: ...


class TimestampKind:
    """The timestamp kind of a log (``datetime`` or ``numeric``), fixed by its first chunk.

    Every later chunk must have the same kind; :meth:`observe` raises otherwise.
    """

    def __init__(self) -> None:
        self._value: str | None = None

    @property
    def value(self) -> str:
        if self._value is None:
            raise CTDInputError("the log has no rows, so no timestamp kind")
        return self._value

    def observe(
        self, tkind: str, source: RowSource, column: str, offset: int | None = None
    ) -> None:
        """Record ``tkind`` (first call) or check it against the kind recorded before."""
        if self._value is None:
            self._value = tkind
        elif self._value != tkind:
            where = f" ({source.where(offset)})" if offset is not None else ""
            raise CTDInputError(
                f"{source.name}: column {column!r} mixes {self._value} and {tkind} timestamps{where}"
            )


@dataclass(frozen=True)
class ParsedRows:
    """One raw frame parsed: int64 timestamps and their kind, decisions, scores (or None)."""

    ts: NDArray[np.int64]
    tkind: str
    delegated: NDArray[np.bool_]
    score: NDArray[np.float64] | None


def parse_frame(
    df: Any, offset: int, source: RowSource, cols: LogColumns, threshold: float
) -> ParsedRows:
    """Parse raw log rows ``df`` (first row = row ``offset`` of ``source``) strictly.

    Without a decision column the decisions are ``score > threshold`` (a missing score is then an
    error naming the row).
    """
    ts, tkind = parse_timestamps(df[cols.timestamp], offset, source, cols.timestamp)  # type: ignore[arg-type]
    score = parse_scores(df[cols.score], offset, source, cols.score) if cols.score else None  # type: ignore[arg-type]
    if cols.decision is not None:
        dec = parse_decisions(df[cols.decision], offset, source, cols.decision)  # type: ignore[arg-type]
    else:
        assert score is not None
        missing = np.isnan(score)
        if missing.any():
            i = int(np.flatnonzero(missing)[0])
            raise CTDInputError(
                f"{source.name}: {source.where(offset + i)}: score is missing and there is no "
                "decision column to say what happened"
            )
        dec = score > threshold
    return ParsedRows(ts, tkind, dec, score)


def parse_chunks(
    reader: LogReader,
    cols: LogColumns,
    threshold: float,
    coder: GroupCoder,
    chunk_rows: int,
    kind: TimestampKind,
) -> Iterator[LogChunk]:
    """Parse the log chunk by chunk, in file order; ``kind`` records the timestamp kind."""
    offset = 0
    for df in reader.chunks(cols.names(), chunk_rows):
        m = len(df)
        if m == 0:
            continue
        parsed = parse_frame(df, offset, reader, cols, threshold)
        kind.observe(parsed.tkind, reader, cols.timestamp, offset)
        group = coder.codes(df[cols.group]) if cols.group else None
        rows = np.arange(offset, offset + m, dtype=np.int64)
        yield LogChunk(rows, parsed.ts, parsed.delegated, parsed.score, group)
        offset += m


def time_sorted_chunks(
    reader: LogReader,
    cols: LogColumns,
    threshold: float,
    coder: GroupCoder,
    chunk_rows: int,
    kind: TimestampKind,
) -> Iterator[LogChunk]:
    """The parsed log loaded whole, sorted stably by timestamp, replayed in chunks of ``chunk_rows``."""
    parts = parse_chunks(reader, cols, threshold, coder, chunk_rows, kind)
    return sort_by_time(parts, chunk_rows)


def sort_by_time(parts: Iterable[LogChunk], chunk_rows: int) -> Iterator[LogChunk]:
    """Concatenate parsed chunks (in row order), sort them stably by timestamp, replay in chunks."""
    got = list(parts)
    if not got:
        return
    has_score, has_group = got[0].score is not None, got[0].group is not None
    allc = LogChunk(
        np.concatenate([p.rows for p in got]),
        np.concatenate([p.ts for p in got]),
        np.concatenate([p.delegated for p in got]),
        np.concatenate([p.score for p in got if p.score is not None]) if has_score else None,
        np.concatenate([p.group for p in got if p.group is not None]) if has_group else None,
    )
    del got
    order = np.argsort(allc.ts, kind="stable")
    for s in range(0, order.size, chunk_rows):
        o = order[s : s + chunk_rows]
        yield LogChunk(
            allc.rows[o],
            allc.ts[o],
            allc.delegated[o],
            allc.score[o] if allc.score is not None else None,
            allc.group[o] if allc.group is not None else None,
        )

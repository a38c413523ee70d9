"""Parsed log chunks: strict parsing of each raw chunk, and time-ordered replay for the monitor.

Cost: one pass over the log for :func:`parse_chunks`; :func:`time_sorted_chunks` holds the parsed
columns of the whole log (int64 + bool + float64 per row) to sort them by time once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

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


def parse_chunks(
    reader: LogReader,
    cols: LogColumns,
    threshold: float,
    coder: GroupCoder,
    chunk_rows: int,
    kind: list[str],
) -> Iterator[LogChunk]:
    """Parse the log chunk by chunk, in file order; ``kind`` receives the timestamp kind.

    Without a decision column the decisions are ``score > threshold`` (a missing score is then an
    error).
    """
    offset = 0
    for df in reader.chunks(cols.names(), chunk_rows):
        m = len(df)
        if m == 0:
            continue
        ts, tkind = parse_timestamps(df[cols.timestamp], offset, reader, cols.timestamp)
        if not kind:
            kind.append(tkind)
        elif kind[0] != tkind:
            raise CTDInputError(
                f"{reader.name}: column {cols.timestamp!r} mixes {kind[0]} and {tkind} timestamps "
                f"({reader.where(offset)})"
            )
        score = parse_scores(df[cols.score], offset, reader, cols.score) if cols.score else None
        if cols.decision is not None:
            dec = parse_decisions(df[cols.decision], offset, reader, cols.decision)
        else:
            assert score is not None
            missing = np.isnan(score)
            if missing.any():
                i = int(np.flatnonzero(missing)[0])
                raise CTDInputError(
                    f"{reader.name}: {reader.where(offset + i)}: score is missing and there is no "
                    "decision column to say what happened"
                )
            dec = score > threshold
        group = coder.codes(df[cols.group]) if cols.group else None
        rows = np.arange(offset, offset + m, dtype=np.int64)
        yield LogChunk(rows, ts, dec, score, group)
        offset += m


def time_sorted_chunks(
    reader: LogReader,
    cols: LogColumns,
    threshold: float,
    coder: GroupCoder,
    chunk_rows: int,
    kind: list[str],
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


ChunkSource = Callable[[], Iterator[LogChunk]]


def chunk_sources(
    reader: LogReader,
    cols: LogColumns,
    threshold: float,
    coder: GroupCoder,
    chunk_rows: int,
    kind: list[str],
    engine: str = "local",
    address: str | None = None,
) -> tuple[ChunkSource, ChunkSource]:
    """The log's parsed chunks in file order, and (for a second pass) in time order.

    ``engine="ray"`` reads and parses a Parquet log on a Ray cluster
    (:mod:`ctd_stats.audit.logs.ray_logs`); the chunks are the same rows, parsed the same way.
    """
    if engine == "ray":
        from ctd_stats.audit.logs.ray_logs import ray_chunks

        def first() -> Iterator[LogChunk]:
            return ray_chunks(reader, cols, threshold, coder, chunk_rows, kind, address)

        return first, lambda: sort_by_time(first(), chunk_rows)
    if engine != "local":
        raise CTDInputError(f"unknown engine {engine!r}: expected local or ray")
    return (
        lambda: parse_chunks(reader, cols, threshold, coder, chunk_rows, kind),
        lambda: time_sorted_chunks(reader, cols, threshold, coder, chunk_rows, kind),
    )

"""Where an audit's parsed chunks come from: the local reader, or a Ray cluster for Parquet logs."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from ctd_stats.audit.logs.chunks import (
    LogChunk,
    TimestampKind,
    parse_chunks,
    sort_by_time,
    time_sorted_chunks,
)
from ctd_stats.audit.logs.ray_logs import ray_chunks
from ctd_stats.audit.logs.reader import GroupCoder, LogColumns, LogReader
from ctd_stats.errors import CTDInputError

ChunkSource = Callable[[], Iterator[LogChunk]]


def chunk_sources(
    reader: LogReader,
    cols: LogColumns,
    threshold: float,
    coder: GroupCoder,
    chunk_rows: int,
    kind: TimestampKind,
    engine: str = "local",
    address: str | None = None,
) -> tuple[ChunkSource, ChunkSource]:
    """The log's parsed chunks in file order, and (for a second pass) in time order.

    ``engine="ray"`` reads and parses a Parquet log on a Ray cluster
    (:mod:`ctd_stats.audit.logs.ray_logs`); the chunks are the same rows, parsed the same way.
    """
    if engine == "ray":

        def first() -> Iterator[LogChunk]:
            return ray_chunks(reader, cols, threshold, coder, chunk_rows, kind, address)

        return first, lambda: sort_by_time(first(), chunk_rows)
    if engine != "local":
        raise CTDInputError(f"unknown engine {engine!r}: expected local or ray")
    return (
        lambda: parse_chunks(reader, cols, threshold, coder, chunk_rows, kind),
        lambda: time_sorted_chunks(reader, cols, threshold, coder, chunk_rows, kind),
    )

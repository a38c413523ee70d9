"""``ctd audit --engine ray``: read and parse a partitioned Parquet log on a Ray cluster.

The heavy part of an audit of a large log is reading and parsing it (Parquet decoding, ISO-8601
timestamps, strict decision parsing). Here a Ray Data ``map_batches`` stage reads the parts (a
folder, a glob, or one file; one part per block, only the audited columns) and parses them on the
cluster into the
audit's per-row sufficient data: int64 timestamp, delegated bit, score, group label. What comes
back to the driver is about 20 bytes a row.

**Time order.** The sequential monitor, the trace and the windows need the decisions in time
order, so the driver folds the parsed blocks into the same accumulator as the local audit, in
dataset order (Ray Data with ``preserve_order``: parts sorted by path, rows in file order, i.e.
exactly the local engine's row order). If the timestamps decrease somewhere, the parsed columns
are sorted stably by timestamp and folded again, as the local engine does. Counts, rate,
intervals, monitor, windows, groups, drift and verdict are therefore identical to the local audit.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from ctd_stats.audit.logs.chunks import LogChunk, TimestampKind, parse_frame
from ctd_stats.audit.logs.reader import GroupCoder, LogColumns, LogReader
from ctd_stats.errors import CTDInputError

_KINDS = ("datetime", "numeric")


class _Part:
    """Stands in for a :class:`LogReader` in the workers' messages: names the Parquet part."""

    def __init__(self, name: str) -> None:
        self.name = name

    def where(self, row: int) -> str:
        return f"row {row} of this part"


def parse_block(df: pd.DataFrame, cols: LogColumns, threshold: float) -> pd.DataFrame:
    """Parse one block of raw log rows into ``ts``, ``kind``, ``delegated``, ``score``, ``group``.

    Runs on the workers; raises :class:`CTDInputError` naming the part on a bad value.
    """
    part = _Part(str(df["path"].iloc[0]) if "path" in df.columns and len(df) else "<parquet part>")
    parsed = parse_frame(df, 0, part, cols, threshold)
    out = pd.DataFrame(
        {"ts": parsed.ts, "kind": np.full(len(df), _KINDS.index(parsed.tkind), dtype=np.int8)}
    )
    out["delegated"] = parsed.delegated
    if parsed.score is not None:
        out["score"] = parsed.score
    if cols.group is not None:
        g = df[cols.group]
        out["group"] = [None if pd.isna(v) else str(v) for v in g.astype(object)]
    return out


def read_parts(batch: pd.DataFrame, cols: LogColumns, threshold: float) -> pd.DataFrame:
    """Read and parse the Parquet parts named in ``batch["path"]`` (in order); runs on the workers."""
    import pyarrow.parquet as pq

    out = []
    for path in batch["path"]:
        try:
            table = pq.read_table(path, columns=cols.names())
        except Exception as exc:  # pyarrow raises several types for corrupt files / missing columns
            raise CTDInputError(
                f"{path}: not a readable Parquet part with the log's columns ({exc})"
            ) from exc
        df = table.to_pandas()
        df["path"] = path
        out.append(parse_block(df, cols, threshold))
    return pd.concat(out, ignore_index=True)


def _input_error(exc: BaseException) -> CTDInputError | None:
    """The :class:`CTDInputError` a worker raised, unwrapped from Ray's exception chain."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    found: list[BaseException] = []
    while todo:
        cur = todo.pop()
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        if isinstance(cur, CTDInputError):
            found.append(cur)
        todo += [
            c
            for c in (getattr(cur, "cause", None), cur.__cause__, cur.__context__)
            if isinstance(c, BaseException)
        ]
    plain = [e for e in found if type(e) is CTDInputError]
    if plain:
        return CTDInputError(str(plain[-1]))
    match = re.search(r"CTDInputError: (.+)", str(exc))
    return CTDInputError(match.group(1).strip()) if match else None


def ray_chunks(
    reader: LogReader,
    cols: LogColumns,
    threshold: float,
    coder: GroupCoder,
    chunk_rows: int,
    kind: TimestampKind,
    address: str | None = None,
) -> Iterator[LogChunk]:
    """Parsed chunks of a Parquet log, read and parsed on Ray, in the local engine's row order."""
    if reader.format != "parquet":
        raise CTDInputError(
            f"{reader.name}: --engine ray audits Parquet logs (a file, a folder of parts or a glob); "
            f"this log is {reader.format}"
        )
    from ctd_stats.engines.ray_engine import connect

    ray = connect(address)
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    files = [str(p.resolve()) for p in (reader.parts or [reader.path])]
    # One block per part (read on a worker with pyarrow, only the audited columns): Ray Data's own
    # path resolution is bypassed, the parts are already listed and sorted.
    ds = ray.data.from_items([{"path": f} for f in files], override_num_blocks=len(files))
    ds = ds.map_batches(
        read_parts,
        fn_kwargs={"cols": cols, "threshold": threshold},
        batch_format="pandas",
        batch_size=1,
    )
    offset = 0
    try:
        for df in ds.iter_batches(batch_format="pandas", batch_size=chunk_rows):
            m = len(df)
            if m == 0:
                continue
            yield _chunk(df, offset, cols, coder, kind, reader)
            offset += m
    except Exception as exc:
        err = _input_error(exc)
        if err is None:
            raise
        raise err from None


def _chunk(
    df: pd.DataFrame,
    offset: int,
    cols: LogColumns,
    coder: GroupCoder,
    kind: TimestampKind,
    reader: Any,
) -> LogChunk:
    for k in np.unique(df["kind"].to_numpy()):
        kind.observe(_KINDS[int(k)], reader, cols.timestamp)
    return LogChunk(
        np.arange(offset, offset + len(df), dtype=np.int64),
        df["ts"].to_numpy(dtype=np.int64),
        df["delegated"].to_numpy(dtype=bool),
        df["score"].to_numpy(dtype=np.float64) if cols.score else None,
        coder.codes(df["group"]) if cols.group else None,
    )

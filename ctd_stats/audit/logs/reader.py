"""Reading deployment decision logs in bounded-memory chunks, and parsing their columns strictly.

A log is JSONL, CSV or Parquet (optionally ``.gz`` for CSV/JSONL), a partitioned Parquet dataset (a
folder or a glob of parts, read as one log in path order: :func:`ctd_stats.table.read.parquet_parts`), a SQLite database (``.db``,
``.sqlite``, ``.sqlite3``, or any file with the SQLite header: the table ``decisions``, or the only
table, read in ``rowid`` order through a read-only connection; this is the decision log that
``ctd serve`` writes), a PostgreSQL URL (``postgresql://user@host:port/dbname``: the table
``decisions`` that ``ctd serve --db postgresql://...`` writes, in commit order:
:mod:`ctd_stats.audit.logs.postgres`), or an in-memory :class:`pandas.DataFrame`. Columns (names configurable, the first matching alias is used otherwise):

==============  ====================================  =====================================================
role            default names                         content
==============  ====================================  =====================================================
timestamp       ``timestamp``, ``ts``, ``time``        ISO-8601 strings / datetimes (naive = UTC), or numbers
                                                       read as **seconds** since the epoch. Required.
score           ``dv_score``, ``score``                the deferral score d(x) the threshold is applied to
decision        ``delegated``, ``decision``,           true/false, 0/1, "true"/"false", "0"/"1"
                ``delegate``
group           ``group``                              optional, any value (analysis only)
==============  ====================================  =====================================================

At least one of score and decision is required. Parquet is read with
:meth:`pyarrow.parquet.ParquetFile.iter_batches` (memory ~ one row group + one batch), CSV with
``pandas.read_csv(chunksize=...)``, JSONL with ``pandas.read_json(lines=True, chunksize=...)``.
Rows are numbered from 0 in file order; messages add the file line for CSV (row + 2) and JSONL
(row + 1, assuming no blank lines).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ctd_stats.audit.logs.postgres import (
    postgres_chunks,
    postgres_layout,
    postgres_url,
    redact,
)
from ctd_stats.audit.logs.schema import (
    DECISION_ALIASES,
    GROUP_ALIASES,
    SCORE_ALIASES,
    TIMESTAMP_ALIASES,
)
from ctd_stats.audit.logs.sqlite import (
    is_sqlite,
    sqlite_chunks,
    sqlite_layout,
)
from ctd_stats.errors import CTDInputError
from ctd_stats.io import first_bad_json_line
from ctd_stats.table.read import parquet_parts

#: Most distinct groups an audit tracks.
MAX_GROUPS = 10_000

_DECISION_WORDS: dict[Any, bool] = {
    "true": True,
    "false": False,
    "1": True,
    "0": False,
    "1.0": True,
    "0.0": False,
    "t": True,
    "f": False,
}


def detect_format(path: str | os.PathLike[str]) -> str:
    """``"parquet"``, ``"csv"`` or ``"jsonl"`` from the file name (``.gz`` allowed for text formats)."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] in (".gz", ".bz2", ".xz", ".zst"):
        suffixes = suffixes[:-1]
    last = suffixes[-1] if suffixes else ""
    if last in (".parquet", ".pq"):
        return "parquet"
    if last in (".csv", ".tsv"):
        return "csv"
    if last in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if last in (".db", ".sqlite", ".sqlite3") or is_sqlite(path):
        return "sqlite"
    raise CTDInputError(
        f"{path}: cannot tell the log format from the extension {last or '(none)'!r}; "
        "use .jsonl, .csv, .parquet or a SQLite database (.db)"
    )


@dataclass(frozen=True)
class LogColumns:
    """The columns an audit reads; ``None`` = absent."""

    timestamp: str
    score: str | None
    decision: str | None
    group: str | None

    def names(self) -> list[str]:
        return [c for c in (self.timestamp, self.score, self.decision, self.group) if c is not None]


def resolve_columns(
    available: Sequence[str],
    *,
    source: str,
    timestamp: str | None = None,
    score: str | None = None,
    decision: str | None = None,
    group: str | None = None,
) -> LogColumns:
    """Pick the log's columns: explicit names must exist; otherwise the first present alias is used."""
    avail = list(available)

    def pick(explicit: str | None, aliases: tuple[str, ...], role: str) -> str | None:
        if explicit is not None:
            if explicit not in avail:
                raise CTDInputError(
                    f"{source}: {role} column {explicit!r} not found (columns: {', '.join(map(str, avail))})"
                )
            return explicit
        return next((a for a in aliases if a in avail), None)

    ts = pick(timestamp, TIMESTAMP_ALIASES, "timestamp")
    sc = pick(score, SCORE_ALIASES, "score")
    dc = pick(decision, DECISION_ALIASES, "decision")
    gr = pick(group, GROUP_ALIASES, "group")
    shown = ", ".join(map(str, avail)) or "(none)"
    if ts is None:
        raise CTDInputError(
            f"{source}: missing timestamp column (looked for {', '.join(TIMESTAMP_ALIASES)}; columns: {shown})"
        )
    if sc is None and dc is None:
        raise CTDInputError(
            f"{source}: needs a score column ({', '.join(SCORE_ALIASES)}) or a decision column "
            f"({', '.join(DECISION_ALIASES)}); columns: {shown}"
        )
    return LogColumns(timestamp=ts, score=sc, decision=dc, group=gr)


class LogReader:
    """Chunked reader over a log file or a DataFrame.

    Parameters
    ----------
    source : path or pandas.DataFrame
        The log.
    fmt : {"parquet", "csv", "jsonl"}, optional
        Overrides detection from the file extension.
    """

    def __init__(
        self, source: str | os.PathLike[str] | pd.DataFrame, fmt: str | None = None
    ) -> None:
        self._frame: pd.DataFrame | None = None
        self.num_rows: int | None = None
        if isinstance(source, pd.DataFrame):
            self._frame = source
            self.name = "<DataFrame>"
            self.format = "frame"
            self.columns = [str(c) for c in source.columns]
            self.num_rows = len(source)
            self.line_offset: int | None = None
            return
        self.parts: list[Path] = []
        url = postgres_url(source)
        if url is not None:  # a PostgreSQL log (ctd serve --db postgresql://...)
            self.url, self.name, self.format, self.line_offset = url, redact(url), "postgres", None
            self.columns, self.num_rows = postgres_layout(url)
            return
        path = Path(source)
        self.name = str(path)
        if path.is_dir() or any(ch in str(source) for ch in "*?["):
            self.parts = parquet_parts(source)
            self.path, self.format, self.line_offset = self.parts[0], "parquet", None
            self.columns = self._read_columns()
            return
        if not path.exists():
            raise CTDInputError(f"{path}: log file not found")
        from ctd_stats.input_files import LOG, check_regular_file

        check_regular_file(path, LOG)  # no FIFO (would block) or device (/dev/zero never ends)
        self.path = path
        self.format = fmt or detect_format(path)
        self.line_offset = {"csv": 2, "jsonl": 1}.get(self.format)
        if path.stat().st_size == 0:
            raise CTDInputError(f"{path}: the log is empty")
        self.columns = self._read_columns()

    def _read_columns(self) -> list[str]:
        if self.parts:
            return self._parts_columns()
        if self.format == "parquet":
            import pyarrow.parquet as pq

            try:
                pf = pq.ParquetFile(self.path)
            except Exception as exc:  # pyarrow raises several types for corrupt files
                raise CTDInputError(f"{self.path}: not a readable Parquet file ({exc})") from exc
            self.num_rows = pf.metadata.num_rows
            return [str(n) for n in pf.schema_arrow.names]
        if self.format == "csv":
            try:
                head = pd.read_csv(
                    self.path, nrows=0, sep=None if self.path.suffix == ".tsv" else ","
                )
            except pd.errors.EmptyDataError as exc:
                raise CTDInputError(f"{self.path}: the log is empty") from exc
            except (pd.errors.ParserError, UnicodeDecodeError) as exc:
                raise CTDInputError(f"{self.path}: not a readable CSV file ({exc})") from exc
            return [str(c) for c in head.columns]
        if self.format == "jsonl":
            cols: dict[str, None] = {}
            try:
                for chunk in self._json_chunks(1000):
                    cols.update(dict.fromkeys(map(str, chunk.columns)))
                    break
            except StopIteration:  # pragma: no cover
                pass
            if not cols:
                raise CTDInputError(f"{self.path}: the log is empty")
            return list(cols)
        if self.format == "sqlite":
            return self._sqlite_columns()
        raise CTDInputError(f"{self.path}: unknown log format {self.format!r}")

    def _parts_columns(self) -> list[str]:
        """Columns common to every Parquet part (and the total row count)."""
        import pyarrow.parquet as pq

        common: list[str] | None = None
        self.num_rows = 0
        for part in self.parts:
            try:
                pf = pq.ParquetFile(part)
            except Exception as exc:  # pyarrow raises several types for corrupt files
                raise CTDInputError(f"{part}: not a readable Parquet file ({exc})") from exc
            self.num_rows += pf.metadata.num_rows
            names = [str(n) for n in pf.schema_arrow.names]
            common = names if common is None else [c for c in common if c in names]
        return common or []

    def _sqlite_columns(self) -> list[str]:
        self.table, columns, self.num_rows = sqlite_layout(self.path)
        return columns

    def _json_chunks(self, chunk_rows: int) -> Iterator[pd.DataFrame]:
        offset = 0
        try:
            reader = pd.read_json(self.path, lines=True, chunksize=chunk_rows, dtype=False)
            for chunk in reader:
                yield chunk
                offset += len(chunk)
        except ValueError as exc:
            line, why = first_bad_json_line(self.path, offset)
            if line is None:
                raise CTDInputError(
                    f"{self.path}: malformed JSON at or after line {offset + 1} ({exc})"
                ) from exc
            raise CTDInputError(f"{self.path}:{line}: malformed JSON line ({why})") from exc

    def chunks(self, columns: Sequence[str], chunk_rows: int = 1_000_000) -> Iterator[pd.DataFrame]:
        """Yield DataFrames of at most ``chunk_rows`` rows with (at least) ``columns``, in file order.

        Columns missing from a JSONL chunk are added as missing values (the parsers then name the row).
        """
        cols = list(columns)
        if self._frame is not None:
            for start in range(0, len(self._frame), chunk_rows):
                yield self._frame.iloc[start : start + chunk_rows][cols]
            return
        if self.parts:
            import pyarrow.parquet as pq

            for part in self.parts:
                pf = pq.ParquetFile(part, pre_buffer=False, buffer_size=1 << 20)
                for batch in pf.iter_batches(batch_size=chunk_rows, columns=cols):
                    yield batch.to_pandas()
            return
        if self.format == "parquet":
            import pyarrow.parquet as pq

            # pre_buffer=False + a buffered stream: Arrow keeps about one column chunk in memory
            # instead of pre-fetching whole row groups (halves peak memory, and is faster here).
            pf = pq.ParquetFile(self.path, pre_buffer=False, buffer_size=1 << 20)
            for batch in pf.iter_batches(batch_size=chunk_rows, columns=cols):
                yield batch.to_pandas()
        elif self.format == "csv":
            try:
                reader = pd.read_csv(self.path, usecols=cols, chunksize=chunk_rows)
                yield from reader
            except pd.errors.ParserError as exc:
                raise CTDInputError(f"{self.path}: malformed CSV ({exc})") from exc
        elif self.format == "sqlite":
            yield from sqlite_chunks(self.path, self.table, cols, chunk_rows)
        elif self.format == "postgres":
            yield from postgres_chunks(self.url, cols, chunk_rows)
        else:
            for chunk in self._json_chunks(chunk_rows):
                yield chunk.reindex(columns=cols)

    def where(self, row: int) -> str:
        """``"row 12 (line 14)"`` for messages."""
        if self.line_offset is None:
            return f"row {row}"
        return f"row {row} (line {row + self.line_offset})"


def _first_bad(mask: NDArray[np.bool_]) -> int:
    return int(np.flatnonzero(mask)[0])


def parse_decisions(
    values: pd.Series, offset: int, reader: LogReader, column: str
) -> NDArray[np.bool_]:
    """Strictly parse a decision column to booleans; any other value is a :class:`CTDInputError`.

    Accepted: booleans, 0/1 (int or float), and the strings true/false/t/f/1/0 (any case, stripped).
    Missing values are errors too (a decision log must say what happened on every row).
    """
    s = values
    dtype = s.dtype
    if pd.api.types.is_bool_dtype(dtype) and not isinstance(dtype, pd.BooleanDtype):
        return s.to_numpy(dtype=bool)

    def fail(i: int, why: str) -> CTDInputError:
        v = s.iloc[i]
        return CTDInputError(
            f"{reader.name}: {reader.where(offset + i)}, column {column!r}: decision {v!r} {why} "
            "(expected true/false or 0/1)"
        )

    if isinstance(dtype, pd.BooleanDtype):
        na = s.isna().to_numpy()
        if na.any():
            raise fail(_first_bad(na), "is missing")
        return s.to_numpy(dtype=bool)
    if pd.api.types.is_numeric_dtype(dtype):
        arr = s.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~((arr == 0.0) | (arr == 1.0))
        if bad.any():
            i = _first_bad(bad)
            raise fail(i, "is missing" if np.isnan(arr[i]) else "is not boolean")
        return arr == 1.0
    # object / string / categorical: booleans, numbers and words mixed
    obj = s.astype(object)
    mapped = obj.map(lambda v: _map_decision(v))
    arr_m = mapped.to_numpy()
    bad = np.array([m is None for m in arr_m], dtype=bool)
    if bad.any():
        i = _first_bad(bad)
        v = s.iloc[i]
        missing = v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA
        raise fail(i, "is missing" if missing else "is not boolean")
    return arr_m.astype(bool)


def _map_decision(v: Any) -> bool | None:
    if isinstance(v, bool | np.bool_):
        return bool(v)
    if isinstance(v, int | np.integer) and v in (0, 1):
        return bool(v)
    if isinstance(v, float | np.floating) and v in (0.0, 1.0):
        return bool(v)
    if isinstance(v, str):
        return _DECISION_WORDS.get(v.strip().lower())
    return None


def parse_scores(
    values: pd.Series, offset: int, reader: LogReader, column: str
) -> NDArray[np.float64]:
    """Parse a score column to float64 (missing = NaN); non-numeric entries are a :class:`CTDInputError`."""
    s = values
    if pd.api.types.is_bool_dtype(s.dtype):
        raise CTDInputError(
            f"{reader.name}: column {column!r} holds booleans, not scores ({reader.where(offset)})"
        )
    if pd.api.types.is_numeric_dtype(s.dtype):
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    obj = s.astype(object)
    is_bool = obj.map(lambda v: isinstance(v, bool | np.bool_)).to_numpy(dtype=bool)
    num = pd.to_numeric(obj.where(~is_bool, None), errors="coerce").to_numpy(dtype=np.float64)
    bad = (np.isnan(num) & obj.notna().to_numpy(dtype=bool)) | is_bool
    if bad.any():
        i = _first_bad(bad)
        raise CTDInputError(
            f"{reader.name}: {reader.where(offset + i)}, column {column!r}: score {s.iloc[i]!r} is not a number"
        )
    return num


def parse_timestamps(
    values: pd.Series, offset: int, reader: LogReader, column: str
) -> tuple[NDArray[np.int64], str]:
    """Parse timestamps to int64 nanoseconds since the epoch (UTC).

    Returns the values and their kind: ``"datetime"`` (datetime values or ISO-8601 strings; naive
    ones are taken as UTC) or ``"numeric"`` (numbers, read as seconds since the epoch).
    """
    s = values

    def fail(i: int, why: str) -> CTDInputError:
        return CTDInputError(
            f"{reader.name}: {reader.where(offset + i)}, column {column!r}: timestamp {s.iloc[i]!r} {why}"
        )

    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        dt = s
        if getattr(s.dtype, "tz", None) is not None:
            dt = s.dt.tz_convert("UTC").dt.tz_localize(None)
        na = dt.isna().to_numpy()
        if na.any():
            raise fail(_first_bad(na), "is missing")
        return dt.to_numpy(dtype="datetime64[ns]").view(np.int64), "datetime"
    if pd.api.types.is_bool_dtype(s.dtype):
        raise fail(0, "is a boolean, not a time")
    if pd.api.types.is_numeric_dtype(s.dtype):
        arr = s.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(arr)
        if bad.any():
            raise fail(_first_bad(bad), "is missing")
        return np.round(arr * 1e9).astype(np.int64), "numeric"
    obj = s.astype(object)
    kinds = obj.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
    if not kinds.all():
        i = _first_bad(~kinds)
        v = s.iloc[i]
        missing = v is None or (isinstance(v, float) and np.isnan(v))
        raise fail(
            i,
            "is missing"
            if missing
            else "mixes types with the other timestamps (expected a date string)",
        )
    parsed = pd.to_datetime(obj, utc=True, errors="coerce", format="ISO8601")
    bad = parsed.isna().to_numpy()
    if bad.any():
        raise fail(_first_bad(bad), "is not an ISO-8601 date/time")
    return parsed.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]").view(np.int64), "datetime"


class GroupCoder:
    """Maps group values (any type; missing = ``"(missing)"``) to small integer codes across chunks."""

    def __init__(self, source: str, max_groups: int = MAX_GROUPS) -> None:
        self.names: list[str] = []
        self._index: dict[str, int] = {}
        self._source = source
        self._max = max_groups

    def codes(self, values: pd.Series) -> NDArray[np.int32]:
        local, uniques = pd.factorize(values, use_na_sentinel=True)
        lookup = np.empty(len(uniques) + 1, dtype=np.int32)
        for j, u in enumerate(uniques):
            lookup[j] = self._code(str(u))
        lookup[-1] = self._code("(missing)") if (local < 0).any() else 0
        return lookup[np.asarray(local)]

    def _code(self, name: str) -> int:
        code = self._index.get(name)
        if code is None:
            if len(self.names) >= self._max:
                raise CTDInputError(
                    f"{self._source}: the group column has more than {self._max} distinct values"
                )
            code = len(self.names)
            self._index[name] = code
            self.names.append(name)
        return code

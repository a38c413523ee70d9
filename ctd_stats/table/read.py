"""Low-level reading of score-table files: format detection, frames, typed columns (private).

The public reader and writer live in :mod:`ctd_stats.table`; this module only turns bytes into
columns (a pandas frame for CSV, Arrow columns read one at a time for Parquet) and cells into typed
numpy arrays, with errors that name the column, file and row.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ctd_stats.errors import CTDInputError

#: Parquet schema-metadata key holding per-expert cost metadata (JSON).
EXPERTS_METADATA_KEY = "ctd.experts"
#: Parquet schema-metadata key holding the probes layer's build summary (JSON).
PROBES_METADATA_KEY = "ctd.probes"
#: Suffix of the JSON sidecar that carries a CSV table's expert metadata.
CSV_EXPERTS_SIDECAR = ".experts.json"


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def detect_format(path: Path, fmt: str = "auto") -> str:
    """``parquet`` or ``csv`` from the suffix (or the explicit ``fmt``)."""
    if fmt != "auto":
        return fmt
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix == ".csv":
        return "csv"
    raise CTDInputError(
        f"{path}: cannot tell the table format from the suffix {suffix!r} (format: auto knows "
        ".parquet, .pq and .csv); rename the file or set data.format to csv or parquet"
    )


class ParquetColumns:
    """The wanted columns of a Parquet file, each read from the file when asked for.

    Stands in for a pandas frame (``columns``, ``attrs``, ``len``) so that a Parquet table is never
    converted to pandas as a whole: numeric columns go straight from Arrow to numpy and string
    columns are converted a slice at a time (:func:`numeric_column`, :func:`string_column`,
    :func:`id_column`), so reading holds one column's Arrow buffers at a time.
    """

    def __init__(self, path: Path, columns: list[str], all_columns: list[str], n_rows: int) -> None:
        self.path = path
        self.columns = columns
        self.attrs: dict[str, Any] = {"all_columns": all_columns}
        self._n_rows = n_rows

    def __len__(self) -> int:
        return self._n_rows

    def arrow(self, col: str) -> Any:
        """One column as a pyarrow ChunkedArray."""
        import pyarrow.parquet as pq

        # ParquetFile, not read_table: read_table goes through pyarrow.dataset, which imports pandas
        with pq.ParquetFile(self.path) as f:
            return f.read(columns=[col], use_threads=False).column(0)

    @staticmethod
    def release() -> None:
        """Hand the Parquet reader's freed scratch buffers back to the OS (Arrow's allocator keeps
        them otherwise, tens of MB for a column of 10^6 rows); called after each column."""
        import pyarrow as pa

        pa.default_memory_pool().release_unused()


def read_frame(path: Path, fmt: str, wanted: Iterable[str]) -> tuple[Any, dict[str, Any]]:
    """The wanted columns that exist, and the expert cost metadata.

    CSV: a pandas DataFrame of strings. Parquet: a :class:`ParquetColumns` (nothing read yet beyond
    the schema and the row count).
    """
    costs: dict[str, Any] = {}
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            schema = pq.read_schema(path)
            n_rows = pq.read_metadata(path).num_rows
        except Exception as exc:  # pyarrow raises several types for non-Parquet bytes
            raise CTDInputError(f"{path}: not a readable Parquet file ({exc})") from None
        dupes = sorted({n for n in schema.names if schema.names.count(n) > 1})
        if dupes:
            raise CTDInputError(
                f"{path}: column {dupes[0]!r} appears more than once in the Parquet schema; every "
                "column name must be unique"
            )
        costs = _json_dict((schema.metadata or {}).get(EXPERTS_METADATA_KEY.encode()))
        present = [c for c in dict.fromkeys(wanted) if c in schema.names]
        extra = [
            c for c in schema.names if "__" in c and c.startswith(("dv_score__", "expert_prob__"))
        ]
        cols = list(dict.fromkeys([*present, *extra]))
        return ParquetColumns(path, cols, list(schema.names), int(n_rows)), costs
    import pandas as pd  # CSV only: a Parquet table is read without pandas (`ctd validate` start-up)

    header = _csv_header(path)
    try:
        with warnings.catch_warnings():
            # index_col=False: a first data row with an extra field must not silently become an
            # index column (shifting every value one column left); pandas warns instead.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(
                path,
                dtype=str,
                keep_default_na=False,
                na_values=[],
                skipinitialspace=True,
                index_col=False,
            )
    except pd.errors.EmptyDataError:
        raise CTDInputError(f"{path}: the CSV file is empty (expected a header row)") from None
    except pd.errors.ParserWarning:
        raise CTDInputError(_ragged_row(path, len(header))) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise CTDInputError(_csv_error(path, exc)) from None
    frame.attrs["all_columns"] = list(frame.columns)
    sidecar = path.with_name(path.name + CSV_EXPERTS_SIDECAR)
    if sidecar.is_file():
        from ctd_stats.input_files import SIDECAR, read_capped_bytes

        costs = _json_dict(read_capped_bytes(sidecar, SIDECAR))
    return frame, costs


def _json_dict(raw: bytes | None) -> dict[str, Any]:
    """A JSON object from metadata bytes; {} when absent or not an object (metadata is advisory)."""
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested too deeply
        return {}
    return parsed if isinstance(parsed, dict) else {}


_MISSING_STRINGS = {"", "na", "nan", "null", "none"}


def numeric_column(frame: Any, col: str, path: Path, fmt: str) -> NDArray[np.float64]:
    """Column as float64; NaN for missing cells; error naming the first non-numeric cell."""
    if isinstance(frame, ParquetColumns):
        import pyarrow as pa

        data = frame.arrow(col)
        t = data.type
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
            # Straight to numpy (nulls become NaN): one float64 copy of the (chunked) column.
            values = _arrow_floats(data)
        else:  # text, decimals, ...: through pandas, as a frame column would be
            values = _numeric_series(data.to_pandas(), col, path, fmt)
        del data
        frame.release()
        return values
    return _numeric_series(frame[col], col, path, fmt)


def _arrow_floats(data: Any) -> NDArray[np.float64]:
    """A numeric or boolean Arrow column as float64, NaN for nulls, read from its buffers.

    Neither pandas nor ``pyarrow.compute`` is imported (pyarrow's ``to_numpy`` imports pandas, half
    a second of ``ctd validate``). Integers convert as numpy converts them (nearest float), booleans
    to 0/1. One pass per chunk, none per row.
    """
    import pyarrow as pa

    out = np.empty(len(data), dtype=np.float64)
    at = 0
    for chunk in data.chunks:
        m, off = len(chunk), chunk.offset
        if m == 0:
            continue
        bufs = chunk.buffers()
        t = chunk.type
        if bufs[1] is None:  # no values buffer: every cell is missing
            out[at : at + m] = np.nan
        elif pa.types.is_boolean(t):
            bits = np.frombuffer(bufs[1], dtype=np.uint8)
            out[at : at + m] = np.unpackbits(bits, count=off + m, bitorder="little")[off:]
        else:
            kind = "f" if pa.types.is_floating(t) else "i" if pa.types.is_signed_integer(t) else "u"
            dt = np.dtype(f"<{kind}{t.bit_width // 8}")
            out[at : at + m] = np.frombuffer(bufs[1], dtype=dt, count=m, offset=off * dt.itemsize)
        if chunk.null_count and bufs[0] is not None:
            bits = np.frombuffer(bufs[0], dtype=np.uint8)
            valid = np.unpackbits(bits, count=off + m, bitorder="little")[off:]
            out[at : at + m][valid == 0] = np.nan
        at += m
    return out


def _numeric_series(s: Any, col: str, path: Path, fmt: str) -> NDArray[np.float64]:
    import pandas as pd

    if fmt == "csv" or s.dtype == object:
        text = s.astype(str).str.strip()
        missing = text.str.lower().isin(_MISSING_STRINGS) | s.isna()
        lowered = text.str.lower()
        text = text.mask(lowered == "true", "1").mask(lowered == "false", "0")
        values = pd.to_numeric(text.mask(missing, None), errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(np.isnan(values) & ~missing.to_numpy())
        if bad.size:
            i = int(bad[0])
            raise CTDInputError(
                f"{path}: column {col!r}: expected numbers, got {str(s.iloc[i])!r} at row {i}"
                + (f" (line {i + 2})" if fmt == "csv" else "")
            )
        return values
    try:
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        raise CTDInputError(f"{path}: column {col!r}: expected numbers (got {s.dtype})") from None


#: Rows converted at a time when a string column becomes numpy (bounds the Python strings alive).
_SLICE_ROWS = 1 << 16
#: numpy's variable-width string dtype (numpy >= 2.0), None before.
_STRING_DTYPE: Any = np.dtypes.StringDType() if hasattr(np.dtypes, "StringDType") else None


def _stripped_slices(frame: Any, col: str) -> Iterator[NDArray[np.object_]]:
    """The column's cells as stripped Python strings ("" for missing), one slice of rows at a time."""
    if isinstance(frame, ParquetColumns):
        yield from _parquet_slices(frame, col)
        frame.release()
        return
    s = frame[col]
    for i in range(0, len(frame), _SLICE_ROWS):
        yield _stripped(s.iloc[i : i + _SLICE_ROWS])


def _parquet_slices(frame: ParquetColumns, col: str) -> Iterator[NDArray[np.object_]]:
    """:func:`_stripped_slices` of a Parquet column: text converted to pandas a slice at a time."""
    import pyarrow as pa

    data = frame.arrow(col)
    if pa.types.is_string(data.type) or pa.types.is_large_string(data.type):
        for i in range(0, len(frame), _SLICE_ROWS):
            yield _arrow_text_stripped(data.slice(i, _SLICE_ROWS))
    else:  # numbers etc.: one pandas conversion, so that every slice formats its values alike
        whole = data.to_pandas()
        del data
        for i in range(0, len(frame), _SLICE_ROWS):
            yield _stripped(whole.iloc[i : i + _SLICE_ROWS])


def _arrow_text_stripped(part: Any) -> NDArray[np.object_]:
    """An Arrow text column as :func:`_stripped` reads it, without pandas (``ctd validate`` start-up).

    Arrow's ``utf8_trim_whitespace`` removes exactly the characters ``str.strip`` removes (checked
    over every code point); missing cells become "".
    """
    import pyarrow.compute as pc

    text = np.array(pc.utf8_trim_whitespace(part).to_pylist(), dtype=object)
    if part.null_count:
        text[np.array(pc.is_null(part).to_pylist(), dtype=bool)] = ""
    return text


def _stripped(part: Any) -> NDArray[np.object_]:
    """A pandas Series as stripped strings, "" for missing (the table's reading of text cells)."""
    return np.asarray(part.fillna("").astype(str).str.strip().to_numpy(), dtype=object)


def string_column(frame: Any, col: str) -> NDArray[np.str_]:
    """Column as a fixed-width numpy str array (for short, repeated values: split, group)."""
    parts = [np.asarray(part, dtype=str) for part in _stripped_slices(frame, col)]
    return np.concatenate(parts) if parts else np.empty(0, dtype=str)


def compact_strings(values: Any) -> NDArray[Any]:
    """Strings stored in a size that does not grow with the longest one (ids).

    numpy's variable-width ``StringDType`` (16 bytes a row, longer strings on the heap) where numpy
    has it (>= 2.0), else an object array. A fixed-width ``<U`` array would give every row the
    width of the longest string (one 10,000-character id: 40 kB a row).
    """
    if _STRING_DTYPE is None:
        return np.asarray(np.asarray(values, dtype=str), dtype=object)
    return np.asarray(values).astype(_STRING_DTYPE)


def id_column(frame: Any, col: str) -> NDArray[Any]:
    """Column as :func:`compact_strings`, filled a slice at a time."""
    out = np.empty(len(frame), dtype=object if _STRING_DTYPE is None else _STRING_DTYPE)
    at = 0
    for part in _stripped_slices(frame, col):
        out[at : at + part.size] = part
        at += part.size
    return out


def row_where(path: Path, fmt: str, i: int, ids: NDArray[Any]) -> str:
    line = f", line {i + 2}" if fmt == "csv" else ""
    return f"row {i} (id {str(ids[i])!r}{line})"


def _csv_header(path: Path) -> list[str]:
    """The CSV header's cells as written; a column named twice is an error (pandas would rename
    the second ``dv_score`` to ``dv_score.1`` and read the first without a word)."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            header = next(csv.reader(fh, skipinitialspace=True), [])
    except UnicodeDecodeError as exc:
        raise CTDInputError(_csv_error(path, exc)) from None
    except csv.Error as exc:
        raise CTDInputError(f"{path}:1: not a readable CSV header ({exc})") from None
    seen: dict[str, int] = {}
    for i, name in enumerate(header, start=1):
        name = name.strip()
        if name in seen:
            raise CTDInputError(
                f"{path}:1: column {name!r} appears twice in the header (columns {seen[name]} and {i}); "
                "every column name must be unique"
            )
        seen[name] = i
    return header


def _ragged_row(path: Path, want: int) -> str:
    """The first line whose field count differs from the header's (error path only: a linear scan)."""
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        reader = csv.reader(fh, skipinitialspace=True)
        next(reader, None)
        for row in reader:
            if row and len(row) > want:
                return (
                    f"{path}:{reader.line_num}: row has {len(row)} fields but the header has {want} "
                    "(an unquoted comma in a value, or a stray extra field?)"
                )
    return f"{path}: a row has more fields than the header ({want})"


def _csv_error(path: Path, exc: Exception) -> str:
    """One line naming the file and line of a CSV parse error."""
    text = " ".join(str(exc).split())
    m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
    if m:
        want, line, got = m.groups()
        return (
            f"{path}:{line}: row has {got} fields but the header has {want} "
            "(an unquoted comma in a value, or a stray extra field?)"
        )
    return f"{path}: not a readable CSV file ({text})"


def parquet_parts(source: str | os.PathLike[str]) -> list[Path]:
    """The Parquet parts of a partitioned log, in the order they are read (sorted by path).

    ``source`` is a folder (every ``*.parquet``/``*.pq`` file below it, hive-style ``key=value``
    sub-folders included) or a glob pattern (``logs/2026-*/part-*.parquet``).
    """
    import glob

    text = str(source)
    if Path(text).is_dir():
        found = [
            p
            for p in Path(text).rglob("*")
            if p.is_file() and p.suffix.lower() in (".parquet", ".pq")
        ]
        where = f"{text}: is a folder with no Parquet files (.parquet); a folder log must be partitioned Parquet"
    else:
        found = [Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file()]
        where = f"{text}: no file matches this pattern"
    if not found:
        raise CTDInputError(where)
    bad = [p for p in found if p.suffix.lower() not in (".parquet", ".pq")]
    if bad:
        raise CTDInputError(f"{bad[0]}: a folder or pattern log must hold Parquet parts only")
    return sorted(found, key=lambda p: p.as_posix())

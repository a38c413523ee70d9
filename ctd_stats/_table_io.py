"""Low-level reading of score-table files: format detection, frames, typed columns (private).

The public reader and writer live in :mod:`ctd_stats.table`; this module only turns bytes into a
pandas frame and cells into typed numpy arrays, with errors that name the column, file and row.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
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


def read_frame(path: Path, fmt: str, wanted: Iterable[str]) -> tuple[Any, dict[str, Any]]:
    """Read the wanted columns that exist; return (DataFrame, expert cost metadata)."""
    import pandas as pd

    costs: dict[str, Any] = {}
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            schema = pq.read_schema(path)
        except Exception as exc:  # pyarrow raises several types for non-Parquet bytes
            raise CTDInputError(f"{path}: not a readable Parquet file ({exc})") from None
        costs = _json_dict((schema.metadata or {}).get(EXPERTS_METADATA_KEY.encode()))
        present = [c for c in dict.fromkeys(wanted) if c in schema.names]
        extra = [
            c for c in schema.names if "__" in c and c.startswith(("dv_score__", "expert_prob__"))
        ]
        cols = list(dict.fromkeys([*present, *extra]))
        frame = pq.read_table(path, columns=cols).to_pandas()
        frame.attrs["all_columns"] = list(schema.names)
        return frame, costs
    try:
        frame = pd.read_csv(
            path, dtype=str, keep_default_na=False, na_values=[], skipinitialspace=True
        )
    except pd.errors.EmptyDataError:
        raise CTDInputError(f"{path}: the CSV file is empty (expected a header row)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise CTDInputError(_csv_error(path, exc)) from None
    frame.attrs["all_columns"] = list(frame.columns)
    sidecar = path.with_name(path.name + CSV_EXPERTS_SIDECAR)
    if sidecar.is_file():
        costs = _json_dict(sidecar.read_bytes())
    return frame, costs


def _json_dict(raw: bytes | None) -> dict[str, Any]:
    """A JSON object from metadata bytes; {} when absent or not an object (metadata is advisory)."""
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


_MISSING_STRINGS = {"", "na", "nan", "null", "none"}


def numeric_column(frame: Any, col: str, path: Path, fmt: str) -> NDArray[np.float64]:
    """Column as float64; NaN for missing cells; error naming the first non-numeric cell."""
    import pandas as pd

    s = frame[col]
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


def string_column(frame: Any, col: str) -> NDArray[np.str_]:
    s = frame[col]
    return np.asarray(s.fillna("").astype(str).str.strip().to_numpy(), dtype=str)


def row_where(path: Path, fmt: str, i: int, ids: NDArray[np.str_]) -> str:
    line = f", line {i + 2}" if fmt == "csv" else ""
    return f"row {i} (id {str(ids[i])!r}{line})"


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

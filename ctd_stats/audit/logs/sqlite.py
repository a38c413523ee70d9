"""SQLite decision logs (what ``ctd serve`` writes), read through a read-only connection.

The table ``decisions`` (or the only table) is read in ``rowid`` order in one read transaction, so
an audit sees a consistent snapshot even while the gateway appends to a live WAL database.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from ctd_stats.audit.logs.schema import DECISIONS_TABLE
from ctd_stats.errors import CTDInputError

#: Table read from a SQLite log when it has several (the one ``ctd serve`` writes).
SQLITE_TABLE = DECISIONS_TABLE
_SQLITE_MAGIC = b"SQLite format 3\x00"


def is_sqlite(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` starts with the SQLite file header."""
    try:
        with open(path, "rb") as fh:
            return fh.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC
    except OSError:
        return False


def quote(name: str) -> str:
    """A SQL identifier in double quotes (embedded quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def sqlite_connect_readonly(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """A read-only connection to a SQLite file (a live WAL database may be read while written)."""
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    return sqlite3.connect(uri, uri=True, timeout=30.0)


def sqlite_layout(path: Path) -> tuple[str, list[str], int]:
    """``(table, columns, row count)`` of the decision table of a SQLite log.

    Raises
    ------
    CTDInputError
        Unreadable database, or several tables and none named ``decisions``.
    """
    try:
        con = sqlite_connect_readonly(path)
        try:
            tables = [
                str(r[0])
                for r in con.execute(
                    "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
                    "AND name NOT LIKE 'sqlite_%' ORDER BY name"
                )
            ]
            if SQLITE_TABLE in tables:
                table = SQLITE_TABLE
            elif len(tables) == 1:
                table = tables[0]
            else:
                raise CTDInputError(
                    f"{path}: no table {SQLITE_TABLE!r} in the SQLite log (tables: "
                    f"{', '.join(tables) or 'none'})"
                )
            info = con.execute(f"PRAGMA table_info({quote(table)})").fetchall()
            (count,) = con.execute(f"SELECT COUNT(*) FROM {quote(table)}").fetchone()
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise CTDInputError(f"{path}: not a readable SQLite database ({exc})") from exc
    return table, [str(r[1]) for r in info], int(count)


def sqlite_chunks(
    path: Path, table: str, cols: list[str], chunk_rows: int
) -> Iterator[pd.DataFrame]:
    """DataFrames of at most ``chunk_rows`` rows of ``cols``, in ``rowid`` order."""
    select = ", ".join(quote(c) for c in cols)
    try:
        con = sqlite_connect_readonly(path)
        try:
            cur = con.execute(f"SELECT {select} FROM {quote(table)} ORDER BY rowid")
            while rows := cur.fetchmany(chunk_rows):
                yield pd.DataFrame.from_records(rows, columns=cols)
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise CTDInputError(f"{path}: cannot read the SQLite log ({exc})") from exc

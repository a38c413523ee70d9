"""PostgreSQL decision logs (``ctd serve --db postgresql://...``), read for ``ctd audit``.

A log source is a PostgreSQL URL (``postgresql://user@host:port/dbname`` or ``postgres://...``;
libpq parameters such as ``?host=/run/postgresql`` are passed through). The table ``decisions``
(:data:`~ctd_stats.audit.logs.schema.POSTGRES_DECISIONS_DDL`) is read in ``seq`` order (commit order
across every gateway writing the log) inside one ``REPEATABLE READ READ ONLY`` transaction through a
server-side cursor, so an audit sees one consistent snapshot in bounded memory while gateways keep
appending. ``psycopg`` (the ``postgres`` extra) is imported only when such a log is read.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from ctd_stats.audit.logs.schema import DECISIONS_TABLE
from ctd_stats.errors import CTDInputError

if TYPE_CHECKING:
    import pandas as pd

#: URL schemes read as PostgreSQL logs.
POSTGRES_SCHEMES = ("postgresql", "postgres")


def postgres_url(source: str | os.PathLike[str] | Any) -> str | None:
    """The PostgreSQL URL that ``source`` names, or None when it is not one.

    A ``str`` is a URL when its scheme is ``postgresql://`` or ``postgres://``. A path whose text
    starts with ``postgresql:/`` is a URL that went through :class:`pathlib.Path` (which folds
    ``//`` into ``/``): the ``//`` is put back (exact for every URL with a host; pass URLs with
    an empty host, ``postgresql:///db?host=...``, as a string).
    """
    if not isinstance(source, str | os.PathLike):
        return None
    text = os.fspath(source)
    if not isinstance(text, str):
        return None
    for scheme in POSTGRES_SCHEMES:
        if text.startswith(scheme + "://"):
            return text
        if not isinstance(source, str) and text.startswith(scheme + ":/"):
            return scheme + "://" + text[len(scheme) + 2 :]
    return None


def redact(url: str) -> str:
    """The URL without its password (for messages and reports)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def require_psycopg() -> Any:
    """The ``psycopg`` module (3.x), or a one-line error naming the extra to install."""
    try:
        import psycopg
    except ImportError as exc:
        raise CTDInputError(
            f"a PostgreSQL decision log needs the package 'psycopg' ({exc}); install it with: "
            "pip install -e '.[postgres]'"
        ) from None
    return psycopg


def connect(url: str, **kwargs: Any) -> Any:
    """A psycopg connection to ``url``; an unreachable server is a one-line input error."""
    psycopg = require_psycopg()
    try:
        return psycopg.connect(url, connect_timeout=10, **kwargs)
    except psycopg.Error as exc:
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CTDInputError(f"{redact(url)}: cannot connect to PostgreSQL ({why})") from None


def postgres_layout(url: str) -> tuple[list[str], int]:
    """``(columns, row count)`` of the ``decisions`` table of a PostgreSQL log.

    Raises
    ------
    CTDInputError
        Unreachable server, or no ``decisions`` table.
    """
    psycopg = require_psycopg()
    with connect(url) as con:
        try:
            cols = [
                str(r[0])
                for r in con.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_name = %s AND table_schema = current_schema() "
                    "ORDER BY ordinal_position",
                    (DECISIONS_TABLE,),
                )
            ]
            if not cols:
                raise CTDInputError(f"{redact(url)}: no table {DECISIONS_TABLE!r} in the database")
            (count,) = con.execute(f"SELECT COUNT(*) FROM {DECISIONS_TABLE}").fetchone()
        except psycopg.Error as exc:
            raise CTDInputError(f"{redact(url)}: cannot read the PostgreSQL log ({exc})") from exc
    return cols, int(count)


def postgres_chunks(url: str, cols: list[str], chunk_rows: int) -> Iterator[pd.DataFrame]:
    """DataFrames of at most ``chunk_rows`` rows of ``cols``, in ``seq`` (commit) order."""
    import pandas as pd

    psycopg = require_psycopg()
    select = ", ".join('"' + c.replace('"', '""') + '"' for c in cols)
    with connect(url) as con:
        con.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        con.read_only = True
        try:
            with con.cursor(name="ctd_audit") as cur:
                cur.itersize = chunk_rows
                cur.execute(f"SELECT {select} FROM {DECISIONS_TABLE} ORDER BY seq")
                while rows := cur.fetchmany(chunk_rows):
                    yield pd.DataFrame.from_records(rows, columns=cols)
            con.rollback()
        except psycopg.Error as exc:
            raise CTDInputError(f"{redact(url)}: cannot read the PostgreSQL log ({exc})") from exc

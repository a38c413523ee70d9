"""Audits of SQLite decision logs (the format ``ctd serve`` writes), read in chunks as is."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from audit_fixtures import BUDGET, TAU, make_log

from ctd_stats.audit import audit_log
from ctd_stats.audit.logs.reader import LogReader, detect_format
from ctd_stats.errors import CTDInputError


def write_sqlite(df: pd.DataFrame, path: Path, table: str = "decisions") -> Path:
    out = df.copy()
    out["timestamp"] = out["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    out["delegated"] = out["delegated"].astype(int)
    con = sqlite3.connect(path)
    out.to_sql(table, con, index=False)
    con.close()
    return path


@pytest.mark.parametrize("name", ["log.db", "log.sqlite", "log.bin"])
def test_sqlite_log_gives_the_same_audit_as_parquet(tmp_path, name):
    df = make_log(n=3000)
    db = write_sqlite(df, tmp_path / name)
    assert detect_format(db) == "sqlite"
    a = audit_log(db, threshold=TAU, budget=BUDGET, chunk_rows=700)
    b = audit_log(df, threshold=TAU, budget=BUDGET)
    assert (a.rate.n, a.rate.k, a.rate.pvalue) == (b.rate.n, b.rate.k, b.rate.pvalue)
    assert a.sequential.log_evidence == pytest.approx(b.sequential.log_evidence)
    assert a.integrity.n_mismatch == 0 and a.log_format == "sqlite"
    assert [g.label for g in a.groups] == [g.label for g in b.groups]


def test_sqlite_table_choice_and_errors(tmp_path):
    df = make_log(n=50)
    one = write_sqlite(df, tmp_path / "other.db", table="mylog")
    assert LogReader(one).table == "mylog"  # the only table is used
    con = sqlite3.connect(one)
    con.execute("CREATE TABLE extra (x INTEGER)")
    con.close()
    with pytest.raises(CTDInputError, match="no table 'decisions'"):
        LogReader(one)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(CTDInputError, match="not a readable SQLite database"):
        LogReader(junk)

"""PostgreSQL URLs as audit log sources, without a server: recognition, redaction, one-line errors,
and no psycopg import until such a log is read."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ctd_stats.audit.logs.postgres import postgres_url, redact
from ctd_stats.errors import CTDInputError

URL = "postgresql://ctd@db.internal:5432/ctd"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (URL, URL),
        ("postgres://u@h/db?sslmode=require", "postgres://u@h/db?sslmode=require"),
        (Path(URL), URL),  # a URL that went through Path: '//' folded to '/', put back
        ("gateway.db", None),
        (Path("logs/postgresql.db"), None),
        ("postgresql.csv", None),
    ],
)
def test_postgres_urls_are_recognised(source, expected):
    assert postgres_url(source) == expected


def test_the_password_is_never_shown():
    assert redact("postgresql://u:s3cret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact(URL) == URL


def test_an_unreachable_server_is_one_line_naming_the_log_without_its_password():
    pytest.importorskip("psycopg")
    from ctd_stats.audit.run import audit_log

    with pytest.raises(CTDInputError) as err:
        audit_log("postgresql://u:s3cret@127.0.0.1:1/db", threshold=0.5, budget=0.2)
    text = str(err.value)
    assert "postgresql://u:***@127.0.0.1:1/db: cannot connect to PostgreSQL" in text
    assert "s3cret" not in text and "\n" not in text


def test_the_audit_and_the_gateway_config_do_not_import_psycopg():
    code = (
        "import sys, ctd_stats.audit.run, ctd_stats.audit.logs.reader\n"
        "print('psycopg' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

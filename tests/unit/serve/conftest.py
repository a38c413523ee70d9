"""Fixtures for the gateway tests: a certificate and in-process app clients."""

from __future__ import annotations

import importlib.util
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")

from gateway_fixtures import ADMIN_TOKEN, TOKEN, write_certificate


@pytest.fixture
def certificate(tmp_path: Path) -> Path:
    return write_certificate(tmp_path / "certificate.json")


@pytest.fixture
def make_client(tmp_path: Path, certificate: Path) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from serve.app import create_app
    from serve.config import GatewayConfig, Token
    from serve.gateway import Gateway

    clients: list[Any] = []

    def make(expert: Any = None, **cfg: Any) -> Any:
        cfg.setdefault("db", tmp_path / "log.db")
        gateway = Gateway(GatewayConfig(certificate=certificate, **cfg), expert=expert)
        client = TestClient(create_app(gateway, Token(TOKEN), Token(ADMIN_TOKEN)))
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        client.__enter__()
        client.gateway = gateway  # type: ignore[attr-defined]
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def servers() -> Iterator[list[Any]]:
    """Real gateway processes started by a test (objects with ``proc``); killed at the end."""
    started: list[Any] = []
    yield started
    for s in started:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()


_databases = itertools.count()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """One local PostgreSQL server for the session (tests/_support/postgres.py).

    Missing binaries or psycopg: a failure under CI / ``nox -s tests``, a skip elsewhere.
    """
    from tests._support import postgres

    missing = None
    if importlib.util.find_spec("psycopg") is None:
        missing = "psycopg is not installed (pip install -e '.[postgres]')"
    elif (bin_dir := postgres.find_bin_dir()) is None:
        missing = (
            "no PostgreSQL server binaries (set CTD_PG_BIN, or pip install pgserver, or install "
            "the server): looked in " + ", ".join(str(f) for _, f in postgres.candidate_bin_dirs())
        )
    if missing is not None:
        postgres.unavailable(missing)
    server = postgres.LocalPostgres(bin_dir)
    yield server
    server.stop()


@pytest.fixture
def pg_url(postgres_server: Any) -> str:
    """A fresh, empty database on the session's server."""
    return str(postgres_server.create_database(f"ctd_test_{next(_databases)}"))

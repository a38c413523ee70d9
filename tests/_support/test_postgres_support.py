"""The throw-away PostgreSQL server of the tests: where binaries are found, and that a missing
server fails under CI instead of skipping."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._support import postgres


def _fake_bin(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name in ("initdb", "postgres"):
        (folder / name).write_text("#!/bin/sh\n")
    return folder


def test_ctd_pg_bin_comes_first(tmp_path, monkeypatch):
    chosen = _fake_bin(tmp_path / "bin")
    monkeypatch.setenv(postgres.BIN_ENV, str(chosen))
    assert next(iter(postgres.candidate_bin_dirs())) == (postgres.BIN_ENV, chosen)
    assert postgres.find_bin_dir() == chosen


def test_a_ctd_pg_bin_without_a_server_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv(postgres.BIN_ENV, str(tmp_path))
    with pytest.raises(RuntimeError, match="holds no initdb and postgres"):
        postgres.find_bin_dir()


def test_the_pgserver_wheel_comes_before_path(monkeypatch, tmp_path):
    pytest.importorskip("pgserver")
    monkeypatch.delenv(postgres.BIN_ENV, raising=False)
    first = next(iter(postgres.candidate_bin_dirs()))
    assert first[0] == "the pgserver wheel" and first[1].parts[-2:] == ("pginstall", "bin")


@pytest.mark.parametrize("env", ["CI", postgres.REQUIRE_ENV])
def test_a_missing_server_fails_under_ci(monkeypatch, env):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv(postgres.REQUIRE_ENV, raising=False)
    monkeypatch.setenv(env, "1")
    with pytest.raises(pytest.fail.Exception, match="required"):
        postgres.unavailable("no binaries")


def test_a_missing_server_skips_elsewhere(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv(postgres.REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="no binaries"):
        postgres.unavailable("no binaries")

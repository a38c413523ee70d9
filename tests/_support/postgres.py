"""A throw-away local PostgreSQL server for the tests (``initdb`` into a temporary folder).

Server binaries are looked for, in order, in: the folder named by the environment variable
``CTD_PG_BIN``; the ``pgserver`` wheel (``pgserver/pginstall/bin``, installed by the ``test`` extra,
so a clean clone gets a server with ``pip install -e '.[test]'``); ``PATH``; ``pg_config --bindir``;
``/usr/lib/postgresql/*/bin`` (newest first). A folder counts when it holds both ``initdb`` and
``postgres``.

PostgreSQL refuses to run as root: under root, ``initdb`` and ``postgres`` run as an unprivileged
user (``CTD_PG_USER``, else ``nobody``; the data folder is created under the system temp folder and
handed to that user, since pytest's own temp folders are private to root).

Missing binaries are a failure under CI (environment ``CI`` set) or when ``CTD_REQUIRE_POSTGRES`` is
set (``nox -s tests`` sets it): a skipped check is not a result. Elsewhere the tests are skipped with
the reason. Binaries that exist but cannot start a server are always a failure.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

#: Environment variables read by the fixture.
BIN_ENV = "CTD_PG_BIN"
USER_ENV = "CTD_PG_USER"
REQUIRE_ENV = "CTD_REQUIRE_POSTGRES"
DB_USER = "ctd"


def _has_server(folder: Path) -> bool:
    return (folder / "initdb").is_file() and (folder / "postgres").is_file()


def candidate_bin_dirs() -> Iterator[tuple[str, Path]]:
    """(where it came from, folder) for every place server binaries may be, in search order."""
    env = os.environ.get(BIN_ENV)
    if env:
        yield BIN_ENV, Path(env)
    spec = importlib.util.find_spec("pgserver")  # locates the wheel without importing it
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            yield "the pgserver wheel", Path(loc) / "pginstall" / "bin"
    for name in ("postgres", "initdb"):
        found = shutil.which(name)
        if found:
            yield "PATH", Path(found).resolve().parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10
            )
            if out.returncode == 0 and out.stdout.strip():
                yield "pg_config", Path(out.stdout.strip())
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    for folder in versions:
        yield "/usr/lib/postgresql", Path(folder)


def _version_key(folder: str) -> float:
    try:
        return float(Path(folder).parent.name)
    except ValueError:
        return 0.0


def find_bin_dir() -> Path | None:
    """The first folder with ``initdb`` and ``postgres`` (see the module docstring), or None."""
    if os.environ.get(BIN_ENV) and not _has_server(Path(os.environ[BIN_ENV])):
        raise RuntimeError(f"{BIN_ENV}={os.environ[BIN_ENV]} holds no initdb and postgres")
    for _, folder in candidate_bin_dirs():
        if _has_server(folder):
            return folder
    return None


def required() -> bool:
    """Whether a missing server must fail the tests (CI, or ``nox -s tests``)."""
    return bool(os.environ.get("CI") or os.environ.get(REQUIRE_ENV))


def unavailable(reason: str) -> NoReturn:
    """Fail (CI, ``nox -s tests``) or skip (elsewhere) for a missing server or client library."""
    import pytest

    if required():
        pytest.fail(f"PostgreSQL tests required (CI / {REQUIRE_ENV}): {reason}")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalPostgres:
    """A PostgreSQL server in a temporary folder on a free loopback port; :meth:`stop` removes it.

    ``url(db)`` gives ``postgresql://ctd@127.0.0.1:PORT/db`` (trust authentication, loopback only).
    ``fsync=False`` (the tests' default) makes a commit durable once the server process has it:
    the tests kill gateways, never the server, and the folder is thrown away (it saves seconds of
    syncing per ``CREATE DATABASE``). Benchmarks comparing durability with SQLite pass True.
    """

    def __init__(self, bin_dir: Path, fsync: bool = False) -> None:
        self.bin_dir = bin_dir
        self.fsync = fsync
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = os.environ.get(USER_ENV, "nobody")
            pwd.getpwnam(self.user)  # KeyError names a missing user
        self.root = Path(tempfile.mkdtemp(prefix="ctd-pg-"))
        self.data = self.root / "data"
        self.logfile = self.root / "server.log"
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            self.bin_dir = self._reachable_bin_dir()
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        try:
            self._initdb()
            self._start()
        except BaseException:
            self.stop()
            raise

    def _reachable_bin_dir(self) -> Path:
        """The binaries as the unprivileged user can run them: where they are, or, when that
        user cannot reach them (a virtual environment under a private home folder), a copy of
        their installation (``bin``, ``lib``, ``share``: the wheel's layout) in the temp folder."""
        try:
            subprocess.run([str(self.bin_dir / "postgres"), "--version"], capture_output=True,
                           check=True, timeout=60, **self._run_as())  # type: ignore[call-overload]  # fmt: skip
            return self.bin_dir
        except (OSError, subprocess.CalledProcessError):
            install = self.bin_dir.parent
            if not all((install / d).is_dir() for d in ("bin", "lib", "share")):
                raise
        # The wheel's binaries find their libraries at $ORIGIN/../../../<package>.libs: keep the
        # relative layout (<package>/pginstall beside <package>.libs).
        site = self.root / "site"
        package = install.parent
        shutil.copytree(install, site / package.name / install.name, symlinks=True)
        libs = package.parent / f"{package.name}.libs"
        if libs.is_dir():
            shutil.copytree(libs, site / libs.name, symlinks=True)
        os.chmod(self.root, 0o755)
        return site / package.name / install.name / "bin"

    def _run_as(self) -> dict[str, object]:
        return {"user": self.user} if self.user is not None else {}

    def _initdb(self) -> None:
        cmd = [str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", DB_USER,
               "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, **self._run_as())  # type: ignore[call-overload]
        if out.returncode != 0:
            raise RuntimeError(f"initdb ({self.bin_dir}) failed: {out.stderr.strip()[-2000:]}")

    def _start(self) -> None:
        cmd = [str(self.bin_dir / "postgres"), "-D", str(self.data), "-p", str(self.port),
               "-k", str(self.root), "-c", "listen_addresses=127.0.0.1",
               "-c", "max_connections=60", "-c", "shared_buffers=32MB",
               "-c", f"fsync={'on' if self.fsync else 'off'}"]  # fmt: skip
        with open(self.logfile, "wb") as log:  # the server keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, **self._run_as()
            )  # type: ignore[call-overload]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited at start: {self.server_log()[-2000:]}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1),
            ):
                if self._ready():
                    return
            time.sleep(0.1)
        raise RuntimeError(f"postgres did not accept connections in 60 s: {self.server_log()}")

    def _ready(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.url("postgres"), connect_timeout=2) as con:
                con.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    def server_log(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")
        except OSError:
            return ""

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://{DB_USER}@127.0.0.1:{self.port}/{db}"

    def create_database(self, name: str) -> str:
        """A new empty database; its URL."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Immediate shutdown of the server (no checkpoint: the folder is removed next)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # "immediate" shutdown
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)

"""Crash test: ``kill -9`` the real server under concurrent load, restart it, and check the log.

Every acknowledged request id must be in the log exactly once, and ``ctd audit`` must read the log
as is, with the right counts.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gateway_fixtures import TOKEN, write_certificate

httpx = pytest.importorskip("httpx")

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, cert: Path, db: Path | str, *extra: str) -> None:
        self.port = free_port()
        env = {**os.environ, "CTD_SERVE_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "ctd_stats.cli", "serve", "--certificate", str(cert),
               "--db", str(db), "--port", str(self.port), *extra]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.proc.stderr.read().decode()}")  # type: ignore[union-attr]
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("server did not start in 30 s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(timeout=30)


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for s in started:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()


def payload(request_id: str) -> dict[str, object]:
    """The input sent under ``request_id`` (a retry must send the same payload)."""
    dv = 0.9 if hash(request_id) % 10 == 0 else 0.1
    return {"request_id": request_id, "probe_prob": 0.3, "dv_score": dv}


def load(url: str, prefix: str, stop: threading.Event, acked: list[str], sent: list[str]) -> None:
    """Send single and batch decisions until ``stop`` or the server dies; record acknowledged ids."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
        i = 0
        while not stop.is_set():
            ids = [f"{prefix}-{i}-{j}" for j in range(1 if i % 2 else 5)]
            items = [payload(r) for r in ids]
            sent.extend(ids)
            try:
                if len(items) == 1:
                    r = client.post("/v1/decide", json=items[0])
                else:
                    r = client.post("/v1/decide/batch", json={"items": items})
            except httpx.TransportError:
                return
            if r.status_code == 200:
                acked.extend(ids)
            i += 1


def run_load(
    url: str, tag: str, threads: int, seconds: float, kill: Server | None = None, min_acked: int = 0
):
    stop = threading.Event()
    acked: list[str] = []
    sent: list[str] = []
    workers = [
        threading.Thread(target=load, args=(url, f"{tag}{t}", stop, acked, sent))
        for t in range(threads)
    ]
    for w in workers:
        w.start()
    # Load for ``seconds``, and on until ``min_acked`` decisions were acknowledged (a slow,
    # shared machine may need longer), at most 30 s.
    start = time.monotonic()
    while time.monotonic() - start < 30 and (
        time.monotonic() - start < seconds or len(acked) < min_acked
    ):
        time.sleep(0.05)
    if kill is not None:
        kill.stop(signal.SIGKILL)
    stop.set()
    for w in workers:
        w.join(timeout=30)
    return acked, sent


@pytest.mark.parametrize("sync", ["full", "normal"])
def test_kill_9_under_load_loses_no_acknowledged_decision(tmp_path, servers, capsys, sync):
    """Both durability modes survive ``kill -9`` (``normal`` commits stay in the OS page cache)."""
    cert = write_certificate(tmp_path / "certificate.json", threshold=0.5, budget=0.3)
    db = tmp_path / "gateway.db"
    first = Server(cert, db, "--sync", sync)
    servers.append(first)
    acked1, sent1 = run_load(first.url, "a", threads=6, seconds=0.5, kill=first, min_acked=200)
    assert first.proc.returncode == -signal.SIGKILL
    assert len(acked1) >= 200, "the load did not get going before the kill"

    second = Server(cert, db, "--sync", sync)
    servers.append(second)
    # Clients retry what was in flight at the crash: the ids make the retry idempotent.
    retried = [r for r in sent1 if r not in set(acked1)][:20]
    with httpx.Client(base_url=second.url, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        for rid in retried:
            r = c.post("/v1/decide", json=payload(rid))
            assert r.status_code == 200
        budget = c.get("/v1/budget").json()
    acked2, _ = run_load(second.url, "b", threads=3, seconds=0.3)
    second.stop()
    assert second.proc.returncode in (
        0,
        -signal.SIGTERM,
    )  # uvicorn re-raises SIGTERM after a clean shutdown

    con = sqlite3.connect(db)
    ids = [r[0] for r in con.execute("SELECT request_id FROM decisions")]
    n, k = con.execute("SELECT COUNT(*), SUM(delegated) FROM decisions").fetchone()
    con.close()
    logged = set(ids)
    assert len(ids) == len(logged), "a request id was logged twice"
    acknowledged = set(acked1) | set(acked2) | set(retried)
    assert acknowledged <= logged, f"{len(acknowledged - logged)} acknowledged decisions lost"
    assert logged <= set(sent1) | acknowledged
    assert budget["decisions"] >= len(set(acked1))

    check_audit(tmp_path, capsys, cert, str(db), n, k, "sqlite")


def check_audit(
    tmp_path: Path, capsys: Any, cert: Path, log: str, n: int, k: int, fmt: str
) -> None:
    """``ctd audit`` reads the log as is: compliant, with the log's counts and no mismatch."""
    from ctd_stats.cli.entry import main

    out = tmp_path / f"audit-{fmt}"
    code = main(["audit", "--json", "--certificate", str(cert), "--log", log,
                 "--out", str(out)])  # fmt: skip
    assert code == 0, capsys.readouterr()
    assert json.loads(capsys.readouterr().out)["compliant"] is True
    audit = json.loads((out / "audit.json").read_text())
    assert (audit["rate"]["n"], audit["rate"]["k"]) == (n, k)
    assert audit["integrity"]["n_mismatch"] == 0
    assert audit["log_format"] == fmt


def test_kill_9_of_one_of_two_gateways_on_a_postgres_log(tmp_path, servers, capsys, pg_url):
    """Two replicas on one PostgreSQL log under load; one is killed with ``kill -9``, its clients
    retry on the other, it restarts. Every acknowledged decision is logged once, and the shared
    monitor state counts exactly the logged rows (state and rows commit together)."""
    psycopg = pytest.importorskip("psycopg")
    cert = write_certificate(tmp_path / "certificate.json", threshold=0.5, budget=0.3)
    first, other = Server(cert, pg_url), Server(cert, pg_url)
    servers.extend([first, other])
    side: dict[str, Any] = {}

    def keep_serving() -> None:
        side["acked"], side["sent"] = run_load(other.url, "o", threads=3, seconds=1.0)

    survivor = threading.Thread(target=keep_serving)
    survivor.start()
    acked1, sent1 = run_load(first.url, "a", threads=4, seconds=0.5, kill=first, min_acked=200)
    survivor.join()
    assert first.proc.returncode == -signal.SIGKILL
    assert len(acked1) >= 200, "the load did not get going before the kill"
    # The killed replica's clients retry what was in flight on the surviving replica.
    retried = [r for r in sent1 if r not in set(acked1)][:20]
    with httpx.Client(base_url=other.url, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        for rid in retried:
            assert c.post("/v1/decide", json=payload(rid)).status_code == 200
    restarted = Server(cert, pg_url)
    servers.append(restarted)
    acked2, _ = run_load(restarted.url, "b", threads=3, seconds=0.3)
    with httpx.Client(base_url=restarted.url, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        budget = c.get("/v1/budget").json()
    for s in (restarted, other):
        s.stop()

    with psycopg.connect(pg_url) as con:
        ids = [r[0] for r in con.execute("SELECT request_id FROM decisions")]
        n, k = con.execute("SELECT COUNT(*), SUM(delegated) FROM decisions").fetchone()
        (state,) = con.execute("SELECT state FROM monitor_state").fetchone()
    logged = set(ids)
    assert len(ids) == len(logged), "a request id was logged twice"
    acknowledged = set(acked1) | set(acked2) | set(retried) | set(side["acked"])
    assert acknowledged <= logged, f"{len(acknowledged - logged)} acknowledged decisions lost"
    assert logged <= set(sent1) | set(side["sent"]) | acknowledged
    shared = json.loads(state)
    assert (shared["n_total"], shared["k_total"], shared["monitor"]["n"]) == (n, k, n)
    assert budget["decisions"] == n  # the restarted replica sees every replica's decisions
    check_audit(tmp_path, capsys, cert, pg_url, n, k, "postgres")

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

import pytest
from gateway_fixtures import TOKEN, write_certificate

httpx = pytest.importorskip("httpx")

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, cert: Path, db: Path, *extra: str) -> None:
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

    from ctd_stats.cli.entry import main

    code = main(["audit", "--json", "--certificate", str(cert), "--log", str(db),
                 "--out", str(tmp_path / "audit")])  # fmt: skip
    assert code == 0, capsys.readouterr()
    assert json.loads(capsys.readouterr().out)["compliant"] is True
    audit = json.loads((tmp_path / "audit" / "audit.json").read_text())
    assert (audit["rate"]["n"], audit["rate"]["k"]) == (n, k)
    assert audit["integrity"]["n_mismatch"] == 0
    assert audit["log_format"] == "sqlite"

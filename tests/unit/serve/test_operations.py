"""Operating the gateway (issue 19): one writer per log, readiness, JSON errors, address checks,
SIGHUP, connection deadlines, batch limits before parsing, monitor checkpoints."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gateway_fixtures import TOKEN, write_certificate
from test_crash import ROOT, Server, free_port

from ctd_stats.cli.entry import main

httpx = pytest.importorskip("httpx")


def serve_cmd(cert: Path, db: Path, port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "ctd_stats.cli", "serve", "--certificate", str(cert),
            "--db", str(db), "--port", str(port), *extra]  # fmt: skip


def env() -> dict[str, str]:
    return {**os.environ, "CTD_SERVE_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}


def wait_healthy(proc: Any, port: int) -> None:
    """Poll ``/healthz`` until the gateway answers (60 s at most; fails if it exits)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return
        except httpx.TransportError:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)


class _Killable:  # what the ``servers`` fixture kills at the end
    def __init__(self, proc: Any) -> None:
        self.proc = proc


def launch(tmp_path: Path, servers: list[Any], *extra: str) -> int:
    """Start a gateway subprocess on a fresh certificate and log (killed by the ``servers``
    fixture) and wait until it answers; returns its port."""
    cert = write_certificate(tmp_path / "certificate.json")
    port = free_port()
    proc = subprocess.Popen(
        serve_cmd(cert, tmp_path / "g.db", port, *extra), cwd=ROOT, env=env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    servers.append(_Killable(proc))
    wait_healthy(proc, port)
    return port


def test_a_second_gateway_on_the_same_log_exits_2_before_serving(tmp_path, servers):
    """Issue 19, defect 3: two gateways on one log each watched only their own traffic."""
    cert = write_certificate(tmp_path / "certificate.json")
    db = tmp_path / "gateway.db"
    first = Server(cert, db)
    servers.append(first)
    port = free_port()
    second = subprocess.run(
        serve_cmd(cert, db, port), cwd=ROOT, env=env(), capture_output=True, text=True, timeout=120
    )
    assert second.returncode == 2, second.stderr
    err = second.stderr.strip()
    assert err.count("\n") == 0 and "another gateway" in err and str(first.proc.pid) in err
    with pytest.raises(httpx.TransportError):  # it never listened
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
    assert httpx.get(first.url + "/healthz").status_code == 200
    first.stop()
    third = Server(cert, db)  # the lock died with the first process
    servers.append(third)
    assert httpx.get(third.url + "/readyz").json() == {"status": "ready"}


def test_the_lock_dies_with_a_killed_gateway(tmp_path, servers):
    cert = write_certificate(tmp_path / "certificate.json")
    db = tmp_path / "gateway.db"
    first = Server(cert, db)
    servers.append(first)
    first.stop(signal.SIGKILL)
    second = Server(cert, db)
    servers.append(second)
    assert httpx.get(second.url + "/healthz").status_code == 200


def test_sighup_does_not_kill_the_gateway(tmp_path, servers):
    cert = write_certificate(tmp_path / "certificate.json")
    server = Server(cert, tmp_path / "gateway.db")
    servers.append(server)
    server.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert server.proc.poll() is None
    assert httpx.get(server.url + "/healthz").status_code == 200


def test_stalled_connections_are_closed(tmp_path, servers):
    """Issue 19, defect 6: silent and slow-loris sockets stayed open for ever."""
    port = launch(tmp_path, servers, "--header-timeout", "1", "--keep-alive-timeout", "1")
    silent = socket.create_connection(("127.0.0.1", port))
    loris = socket.create_connection(("127.0.0.1", port))
    loris.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    for _ in range(4):  # trickle a header byte every 0.4 s
        time.sleep(0.4)
        try:
            loris.sendall(b"X")
        except OSError:
            break
    for s in (silent, loris):
        s.settimeout(5)
        try:
            assert s.recv(1024) == b""  # closed by the server
        except ConnectionResetError:
            pass
        s.close()
    assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200


@pytest.mark.parametrize(
    ("port", "host", "needle"),
    [
        ("70000", "127.0.0.1", "--port 70000: a TCP port is 1-65535"),
        ("0", "127.0.0.1", "--port 0"),
        ("http", "127.0.0.1", "not an integer"),
        ("8080", "no-such-host.invalid", "--host"),
        ("8080", "10.254.254.254", "not an address of this machine"),
    ],
)
def test_bad_address_is_one_line_exit_2_and_creates_nothing(
    monkeypatch, capsys, tmp_path, port, host, needle
):
    monkeypatch.setenv("CTD_SERVE_TOKEN", TOKEN)
    cert = write_certificate(tmp_path / "certificate.json")
    db = tmp_path / "sub" / "gateway.db"
    code = main(["serve", "--certificate", str(cert), "--db", str(db), "--port", port,
                 "--host", host])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and needle in err, err
    assert not db.parent.exists()


def test_busy_port_is_one_line_exit_2_and_creates_nothing(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("CTD_SERVE_TOKEN", TOKEN)
    cert = write_certificate(tmp_path / "certificate.json")
    db = tmp_path / "sub" / "gateway.db"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = main(["serve", "--certificate", str(cert), "--db", str(db), "--port", str(port)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "already in use" in err
    assert not db.parent.exists()


def test_the_admin_token_must_differ(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("CTD_SERVE_TOKEN", TOKEN)
    monkeypatch.setenv("CTD_SERVE_ADMIN_TOKEN", TOKEN)
    cert = write_certificate(tmp_path / "certificate.json")
    assert main(["serve", "--certificate", str(cert), "--db", str(tmp_path / "g.db")]) == 2
    assert "admin token must differ" in capsys.readouterr().err


def test_readyz_and_the_write_failure_metric_follow_the_log(make_client, tmp_path):
    """Issue 19, defect 5: with a full disk /healthz stayed 200 and no metric counted failures."""
    client = make_client()
    item = {"probe_prob": 0.2, "dv_score": 0.1}
    assert client.post("/v1/decide", json=item).status_code == 200
    assert client.get("/readyz", headers={"Authorization": ""}).json() == {"status": "ready"}
    con = client.gateway.log._con
    (pages,) = con.execute("PRAGMA page_count").fetchone()
    con.execute(f"PRAGMA max_page_count = {pages}")  # the "disk" is full
    big = [{"probe_prob": 0.2, "dv_score": 0.1, "group": "g" * 120}] * 200
    r = client.post("/v1/decide/batch", json={"items": big})
    assert r.status_code == 500 and r.headers["content-type"] == "application/json"
    assert "nothing acknowledged" in r.json()["detail"]
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "full" in ready.json()["detail"]
    assert "ctd_log_write_failures_total 1" in client.get("/metrics").text
    assert client.get("/healthz").status_code == 200  # alive, not ready
    con.execute("PRAGMA max_page_count = 1073741823")
    assert client.post("/v1/decide/batch", json={"items": big}).status_code == 200
    assert client.get("/readyz").status_code == 200


def test_errors_are_json_everywhere(make_client):
    client = make_client()
    for r in (
        client.get("/no/such/path"),
        client.get("/v1/decide"),  # wrong method
        client.post(
            "/v1/decide", content=b"{not json", headers={"content-type": "application/json"}
        ),
        client.post("/v1/decide/batch", content=b"[", headers={"content-type": "application/json"}),
    ):
        assert r.status_code in (404, 405, 422)
        assert r.headers["content-type"] == "application/json" and "detail" in r.json()


def test_an_over_limit_batch_is_refused_before_its_items_are_validated(make_client, tmp_path):
    """Issue 19, defect 6: a 1 MiB batch was parsed item by item (0.7 s) before the 413."""
    client = make_client(max_batch=10)
    junk = [{"probe_prob": "not a number"}] * 11
    r = client.post("/v1/decide/batch", json={"items": junk})
    assert r.status_code == 413  # a 422 would mean the items were validated first
    assert r.json()["detail"][0]["loc"] == ["body", "items"]


def _spy_on_log_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The ``after_seq`` of every read of the log's delegation column (a restart's replay)."""
    from serve.decisionlog import DecisionLog

    reads: list[int] = []
    real = DecisionLog.delegations

    def spy(self, after=0):
        reads.append(after)
        return real(self, after)

    monkeypatch.setattr(DecisionLog, "delegations", spy)
    return reads


def test_restart_reads_the_checkpoint_not_the_whole_log(make_client, tmp_path, monkeypatch):
    """Issue 19, defect 7: the monitor was rebuilt by replaying the whole log at every start."""
    import serve.budgetwatch as engine

    monkeypatch.setattr(engine, "CHECKPOINT_ROWS", 500)
    client = make_client()
    rng = np.random.default_rng(5)
    for start in range(0, 3000, 250):
        items = [
            {"request_id": f"r{start + i}", "probe_prob": 0.1, "dv_score": float(d)}
            for i, d in enumerate(rng.random(250) * 0.6)
        ]
        assert client.post("/v1/decide/batch", json={"items": items}).status_code == 200
    before = client.get("/v1/budget").json()
    client.__exit__(None, None, None)
    con = sqlite3.connect(tmp_path / "log.db")
    (after_seq,) = con.execute("SELECT after_seq FROM monitor_checkpoint").fetchone()
    con.close()
    assert 2000 <= after_seq < 3000
    reads = _spy_on_log_reads(monkeypatch)
    again = make_client()
    assert reads == [after_seq]  # only the rows after the checkpoint were read
    after = again.get("/v1/budget").json()
    for key in ("decisions", "delegations"):
        assert after[key] == before[key] == (3000 if key == "decisions" else after[key])
    assert after["monitor"]["evidence"] == pytest.approx(before["monitor"]["evidence"], rel=1e-9)
    assert after["monitor"]["decisions"] == before["monitor"]["decisions"] == 3000


def test_a_long_replay_is_checkpointed_at_once(make_client, tmp_path, monkeypatch):
    """A log whose tail has no checkpoint (written by an older version, or rows gathered from
    elsewhere) was replayed at every restart until 4,096 new decisions came: 3.7-4.1 s at each
    launch on a 4M-row log. Now the restart that replays it stores a checkpoint at once."""
    import serve.budgetwatch as engine

    monkeypatch.setattr(engine, "CHECKPOINT_ROWS", 10**9)  # the rows are logged with no checkpoint
    client = make_client()
    for start in range(0, 1500, 250):
        items = [
            {"request_id": f"r{start + i}", "probe_prob": 0.1, "dv_score": 0.1 * (i % 7)}
            for i in range(250)
        ]
        assert client.post("/v1/decide/batch", json={"items": items}).status_code == 200
    before = client.get("/v1/budget").json()
    client.__exit__(None, None, None)
    con = sqlite3.connect(tmp_path / "log.db")
    assert con.execute("SELECT COUNT(*) FROM monitor_checkpoint").fetchone() == (0,)
    con.close()
    monkeypatch.setattr(engine, "CHECKPOINT_ROWS", 500)
    reads = _spy_on_log_reads(monkeypatch)
    replayed = make_client()  # replays the 1,500 rows, then checkpoints
    replayed.__exit__(None, None, None)
    con = sqlite3.connect(tmp_path / "log.db")
    (after_seq,) = con.execute("SELECT after_seq FROM monitor_checkpoint").fetchone()
    con.close()
    assert reads == [0] and after_seq == 1500
    again = make_client()
    assert reads == [0, 1500]  # the next restart reads nothing before the checkpoint
    after = again.get("/v1/budget").json()
    assert after["decisions"] == before["decisions"] == 1500
    assert after["monitor"]["evidence"] == pytest.approx(before["monitor"]["evidence"], rel=1e-9)


def test_the_live_monitor_catches_a_change_after_a_long_good_history(make_client):
    """Issue 19, defect 4, through the gateway: 20,000 in-budget decisions, then a rate of 0.8."""
    client = make_client(on_alarm="continue")
    rng = np.random.default_rng(9)
    good = rng.random(20_000) < 0.1 / 0.5 * 0.5  # dv > 0.5 with probability 0.1
    for start in range(0, good.size, 256):
        items = [
            {"probe_prob": 0.1, "dv_score": 0.9 if g else 0.1} for g in good[start : start + 256]
        ]
        client.post("/v1/decide/batch", json={"items": items})
    assert not client.get("/v1/budget").json()["monitor"]["alarm"]
    bad = [{"probe_prob": 0.1, "dv_score": 0.9 if x else 0.1} for x in rng.random(300) < 0.8]
    for i in range(0, 300, 10):
        client.post("/v1/decide/batch", json={"items": bad[i : i + 10]})
    state = client.get("/v1/budget").json()["monitor"]
    assert state["alarm"] and 20_000 <= state["alarm_at"] < 20_300, json.dumps(state)


def test_requests_over_the_in_flight_limit_get_a_json_503(tmp_path, certificate):
    """The concurrency limit answers JSON (uvicorn's own limit answered plain text)."""
    import asyncio

    from gateway_fixtures import FakeExpert

    from serve.app import create_app
    from serve.config import GatewayConfig, Token
    from serve.gateway import Gateway

    gateway = Gateway(
        GatewayConfig(certificate=certificate, db=tmp_path / "g.db", expert_timeout_s=5.0),
        expert=FakeExpert("timeout"),  # answers after 0.5 s
    )
    app = create_app(gateway, Token(TOKEN), max_in_flight=1)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    body = {"probe_prob": 0.2, "dv_score": 0.9, "text": "slow"}

    async def both() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            first = asyncio.create_task(client.post("/v1/decide", json=body, headers=headers))
            await asyncio.sleep(0.1)
            second = await client.post("/v1/decide", json=body, headers=headers)
            return [await first, second]

    try:
        first, second = asyncio.run(both())
    finally:
        gateway.close()
    assert first.status_code == 200
    assert second.status_code == 503 and second.headers["content-type"] == "application/json"
    assert "in flight" in second.json()["detail"] and second.headers["retry-after"] == "1"


def test_connections_over_the_cap_are_closed_at_once(tmp_path, servers):
    port = launch(tmp_path, servers, "--max-connections", "3")
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    time.sleep(0.3)
    extra = socket.create_connection(("127.0.0.1", port))
    extra.settimeout(3)
    try:
        assert extra.recv(1024) == b""  # closed by the server, well before the header timeout
    except ConnectionResetError:
        pass
    for s in [*held, extra]:
        s.close()
    time.sleep(0.3)
    assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200


def test_ctrl_c_twice_stops_without_a_traceback(tmp_path):
    cert = write_certificate(tmp_path / "certificate.json")
    port = free_port()
    proc = subprocess.Popen(
        serve_cmd(cert, tmp_path / "g.db", port),
        cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_healthy(proc, port)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in err, err


def test_a_malformed_http_request_gets_a_json_400(tmp_path, servers):
    """Issue 19 (JSON errors everywhere): uvicorn answered a request its parser rejects in plain text."""
    port = launch(tmp_path, servers)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
        raw = b""
        while chunk := sock.recv(4096):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 400 Bad Request"
    assert "content-type: application/json" in [ln.lower() for ln in lines]
    assert json.loads(body)["detail"].startswith("malformed HTTP request")

"""Two gateways on one PostgreSQL decision log (a real server started by the ``pg_url`` fixture).

What must hold across replicas: one monitor fed by the combined traffic (issue 19, defect 3: two
gateways each saw only their own traffic, 66% delegated against a 20% budget, and no alarm),
idempotency bound to content whichever gateway logged an id first, a 503 failure that is not a
decision, and ``ctd audit`` reading the log with the same result as the same rows in SQLite.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from typing import Any

import numpy as np
import pytest
from gateway_fixtures import ADMIN_TOKEN, FakeExpert

psycopg = pytest.importorskip("psycopg")

from ctd_stats.audit.change_monitor import ChangeMonitor  # noqa: E402
from ctd_stats.audit.logs.schema import DECISIONS_DDL  # noqa: E402
from ctd_stats.audit.run import audit_log  # noqa: E402

BUDGET = 0.2  # gateway_fixtures' certificate


@pytest.fixture
def gateways(pg_url: str, make_client: Any) -> Any:
    """``make(**config)``: an app client for a new gateway on the test's PostgreSQL log."""
    return lambda expert=None, **cfg: make_client(expert, db=pg_url, **cfg)


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as con:
        return list(con.execute(sql).fetchall())


def _batch(tag: str, i: int, delegated: int, size: int = 50) -> dict[str, Any]:
    """``size`` scores-only items, ``delegated`` of them (evenly spread) over τ = 0.5."""
    over = [(j + 1) * delegated // size > j * delegated // size for j in range(size)]
    return {"items": [{"request_id": f"{tag}{i}-{j}", "probe_prob": 0.3,
                       "dv_score": 0.9 if over[j] else 0.1} for j in range(size)]}  # fmt: skip


def test_two_gateways_feed_one_monitor_that_alarms_on_their_combined_traffic(pg_url, gateways):
    """A sends 10% delegations (within the 20% budget), B 60%: together 35%. The shared monitor
    alarms exactly where one monitor fed the combined log in commit order does, A (whose own
    traffic never alarms a monitor of its own) reports it and stops delegating."""
    a, b = gateways(), gateways()
    for i in range(40):
        assert a.post("/v1/decide/batch", json=_batch("a", i, 5)).status_code == 200
        assert b.post("/v1/decide/batch", json=_batch("b", i, 30)).status_code == 200
        if b.gateway.monitor.alarm:
            break
    state = a.get("/v1/budget").json()
    logged = _rows(pg_url, "SELECT request_id, delegated FROM decisions ORDER BY seq")
    assert state["decisions"] == len(logged) == 100 * (i + 1)  # A's view counts B's rows too
    assert state["monitor"]["alarm"] is True and state["never_delegate"] is True

    combined = ChangeMonitor(BUDGET, 0.05).update(np.array([d for _, d in logged], dtype=bool))
    assert combined.alarm and state["monitor"]["alarm_at"] == combined.alarm_at
    own = np.array([d for r, d in logged if r.startswith("a")], dtype=bool)
    assert not ChangeMonitor(BUDGET, 0.05).update(own).alarm, "A alone would have alarmed"
    # What issue 19 saw: a per-gateway monitor on A keeps delegating. The shared one stops A.
    r = a.post("/v1/decide", json={"request_id": "after", "probe_prob": 0.3, "dv_score": 0.9})
    assert r.json()["outcome"] == "suppressed"
    events = _rows(pg_url, "SELECT kind FROM gateway_events")
    assert events == [("alarm",)], "one alarm, raised by the commit that crossed the threshold"

    # The operator reset on one gateway resumes delegation on the other.
    reset = a.post("/v1/admin/reset", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert reset.status_code == 200 and reset.json()["monitor"]["alarm"] is False
    r = b.post("/v1/decide", json={"request_id": "resumed", "probe_prob": 0.3, "dv_score": 0.9})
    assert r.json()["outcome"] == "deferred"  # delegated again (no expert here: deferred)
    assert b.get("/v1/budget").json()["monitor"]["decisions"] == 1


def test_a_restarted_gateway_takes_the_shared_state_without_replaying(pg_url, gateways):
    a = gateways()
    for i in range(4):
        assert a.post("/v1/decide/batch", json=_batch("a", i, 10)).status_code == 200
    before = a.get("/v1/budget").json()
    a.gateway.close()
    c = gateways()
    assert c.get("/v1/budget").json() == before
    assert c.gateway.monitor.to_state() == a.gateway.monitor.to_state()


def test_idempotency_holds_across_gateways(pg_url, gateways):
    a, b = gateways(), gateways()
    first = {"request_id": "d2", "probe_prob": 0.9, "dv_score": 0.0}
    r1 = a.post("/v1/decide", json=first).json()
    r2 = b.post("/v1/decide", json=first).json()
    assert r2["replayed"] is True and r2 == {**r1, "replayed": True}
    other = {"request_id": "d2", "probe_prob": 0.01, "dv_score": 5.0, "text": "another input"}
    r3 = b.post("/v1/decide", json=other)
    assert r3.status_code == 409 and r3.json()["request_id"] == "d2"
    # In a batch: nothing of the batch is logged.
    r4 = b.post("/v1/decide/batch", json={"items": [
        {"request_id": "fresh", "probe_prob": 0.1, "dv_score": 0.1}, other]})  # fmt: skip
    assert r4.status_code == 409
    assert _rows(pg_url, "SELECT request_id FROM decisions ORDER BY seq") == [("d2",)]


def test_the_same_new_ids_sent_to_two_gateways_at_once_are_logged_once(pg_url, gateways):
    a, b = gateways(), gateways()
    ids = [f"r{i}" for i in range(60)]
    answers: dict[str, list[dict[str, Any]]] = {"a": [], "b": []}

    def send(name: str, client: Any) -> None:
        for rid in ids:
            r = client.post("/v1/decide", json={"request_id": rid, "probe_prob": 0.2,
                                                "dv_score": 0.7})  # fmt: skip
            assert r.status_code == 200
            answers[name].append(r.json())

    threads = [threading.Thread(target=send, args=x) for x in (("a", a), ("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    logged = _rows(pg_url, "SELECT request_id, timestamp FROM decisions")
    assert sorted(r for r, _ in logged) == sorted(ids)  # each id once
    when = dict(logged)
    for x, y in zip(answers["a"], answers["b"], strict=True):
        assert x["logged_at"] == y["logged_at"] == when[x["request_id"]]
        assert x["replayed"] != y["replayed"]  # one gateway logged it, the other replayed it
    assert a.get("/v1/budget").json()["decisions"] == len(ids)


def test_a_503_failure_on_one_gateway_is_retried_on_the_other(pg_url, gateways):
    down = gateways(FakeExpert(fail="error"), scores_only=True, expert_failure="503")
    up = gateways(FakeExpert())
    item = {"request_id": "t1", "probe_prob": 0.2, "dv_score": 0.9, "text": "a prompt"}
    assert down.post("/v1/decide", json=item).status_code == 503
    r = up.post("/v1/decide", json=item)
    assert r.status_code == 200 and r.json()["outcome"] == "expert"
    assert r.json()["replayed"] is False
    assert _rows(pg_url, "SELECT request_id, outcome FROM decisions") == [("t1", "expert")]
    assert _rows(pg_url, "SELECT request_id FROM request_failures") == [("t1",)]


def test_a_gateway_for_another_rule_or_level_is_refused(pg_url, gateways, tmp_path):
    from gateway_fixtures import write_certificate

    from ctd_stats.errors import CTDInputError
    from serve.config import GatewayConfig
    from serve.gateway import Gateway

    gateways()
    other = write_certificate(tmp_path / "other.json", threshold=0.7)
    with pytest.raises(CTDInputError, match="certificate_sha256"):
        Gateway(GatewayConfig(certificate=other, db=pg_url))
    with pytest.raises(CTDInputError, match="alpha"):
        Gateway(GatewayConfig(certificate=tmp_path / "certificate.json", db=pg_url, alpha=0.01))


def test_audit_reads_the_postgres_log_like_the_same_rows_in_sqlite(pg_url, gateways, tmp_path):
    a, b = gateways(), gateways()
    rng = np.random.default_rng(7)
    for i in range(6):
        for tag, client in (("a", a), ("b", b)):
            items = [{"request_id": f"{tag}{i}-{j}", "probe_prob": float(p), "dv_score": float(d),
                      "group": ["x", "y|z"][j % 2]}
                     for j, (p, d) in enumerate(zip(rng.random(40), rng.random(40), strict=True))]  # fmt: skip
            assert client.post("/v1/decide/batch", json={"items": items}).status_code == 200
    cols = ("seq, request_id, timestamp, dv_score, probe_prob, delegated, expert_called, "
            "expert_prob, probability, verdict, outcome, threshold, certificate_sha256, expert, "
            '"group", input_kind, expert_latency_ms, payload_sha256')  # fmt: skip
    rows = _rows(pg_url, f"SELECT {cols} FROM decisions ORDER BY seq")
    copy = tmp_path / "copy.db"
    con = sqlite3.connect(copy)
    con.executescript(DECISIONS_DDL)
    con.executemany(f"INSERT INTO decisions ({cols}) VALUES ({', '.join('?' * 18)})", rows)
    con.commit()
    con.close()

    args = {"threshold": 0.5, "budget": BUDGET, "alpha": 0.05, "chunk_rows": 100}
    on_pg = audit_log(pg_url, **args).to_dict()
    on_sqlite = audit_log(copy, **args).to_dict()
    assert on_pg["log_format"] == "postgres" and on_sqlite["log_format"] == "sqlite"
    for d in (on_pg, on_sqlite):  # where, in which format and when (to the second) it was read
        d.pop("log"), d.pop("log_format"), d.pop("created_at")
    assert on_pg == on_sqlite
    assert on_pg["rate"]["n"] == 480 and not on_pg["verdict"]["compliant"]  # about 50% delegated

    from ctd_stats.cli.entry import main

    cert = str(tmp_path / "certificate.json")
    code = main(["audit", "--json", "--certificate", cert, "--log", pg_url,
                 "--out", str(tmp_path / "audit")])  # fmt: skip
    assert code == 1  # not compliant: exit 1, read from PostgreSQL
    written = json.loads((tmp_path / "audit" / "audit.json").read_text())
    assert written["log_format"] == "postgres" and written["rate"]["n"] == 480


def test_a_gateway_reconnects_after_its_database_sessions_are_killed(pg_url, gateways):
    """A server restart or failover breaks the gateway's connections: the commit that meets the
    broken connection fails (500, nothing acknowledged), the retry reconnects and is logged once."""
    a = gateways()
    item = {"request_id": "k1", "probe_prob": 0.2, "dv_score": 0.9}
    assert a.post("/v1/decide", json=item).status_code == 200
    with psycopg.connect(pg_url, autocommit=True) as con:
        killed = con.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    assert len(killed) >= 2  # the gateway's write and read sessions
    retry = {"request_id": "k2", "probe_prob": 0.2, "dv_score": 0.1}
    first = a.post("/v1/decide", json=retry)
    assert first.status_code in (200, 500)
    assert a.post("/v1/decide", json=retry).status_code == 200
    assert a.get("/readyz").status_code == 200
    assert a.get("/v1/budget").json()["decisions"] == 2
    assert _rows(pg_url, "SELECT request_id FROM decisions ORDER BY seq") == [("k1",), ("k2",)]

"""Endpoint tests with an in-process client: decisions, refusals (no log row), faults, the monitor."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from gateway_fixtures import ADMIN_TOKEN, TOKEN, FakeExpert, write_certificate

from ctd_stats.errors import CTDInputError

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def rows(db: Path) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(db)
    try:
        return con.execute(
            "SELECT request_id, delegated, outcome, expert_called FROM decisions ORDER BY seq"
        ).fetchall()
    finally:
        con.close()


def test_healthz_needs_no_token(make_client):
    client = make_client()
    assert client.get("/healthz", headers={"Authorization": ""}).json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/v1/decide"),
        ("post", "/v1/decide/batch"),
        ("get", "/v1/budget"),
        ("get", "/metrics"),
        ("post", "/v1/admin/reset"),
    ],
)
@pytest.mark.parametrize(
    "header", [None, "Bearer wrong-token-0123456789", f"Basic {TOKEN}", "Bearer"]
)
def test_every_endpoint_but_healthz_needs_the_token(make_client, tmp_path, method, path, header):
    client = make_client()
    headers = {"Authorization": header} if header else {}
    if header is None:
        client.headers.pop("Authorization")
    kwargs: dict[str, Any] = {"headers": headers}
    if method == "post":
        kwargs["json"] = {"probe_prob": 0.1, "dv_score": 0.9}
    r = getattr(client, method)(path, **kwargs)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert TOKEN not in r.text
    assert rows(tmp_path / "log.db") == []


def test_decide_logs_before_answering(make_client, tmp_path):
    client = make_client()
    kept = client.post("/v1/decide", json={"probe_prob": 0.8, "dv_score": 0.1, "request_id": "a"})
    sent = client.post("/v1/decide", json={"probe_prob": 0.2, "dv_score": 0.9, "request_id": "b"})
    assert kept.status_code == sent.status_code == 200
    k, s = kept.json(), sent.json()
    assert (k["delegated"], k["outcome"], k["verdict"], k["probability"]) == (
        False,
        "probe",
        "unsafe",
        0.8,
    )
    assert (s["delegated"], s["outcome"], s["verdict"]) == (True, "deferred", None)
    assert k["threshold"] == 0.5 and len(k["certificate_sha256"]) == 64
    assert rows(tmp_path / "log.db") == [("a", 0, "probe", 0), ("b", 1, "deferred", 0)]


def test_a_repeated_request_id_is_answered_from_the_log(make_client, tmp_path):
    client = make_client()
    body = {"probe_prob": 0.2, "dv_score": 0.1, "request_id": "x", "group": "g"}
    first = client.post("/v1/decide", json=body)
    again = client.post("/v1/decide", json=dict(reversed(body.items())))  # same payload
    assert again.status_code == 200 and again.json()["replayed"] is True
    assert again.json()["outcome"] == first.json()["outcome"] == "probe"
    assert len(rows(tmp_path / "log.db")) == 1


@pytest.mark.parametrize(
    "other",
    [
        {"probe_prob": 0.01, "dv_score": 5.0, "text": "another input"},  # issue 19's example
        {"probe_prob": 0.9, "dv_score": 0.0, "group": "g"},  # only the group differs
        {"probe_prob": 0.9, "dv_score": 1e-300},  # a tiny score difference
    ],
)
def test_a_reused_request_id_with_another_payload_is_409(make_client, tmp_path, other):
    """Issue 19, defect 1: the second input got 200 replayed:true with the first decision."""
    client = make_client()
    first = client.post("/v1/decide", json={"request_id": "d2", "probe_prob": 0.9, "dv_score": 0.0})
    assert first.status_code == 200
    r = client.post("/v1/decide", json={"request_id": "d2", **other})
    assert r.status_code == 409, r.text
    assert r.json()["request_id"] == "d2" and "d2" in r.json()["detail"]
    batch = client.post(
        "/v1/decide/batch",
        json={"items": [{"request_id": "new", "probe_prob": 0.1, "dv_score": 0.1},
                        {"request_id": "d2", **other}]},
    )  # fmt: skip
    assert batch.status_code == 409 and batch.json()["request_id"] == "d2"
    assert rows(tmp_path / "log.db") == [("d2", 0, "probe", 0)]  # nothing of the refused batch


def test_one_id_with_two_payloads_in_one_batch_is_409(make_client, tmp_path):
    client = make_client()
    a = {"request_id": "b1", "probe_prob": 0.1, "dv_score": 0.1}
    r = client.post("/v1/decide/batch", json={"items": [a, {**a, "dv_score": 0.9}]})
    assert r.status_code == 409 and r.json()["request_id"] == "b1"
    assert rows(tmp_path / "log.db") == []
    same = client.post("/v1/decide/batch", json={"items": [a, a]}).json()["decisions"]
    assert [d["replayed"] for d in same] == [False, True]
    assert len(rows(tmp_path / "log.db")) == 1


def test_a_reused_id_of_a_delegated_text_is_409_without_calling_the_expert(make_client):
    expert = FakeExpert()
    client = make_client(expert=expert)
    body = {"request_id": "e1", "probe_prob": 0.2, "dv_score": 0.9, "text": "t"}
    assert client.post("/v1/decide", json=body).json()["outcome"] == "expert"
    r = client.post("/v1/decide", json={**body, "text": "other text"})
    assert r.status_code == 409 and expert.calls == 1


BAD_INPUTS = [
    ({"probe_prob": "0.2", "dv_score": 0.3}, "probe_prob"),
    ({"probe_prob": True, "dv_score": 0.3}, "probe_prob"),
    ({"probe_prob": 0.2, "dv_score": [0.3]}, "dv_score"),
    ({"probe_prob": 1.5, "dv_score": 0.3}, "probe_prob"),
    ({"probe_prob": 0.2}, "dv_score"),
    ({"dv_score": 0.2}, "probe_prob"),
    ({}, "text"),
    ({"probe_prob": 0.2, "dv_score": 0.3, "extra": 1}, "extra"),
    ({"probe_prob": 0.2, "dv_score": 0.3, "request_id": "has space"}, "request_id"),
    ({"text": "hello"}, "dv_score"),  # scores-only gateway
]


@pytest.mark.parametrize(("body", "field"), BAD_INPUTS)
def test_bad_inputs_get_422_naming_the_field_and_no_row(make_client, tmp_path, body, field):
    client = make_client()
    r = client.post("/v1/decide", json=body)
    assert r.status_code == 422
    assert field in r.text
    assert rows(tmp_path / "log.db") == []


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_non_finite_scores_are_refused(make_client, tmp_path, literal):
    client = make_client()
    body = b'{"probe_prob": 0.2, "dv_score": ' + literal + b"}"
    r = client.post("/v1/decide", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422 and "dv_score" in r.text
    assert rows(tmp_path / "log.db") == []


def test_batch_limits(make_client, tmp_path):
    client = make_client(max_batch=3)
    item = {"probe_prob": 0.2, "dv_score": 0.3}
    assert client.post("/v1/decide/batch", json={"items": [item] * 4}).status_code == 413
    assert client.post("/v1/decide/batch", json={"items": []}).status_code == 422
    bad = client.post("/v1/decide/batch", json={"items": [item, {**item, "dv_score": "x"}]})
    assert bad.status_code == 422 and "items" in bad.text and "dv_score" in bad.text
    assert rows(tmp_path / "log.db") == []
    ok = client.post("/v1/decide/batch", json={"items": [item, {**item, "dv_score": 0.7}]})
    assert [d["delegated"] for d in ok.json()["decisions"]] == [False, True]
    assert len(rows(tmp_path / "log.db")) == 2


def test_body_size_limit(make_client, tmp_path):
    client = make_client(max_body_bytes=2048)
    big = {"probe_prob": 0.2, "dv_score": 0.3, "text": "x" * 4000}
    assert client.post("/v1/decide", json=big).status_code == 413

    def chunked():  # no Content-Length: the middleware counts the bytes
        yield b'{"probe_prob": 0.2, "dv_score": 0.3, "text": "'
        yield b"x" * 4000
        yield b'"}'

    r = client.post("/v1/decide", content=chunked(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert rows(tmp_path / "log.db") == []


def test_expert_answers_delegated_texts(make_client, tmp_path):
    expert = FakeExpert()
    client = make_client(expert=expert)
    r = client.post("/v1/decide", json={"probe_prob": 0.2, "dv_score": 0.9, "text": "hi"}).json()
    assert (r["outcome"], r["verdict"], r["probability"], r["expert_called"]) == (
        "expert",
        "unsafe",
        0.9,
        True,
    )
    client.post("/v1/decide", json={"probe_prob": 0.2, "dv_score": 0.1, "text": "hi"})
    assert expert.calls == 1


@pytest.mark.parametrize("fail", ["error", "timeout"])
def test_expert_failure_fails_closed_to_the_probe(make_client, tmp_path, fail):
    client = make_client(expert=FakeExpert(fail), expert_timeout_s=0.1)
    r = client.post("/v1/decide", json={"probe_prob": 0.2, "dv_score": 0.9, "text": "hi"})
    assert r.status_code == 200
    assert (r.json()["outcome"], r.json()["verdict"]) == (f"expert_{fail}_probe", "safe")
    assert rows(tmp_path / "log.db") == [(r.json()["request_id"], 1, f"expert_{fail}_probe", 1)]
    assert f'ctd_expert_failures_total{{kind="{fail}"}} 1' in client.get("/metrics").text


def test_a_503_is_not_a_decision_and_its_retry_is_evaluated_again(make_client, tmp_path):
    """Issue 19, defect 2: the retry of a 503 got 200 verdict:null and no expert call."""
    expert = FakeExpert("error")
    client = make_client(expert=expert, expert_failure="503")
    body = {"probe_prob": 0.2, "dv_score": 0.9, "text": "t", "request_id": "q"}
    r = client.post("/v1/decide", json=body)
    assert r.status_code == 503
    assert r.json()["decisions"][0]["outcome"] == "expert_error_503"
    assert rows(tmp_path / "log.db") == []  # not a decision ...
    con = sqlite3.connect(tmp_path / "log.db")
    failures = con.execute("SELECT request_id, outcome FROM request_failures").fetchall()
    con.close()
    assert failures == [("q", "expert_error_503")]  # ... but on record
    again = client.post("/v1/decide", json=body)
    assert again.status_code == 503 and expert.calls == 2  # evaluated again
    expert.fail = None
    ok = client.post("/v1/decide", json=body)
    assert ok.status_code == 200 and expert.calls == 3
    assert (ok.json()["outcome"], ok.json()["verdict"], ok.json()["replayed"]) == (
        "expert",
        "unsafe",
        False,
    )
    assert rows(tmp_path / "log.db") == [("q", 1, "expert", 1)]


def test_a_batch_with_a_503_logs_only_its_decided_inputs(make_client, tmp_path):
    client = make_client(expert=FakeExpert("error"), expert_failure="503")
    items = [
        {"probe_prob": 0.2, "dv_score": 0.1, "request_id": "kept"},
        {"probe_prob": 0.2, "dv_score": 0.9, "text": "t", "request_id": "failed"},
    ]
    r = client.post("/v1/decide/batch", json={"items": items})
    assert r.status_code == 503
    assert [d["outcome"] for d in r.json()["decisions"]] == ["probe", "expert_error_503"]
    assert rows(tmp_path / "log.db") == [("kept", 0, "probe", 0)]


def test_alarm_suspends_delegation_until_reset(make_client, tmp_path):
    client = make_client(expert=FakeExpert())
    item = {"probe_prob": 0.2, "dv_score": 0.9, "text": "t"}
    client.post("/v1/decide/batch", json={"items": [item] * 60})  # rate 1 against a budget of 0.2
    state = client.get("/v1/budget").json()
    assert state["monitor"]["alarm"] and state["never_delegate"]
    assert state["decisions"] == 60 and state["delegations"] == 60
    assert state["interval"]["low"] > 0.9
    r = client.post("/v1/decide", json=item).json()
    assert (r["delegated"], r["expert_called"], r["outcome"]) == (True, False, "suppressed")
    assert "ctd_never_delegate 1" in client.get("/metrics").text
    assert client.post("/v1/admin/reset").status_code == 403  # the decision token cannot reset
    after = client.post("/v1/admin/reset", headers=ADMIN).json()
    assert not after["never_delegate"] and after["monitor"]["decisions"] == 0
    assert after["decisions"] == 61
    assert client.post("/v1/decide", json=item).json()["outcome"] == "expert"


def test_on_alarm_continue_keeps_delegating(make_client):
    client = make_client(expert=FakeExpert(), on_alarm="continue")
    item = {"probe_prob": 0.2, "dv_score": 0.9, "text": "t"}
    client.post("/v1/decide/batch", json={"items": [item] * 60})
    assert client.get("/v1/budget").json()["monitor"]["alarm"]
    assert client.post("/v1/decide", json=item).json()["outcome"] == "expert"


def test_metrics_are_prometheus_text(make_client):
    client = make_client()
    client.post("/v1/decide", json={"probe_prob": 0.2, "dv_score": 0.9})
    client.post("/v1/decide", json={"probe_prob": 0.2})
    text = client.get("/metrics")
    assert text.headers["content-type"].startswith("text/plain")
    for line in (
        'ctd_decisions_total{outcome="deferred"} 1',
        "ctd_delegations_total 1",
        'ctd_rejected_requests_total{status="422"} 1',
        "ctd_monitor_alarm 0",
        "# TYPE ctd_expert_latency_seconds histogram",
    ):
        assert line in text.text


def test_restart_restores_counts_and_refuses_another_certificate(make_client, tmp_path):
    from serve.config import GatewayConfig
    from serve.gateway import Gateway

    client = make_client()
    client.post("/v1/decide/batch", json={"items": [{"probe_prob": 0.2, "dv_score": 0.9}] * 3})
    client.__exit__(None, None, None)
    again = make_client()
    assert again.get("/v1/budget").json()["decisions"] == 3
    again.__exit__(None, None, None)
    other = write_certificate(tmp_path / "other.json", threshold=0.7)
    with pytest.raises(CTDInputError, match="one log holds the decisions of one certified rule"):
        Gateway(GatewayConfig(certificate=other, db=tmp_path / "log.db"))


def test_a_replayed_delegation_does_not_call_the_expert_again(make_client, tmp_path):
    expert = FakeExpert()
    client = make_client(expert=expert)
    body = {"probe_prob": 0.2, "dv_score": 0.9, "text": "t", "request_id": "once"}
    assert client.post("/v1/decide", json=body).json()["outcome"] == "expert"
    again = client.post("/v1/decide", json=body).json()
    assert (again["outcome"], again["replayed"], expert.calls) == ("expert", True, 1)
    assert len(rows(tmp_path / "log.db")) == 1


def test_reset_survives_a_restart(make_client):
    client = make_client()
    item = {"probe_prob": 0.2, "dv_score": 0.9}
    client.post("/v1/decide/batch", json={"items": [item] * 60})
    assert client.get("/v1/budget").json()["never_delegate"]
    client.post("/v1/admin/reset", headers=ADMIN)
    client.post("/v1/decide/batch", json={"items": [{**item, "dv_score": 0.1}] * 5})
    client.__exit__(None, None, None)
    state = make_client().get("/v1/budget").json()
    assert (state["decisions"], state["delegations"]) == (65, 60)
    assert (state["monitor"]["since_decision"], state["monitor"]["decisions"]) == (60, 5)
    assert not state["never_delegate"]


def test_text_over_the_limit_is_422(make_client, tmp_path):
    client = make_client(max_text_chars=10)
    r = client.post("/v1/decide", json={"probe_prob": 0.2, "dv_score": 0.9, "text": "x" * 11})
    assert r.status_code == 422 and "text" in r.text
    assert rows(tmp_path / "log.db") == []

"""``GET /metrics``: Prometheus text from ``prometheus_client``, one registry per gateway."""

from __future__ import annotations

import pytest
from gateway_fixtures import FakeExpert

parser = pytest.importorskip("prometheus_client.parser")

#: Every metric the gateway exposes (names kept from the hand-written exposition of 0.2.0).
NAMES = {
    "ctd_decisions": "counter",
    "ctd_delegations": "counter",
    "ctd_expert_calls": "counter",
    "ctd_expert_failures": "counter",
    "ctd_rejected_requests": "counter",
    "ctd_expert_latency_seconds": "histogram",
    "ctd_budget": "gauge",
    "ctd_realized_delegation_rate": "gauge",
    "ctd_monitor_alarm": "gauge",
    "ctd_monitor_evidence": "gauge",
    "ctd_never_delegate": "gauge",
    "ctd_log_commits": "counter",
    "ctd_log_write_failures": "counter",
}


def _families(client) -> dict[str, object]:
    text = client.get("/metrics")
    assert text.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {f.name: f for f in parser.text_string_to_metric_families(text.text)}


def test_every_metric_parses_with_its_type_and_value(make_client):
    client = make_client(FakeExpert())
    client.post("/v1/decide", json={"probe_prob": 0.2, "dv_score": 0.9, "text": "a prompt"})
    client.post("/v1/decide", json={"probe_prob": 0.2, "dv_score": 0.1})
    client.post("/v1/decide", json={"probe_prob": 0.2})
    fams = _families(client)
    for name, kind in NAMES.items():
        assert fams[name].type == kind, name
    values = {(s.name, tuple(sorted(s.labels.items()))): s.value
              for f in fams.values() for s in f.samples}  # fmt: skip
    assert values[("ctd_decisions_total", (("outcome", "expert"),))] == 1
    assert values[("ctd_decisions_total", (("outcome", "probe"),))] == 1
    assert values[("ctd_delegations_total", ())] == 1
    assert values[("ctd_expert_calls_total", ())] == 1
    assert values[("ctd_expert_failures_total", (("kind", "timeout"),))] == 0
    assert values[("ctd_rejected_requests_total", (("status", "422"),))] == 1
    assert values[("ctd_expert_latency_seconds_count", ())] == 1
    assert values[("ctd_expert_latency_seconds_bucket", (("le", "+Inf"),))] == 1
    assert values[("ctd_realized_delegation_rate", ())] == 0.5
    assert values[("ctd_log_commits_total", ())] >= 1


def test_two_gateways_in_one_process_keep_their_own_counts(make_client, tmp_path):
    one = make_client(db=tmp_path / "one.db")
    two = make_client(db=tmp_path / "two.db")
    one.post("/v1/decide/batch", json={"items": [{"probe_prob": 0.2, "dv_score": 0.9}] * 3})
    two.post("/v1/decide", json={"probe_prob": 0.2, "dv_score": 0.9})

    def deferred(client) -> float:
        fam = _families(client)["ctd_decisions"]
        return next(s.value for s in fam.samples if s.name == "ctd_decisions_total")

    assert (deferred(one), deferred(two)) == (3, 1)

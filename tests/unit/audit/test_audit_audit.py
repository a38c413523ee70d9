"""audit_log end to end in Python: verdicts, windows, groups, drift, report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from audit_fixtures import BUDGET, TAU, make_log

from ctd_stats.audit import audit_log, reference_from_scores
from ctd_stats.reports.audit import write_audit


def test_compliant_log() -> None:
    df = make_log(20_000, rate=0.08, seed=1)
    r = audit_log(df, threshold=TAU, budget=BUDGET, window="1h")
    assert r.verdict.compliant and r.exit_code == 0 and r.verdict.headline.startswith("COMPLIANT")
    assert not r.sequential.alarm and r.sequential.evidence < 20
    assert r.rate.ci_low <= r.rate.rate <= r.rate.ci_high
    assert sum(w.n for w in r.windows) == 20_000 and sum(w.k for w in r.windows) == r.rate.k
    assert len(r.windows) == int(np.ceil(20_000 * 10 / 3600))
    assert sum(g.n for g in r.groups) == 20_000 and {g.label for g in r.groups} == {
        "en",
        "de",
        "fr",
    }
    d = r.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["schema_version"] == "ctd.audit/1"


def test_violating_log_alarms_early() -> None:
    df = make_log(20_000, rate=0.15, seed=2)
    r = audit_log(df, threshold=TAU, budget=BUDGET, window="1000rows")
    assert (
        not r.verdict.compliant and r.verdict.budget_violation and not r.verdict.integrity_violation
    )
    s = r.sequential
    assert s.alarm and s.alarm_index is not None and s.alarm_index < 3000
    assert (
        s.alarm_row == s.alarm_index
        and s.evidence_at_alarm is not None
        and s.evidence_at_alarm >= 20
    )
    assert r.rate.rejects and r.verdict.headline.startswith("VIOLATION")
    assert len(r.windows) == 20 and all(w.n == 1000 for w in r.windows)


def test_fixed_n_decision_rule() -> None:
    df = make_log(20_000, rate=0.15, seed=2)
    r = audit_log(df, threshold=TAU, budget=BUDGET, decision_rule="fixed_n")
    assert r.verdict.budget_violation and "exact binomial" in r.verdict.headline


def test_drift_warning() -> None:
    rng = np.random.default_rng(0)
    calib = rng.random(5000)
    df = make_log(20_000, seed=3)
    same = audit_log(
        df,
        threshold=TAU,
        budget=BUDGET,
        score_reference=reference_from_scores(df["dv_score"].to_numpy()[::-1][:5000]),
    )
    assert same.drift.available and not same.drift.warning
    shifted = audit_log(
        df, threshold=TAU, budget=BUDGET, score_reference=reference_from_scores(calib**0.7)
    )
    assert (
        shifted.drift.warning and shifted.drift.pvalue is not None and shifted.drift.pvalue < 0.05
    )
    assert any("score drift" in w for w in shifted.warnings)
    assert shifted.verdict.compliant  # drift alone never changes the verdict


def test_never_delegate_certificate() -> None:
    df = make_log(1000, seed=4)
    r = audit_log(df, threshold=float("inf"), budget=BUDGET)
    assert r.integrity.n_mismatch == r.rate.k > 0 and not r.verdict.compliant
    assert r.to_dict()["threshold"] == "inf"


def test_write_audit(tmp_path: Path) -> None:
    df = make_log(5000, seed=5)
    r = audit_log(
        df, threshold=TAU, budget=BUDGET, score_reference=reference_from_scores(df["dv_score"])
    )
    paths = write_audit(r, tmp_path / "out")
    data = json.loads(paths["json"].read_text())
    assert data["verdict"]["compliant"] is True
    html = paths["html"].read_text()
    assert "COMPLIANT" in html and html.count("data:image/png;base64") >= 3
    md = paths["markdown"].read_text()
    assert md.index("Verdict") < md.index("Delegation rate against the budget")
    # rewriting is atomic and replaces the files
    write_audit(r, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "audit.html",
        "audit.json",
        "audit.md",
        "manifest.json",
    ]


@pytest.mark.parametrize("window", ["auto", "30min", "1d", "250rows"])
def test_windows_partition_the_log(window: str) -> None:
    df = make_log(7777, seed=6, groups=False)
    r = audit_log(df, threshold=TAU, budget=BUDGET, window=window, chunk_rows=1000)
    assert sum(w.n for w in r.windows) == 7777 and sum(w.k for w in r.windows) == r.rate.k
    if window == "auto":
        assert 20 <= len(r.windows) <= 40

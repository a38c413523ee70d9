"""The audit's result: frozen pydantic models (the content of ``audit.json``) and their builders.

:class:`AuditResult` is what :func:`ctd_stats.audit.audit_log` returns; :func:`rate_summary`,
:func:`sequential_summary` and :func:`verdict` turn the counts of one pass over a log into the
summaries and the verdict, with their statements in words.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict

from ctd_stats.audit.monitor import BudgetMonitor
from ctd_stats.io import json_safe
from ctd_stats.stats.intervals import FixedNResult

SCHEMA_VERSION = "ctd.audit/1"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RateSummary(_Frozen):
    """Realized rate with its exact interval and the fixed-n test of "rate > budget"."""

    n: int
    k: int
    rate: float
    ci_low: float
    ci_high: float
    confidence: float
    pvalue: float
    rejects: bool
    statement: str


class SequentialSummary(_Frozen):
    """State of the anytime-valid monitor at the end of the log."""

    alarm: bool
    alarm_index: int | None
    alarm_row: int | None
    alarm_timestamp: str | float | None
    evidence_at_alarm: float | None
    evidence: float
    log_evidence: float
    evidence_threshold: float
    cs_low: float
    cs_high: float
    prior_a: float
    prior_c: float
    statement: str


class MismatchRow(_Frozen):
    row: int
    timestamp: str | float
    score: float
    delegated: bool
    expected: bool


class IntegritySummary(_Frozen):
    has_scores: bool
    has_decisions: bool
    n_mismatch: int
    n_delegated_at_or_below: int
    n_kept_above: int
    mismatch_rows: list[MismatchRow]
    n_missing_scores: int
    implied_threshold_low: float | None
    implied_threshold_high: float | None
    consistent: bool
    monotone: bool
    sorted_by_time: bool


class RateRow(_Frozen):
    label: str
    start: str | float | None
    end: str | float | None
    n: int
    k: int
    rate: float
    ci_low: float
    ci_high: float
    above_budget: bool


class DriftSummary(_Frozen):
    available: bool
    statistic: float | None = None
    pvalue: float | None = None
    n_log: int = 0
    n_reference: int = 0
    resolution: float | None = None
    warning: bool = False
    reference_rate_above_threshold: float | None = None
    reference_quantiles: list[float] = []
    log_cdf_at_quantiles: list[float] = []
    note: str = ""


class Trace(_Frozen):
    """Cumulative counts at (about) evenly spaced points, with the evidence and confidence sequence."""

    t: list[int]
    k: list[int]
    timestamp: list[str | float]
    log_evidence: list[float]
    cs_low: list[float]
    cs_high: list[float]


class Verdict(_Frozen):
    compliant: bool
    budget_violation: bool
    integrity_violation: bool
    headline: str
    reasons: list[str]


class AuditResult(_Frozen):
    """Everything an audit found; :meth:`to_dict` is the content of ``audit.json``."""

    schema_version: str
    created_at: str
    package_version: str
    log: str
    log_format: str
    certificate: str | None
    expert: str | None
    threshold: float
    budget: float
    alpha: float
    decision_rule: str
    columns: dict[str, str | None]
    verdict: Verdict
    rate: RateSummary
    sequential: SequentialSummary
    integrity: IntegritySummary
    window: str
    windows: list[RateRow]
    groups: list[RateRow]
    drift: DriftSummary
    trace: Trace
    warnings: list[str]

    @property
    def compliant(self) -> bool:
        return self.verdict.compliant

    @property
    def exit_code(self) -> int:
        """0 compliant, 1 violation (budget or integrity)."""
        return 0 if self.verdict.compliant else 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (non-finite floats become the strings ``"inf"``/``"-inf"``/``"nan"``)."""
        return json_safe(self.model_dump(mode="python"))


def format_timestamp(ns: int, kind: str) -> str | float:
    if kind == "datetime":
        return pd.Timestamp(ns, unit="ns", tz="UTC").isoformat()
    return ns / 1e9


def _pct(x: float) -> str:
    if not math.isfinite(x):
        return "–"
    return f"{100 * x:.4g}%"


# ------------------------------------------------------------------------------------- builders
def rate_summary(fx: FixedNResult, budget: float, alpha: float) -> RateSummary:
    """The realized rate, its Clopper–Pearson interval and the fixed-n binomial test, in words."""
    conf = 1 - alpha
    return RateSummary(
        n=fx.n,
        k=fx.k,
        rate=fx.rate,
        ci_low=fx.ci_low,
        ci_high=fx.ci_high,
        confidence=conf,
        pvalue=fx.pvalue,
        rejects=fx.rejects,
        statement=(
            f"Exact binomial test of H0: rate <= {budget:g} vs H1: rate > {budget:g}, "
            f"p = P(Bin({fx.n}, {budget:g}) >= {fx.k}) = {fx.pvalue:.3g}. Valid at level {alpha:g} for "
            "i.i.d. decisions when the log length was fixed in advance (one look); the interval is "
            f"the two-sided {100 * conf:g}% Clopper–Pearson interval."
        ),
    )


def sequential_summary(
    mon: BudgetMonitor,
    alarm_row: int | None,
    alarm_timestamp: str | float | None,
    budget: float,
    alpha: float,
) -> SequentialSummary:
    """The monitor's state at the end of the log, with its guarantee in words."""
    conf = 1 - alpha
    cs_lo, cs_hi = mon.interval
    return SequentialSummary(
        alarm=mon.alarm,
        alarm_index=mon.alarm_at,
        alarm_row=alarm_row,
        alarm_timestamp=alarm_timestamp,
        evidence_at_alarm=mon.evidence_at_alarm,
        evidence=mon.evidence,
        log_evidence=mon.log_evidence,
        evidence_threshold=1.0 / alpha,
        cs_low=cs_lo,
        cs_high=cs_hi,
        prior_a=mon.martingale.prior.a,
        prior_c=mon.martingale.prior.c,
        statement=(
            "Anytime-valid test of H0: rate <= budget: a Beta-mixture likelihood-ratio test "
            f"supermartingale for every rate <= {budget:g}; it alarms when its wealth reaches "
            f"1/alpha = {1 / alpha:g}. If decisions are i.i.d. with rate <= budget, the probability "
            f"of ever alarming is <= {alpha:g} (Ville's inequality), however often and however long "
            f"the log is monitored. The interval is a {100 * conf:g}% confidence sequence (valid "
            "simultaneously at every time)."
        ),
    )


def verdict(
    *,
    decision_rule: str,
    rate: RateSummary,
    seq: SequentialSummary,
    integ: IntegritySummary,
    threshold: float,
    budget: float,
    alpha: float,
    fail_on_mismatch: bool,
) -> Verdict:
    """Compliant unless the chosen budget test rejects or (with ``fail_on_mismatch``) rows
    contradict the certified threshold; the headline and reasons say why, in words."""
    conf = 1 - alpha
    budget_violation = seq.alarm if decision_rule == "sequential" else rate.rejects
    n_mismatch = integ.n_mismatch
    integrity_violation = fail_on_mismatch and n_mismatch > 0
    reasons: list[str] = []
    rate_txt = (
        f"{rate.k:,} of {rate.n:,} decisions delegated ({_pct(rate.rate)}, {100 * conf:g}% CI "
        f"{_pct(rate.ci_low)}–{_pct(rate.ci_high)}) against a certified budget of {_pct(budget)}"
    )
    if budget_violation:
        if decision_rule == "sequential":
            when = f"row {seq.alarm_row:,}" if seq.alarm_row is not None else "?"
            if seq.alarm_timestamp is not None:
                when += f", {seq.alarm_timestamp}"
            reasons.append(
                f"the delegation rate exceeds the certified budget: the anytime-valid monitor alarmed "
                f"after {(seq.alarm_index or 0) + 1:,} decisions ({when}) with evidence "
                f"{seq.evidence_at_alarm:.3g} >= 1/alpha = {1 / alpha:g}"
            )
        else:
            reasons.append(
                f"the delegation rate exceeds the certified budget: exact binomial p = {rate.pvalue:.3g} <= {alpha:g}"
            )
    if n_mismatch:
        reasons.append(
            f"{n_mismatch:,} rows contradict the certified threshold τ = {threshold:.6g} "
            f"({integ.n_delegated_at_or_below:,} delegated with score <= τ, "
            f"{integ.n_kept_above:,} kept with score > τ)"
            + ("" if fail_on_mismatch else " (not counted as a failure: fail_on_mismatch=False)")
        )
    compliant = not (budget_violation or integrity_violation)
    if compliant:
        other = (
            f"the anytime-valid monitor did not alarm (evidence {seq.evidence:.3g} < {1 / alpha:g})"
            if decision_rule == "sequential"
            else f"the exact binomial test does not reject (p = {rate.pvalue:.3g})"
        )
        headline = f"COMPLIANT — {rate_txt}; {other}."
    else:
        headline = "VIOLATION — " + "; ".join(reasons) + f". {rate_txt[0].upper()}{rate_txt[1:]}."
    return Verdict(
        compliant=compliant,
        budget_violation=bool(budget_violation),
        integrity_violation=bool(integrity_violation),
        headline=headline,
        reasons=reasons,
    )

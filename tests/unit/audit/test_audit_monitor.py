"""The anytime-valid monitor: false-alarm frequency, detection delay, exactness of the fast path."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from ctd_stats.audit.monitor import (
    BetaPrior,
    BudgetMonitor,
    MixtureMartingale,
    confidence_sequence,
    default_prior,
    simulate_alarm_times,
)
from ctd_stats.stats.intervals import clopper_pearson
from tests._support.tolerance import binomial_tolerance

ALPHA = 0.05
TRIALS, HORIZON = 2000, 5000


def test_detection_delay_at_one_and_a_half_budget(record_property) -> None:
    budget = 0.1
    alarms = simulate_alarm_times(
        1.5 * budget, budget, ALPHA, trials=TRIALS, horizon=HORIZON, seed=21
    )
    detected = alarms > 0
    med = float(np.median(alarms[detected]))
    q90 = float(np.quantile(alarms[detected], 0.9))
    record_property("detection_delay_median", med)
    print(
        f"rate 1.5 x budget: detected {detected.mean():.4f}, median delay {med:.0f}, 90% {q90:.0f}"
    )
    assert detected.mean() >= 0.995
    # KL(0.15 || 0.1) ~ 0.0122 nats per decision; log(20)/KL ~ 245, plus the mixture's cost
    assert 100 <= med <= 600
    assert q90 <= 1500


def test_mean_of_evidence_is_at_most_one_under_null() -> None:
    """E_p[M_t] = 1 at p = budget and < 1 below it (exact sum over the binomial pmf)."""
    b, t = 0.1, 300
    m = MixtureMartingale(b, ALPHA, default_prior(b))
    ks = np.arange(t + 1)
    ev = np.exp(m.log_evidence(np.full_like(ks, t), ks))
    assert float(np.sum(stats.binom.pmf(ks, t, b) * ev)) == pytest.approx(1.0, rel=1e-9)
    assert float(np.sum(stats.binom.pmf(ks, t, 0.07) * ev)) < 1.0


@settings(max_examples=150, deadline=None)
@given(
    t=st.integers(1, 10**7),
    frac=st.floats(0, 1),
    budget=st.floats(0.005, 0.95),
    a=st.floats(0.3, 5),
    c=st.floats(1, 50),
)
def test_cheap_bound_dominates_exact_evidence(
    t: int, frac: float, budget: float, a: float, c: float
) -> None:
    m = MixtureMartingale(budget, ALPHA, BetaPrior(a, c))
    k = round(frac * t)
    exact = float(m.log_evidence(t, k))
    bound = float(m.log_evidence_bound(t, k))
    assert bound >= exact - 1e-6 * max(1.0, abs(exact))


@pytest.mark.parametrize("budget", [0.05, 0.2])
@pytest.mark.parametrize("p_factor", [1.0, 1.3])
def test_first_alarm_equals_brute_force(budget: float, p_factor: float) -> None:
    m = MixtureMartingale(budget, ALPHA, default_prior(budget))
    for seed in range(20):
        x = np.random.default_rng(seed).random(4000) < budget * p_factor
        t = np.arange(1, x.size + 1)
        k = np.cumsum(x)
        brute = np.flatnonzero(m.log_evidence(t, k) >= m.log_threshold)
        assert m.first_alarm(t, k) == (int(brute[0]) if brute.size else -1)


def test_monitor_scalar_and_chunked_updates_agree() -> None:
    x = np.random.default_rng(3).random(3000) < 0.16
    a = BudgetMonitor(0.1, 0.05).update(x)
    b = BudgetMonitor(0.1, 0.05)
    for v in x[:500]:
        b.update(bool(v))
    for s in range(500, x.size, 333):
        b.update(x[s : s + 333].astype(int))
    assert (a.n, a.k, a.alarm, a.alarm_at) == (b.n, b.k, b.alarm, b.alarm_at)
    assert a.alarm and a.evidence_at_alarm is not None and a.evidence_at_alarm >= 20
    assert a.log_evidence == pytest.approx(b.log_evidence)
    lo, hi = a.interval
    assert lo <= a.rate <= hi


def test_monitor_state_and_errors() -> None:
    m = BudgetMonitor(0.2)
    assert m.n == 0 and math.isnan(m.rate) and not m.alarm and m.alarm_at is None
    assert m.interval == (0.0, 1.0) and m.evidence == 1.0
    m.update([])
    with pytest.raises(ValueError, match="boolean"):
        m.update([0, 1, 2])
    with pytest.raises(ValueError):
        m.update(["yes"])
    with pytest.raises(ValueError):
        BudgetMonitor(1.2)
    with pytest.raises(ValueError):
        BudgetMonitor(0.1, alpha=0)
    assert "BudgetMonitor" in repr(m)


def test_confidence_sequence_contains_cp_interval_and_covers() -> None:
    t = np.array([10, 100, 1000, 10_000])
    k = (t * 0.1).astype(int)
    lo, hi = confidence_sequence(t, k, 0.05)
    cp_lo, cp_hi = clopper_pearson(k, t, 0.05)
    assert np.all(lo <= cp_lo + 1e-12) and np.all(hi >= cp_hi - 1e-12)
    # time-uniform coverage on 400 streams of length 2000 (p = 0.1): misses <= alpha (99.9% tolerance)
    rng = np.random.default_rng(5)
    x = rng.random((400, 2000)) < 0.1
    tt = np.broadcast_to(np.arange(1, 2001), x.shape)
    lo, hi = confidence_sequence(tt.ravel(), np.cumsum(x, axis=1).ravel(), 0.05)
    miss = ((lo > 0.1) | (hi < 0.1)).reshape(x.shape).any(axis=1).sum()
    assert int(miss) <= binomial_tolerance(400, 0.05)


def test_detection_prior_keeps_validity_and_speeds_up_detection_at_its_target():
    """Any prior keeps P(false alarm) <= alpha (binomial tolerance); the tuned one alarms sooner at
    rho x budget than the default (fixed seeds; measured medians 240 vs 297 at 1.5 b)."""

    from ctd_stats.audit.monitor import MixtureMartingale, default_prior, detection_prior

    b, alpha, T = 0.1, 0.05, 4000
    tuned = detection_prior(b, 1.5)
    assert tuned.c >= 1 and abs(tuned.a / (tuned.a + tuned.c) - 0.15) < 1e-12
    t = np.arange(1, T + 1)

    def first_alarms(prior, rate, streams, seed):
        mart, rng = MixtureMartingale(b, alpha, prior), np.random.default_rng(seed)
        return np.array(
            [mart.first_alarm(t, np.cumsum(rng.random(T) < rate)) for _ in range(streams)]
        )

    null = first_alarms(tuned, b, 600, seed=11)
    assert int((null >= 0).sum()) <= binomial_tolerance(600, alpha)
    fast = first_alarms(tuned, 1.5 * b, 150, seed=12)
    slow = first_alarms(default_prior(b), 1.5 * b, 150, seed=12)
    assert (fast >= 0).all() and (slow >= 0).all()
    assert np.median(fast) < np.median(slow)
    with pytest.raises(ValueError, match="rho must be > 1"):
        detection_prior(b, 1.0)

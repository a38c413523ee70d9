"""The change detector of the live gateway: false alarms (exact binomial tolerance), delay that does
not grow with history, chunking independence and the checkpoint round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from ctd_stats.audit.change_monitor import ChangeMonitor, future_mass, log_weight


def test_weights_sum_to_one_and_future_mass_is_the_tail():
    j = np.arange(0, 200_000)
    w = np.exp(log_weight(j))
    assert np.all(w > 0)
    assert w.sum() + future_mass(j.size) == pytest.approx(1.0, abs=1e-12)
    assert future_mass(0) == 1.0


@pytest.mark.parametrize("kind", ["iid_at_budget", "drifting_within_budget"])
def test_false_alarm_frequency_is_at_most_alpha(kind):
    """P(ever alarm) <= alpha under the null; many short start spacings make it hard to hold.

    500 streams of 1,000 decisions at level 0.1 (spacing 4: 250 start times per stream). The number
    of alarmed streams must not exceed the 99.9% quantile of Binomial(500, 0.1) (a detector whose
    false-alarm probability were 0.2 would pass this with probability < 0.001).
    """
    alpha, budget, streams, horizon = 0.1, 0.2, 500, 1000
    rng = np.random.default_rng(20260 + len(kind))
    alarms = 0
    for _ in range(streams):
        if kind == "iid_at_budget":
            p = np.full(horizon, budget)
        else:  # conditional rate within budget, changing over time
            p = np.where((np.arange(horizon) // 50) % 2 == 0, budget, 0.05)
        mon = ChangeMonitor(budget, alpha, spacing=4, recent=4).update(rng.random(horizon) < p)
        alarms += mon.alarm
    limit = stats.binom.ppf(0.999, streams, alpha)
    assert alarms <= limit, f"{alarms}/{streams} false alarms (limit {limit:.0f})"
    assert stats.binom.cdf(limit, streams, 0.2) < 1e-3  # the test has teeth


def _delays(history: int, seeds: range) -> list[int]:
    out = []
    for s in seeds:
        rng = np.random.default_rng(1000 + s)
        mon = ChangeMonitor(0.2, 0.05).update(rng.random(history) < 0.1)
        assert not mon.alarm
        mon.update(rng.random(20_000) < 0.4)
        assert mon.alarm_at is not None
        out.append(mon.alarm_at + 1 - history)
    return out


def test_delay_after_a_long_good_history_stays_small():
    """0.1 -> 0.4 against a budget of 0.2: the cumulative monitor needed 27,039 decisions after
    50,000 good ones (issue 19); the change detector needs a few hundred at most."""
    fresh = _delays(0, range(5))
    later = _delays(50_000, range(5))
    assert max(fresh) < 150
    assert max(later) < 400, later
    assert np.median(later) < 10 * np.median(fresh) + 200


def test_alarm_time_does_not_depend_on_how_the_stream_is_cut():
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.random(30_000) < 0.15, rng.random(5_000) < 0.3])
    whole = ChangeMonitor(0.2, 0.05).update(x)
    parts = ChangeMonitor(0.2, 0.05)
    i = 0
    while i < x.size:
        step = int(rng.integers(1, 900))
        parts.update(x[i : i + step])
        i += step
    assert whole.alarm_at is not None and whole.alarm_at == parts.alarm_at


def test_state_round_trip_continues_identically():
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.random(20_000) < 0.15, rng.random(5_000) < 0.35])
    ref = ChangeMonitor(0.2, 0.05).update(x)
    a = ChangeMonitor(0.2, 0.05).update(x[:17_000])
    b = ChangeMonitor.from_state(json.loads(json.dumps(a.to_state())))
    assert b.log_evidence == pytest.approx(a.log_evidence, rel=1e-12)
    b.update(x[17_000:])
    assert b.alarm_at == ref.alarm_at and (b.n, b.k) == (ref.n, ref.k)
    with pytest.raises(ValueError, match="state"):
        ChangeMonitor.from_state({"version": "other"})

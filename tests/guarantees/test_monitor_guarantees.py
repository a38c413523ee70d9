"""Anytime validity of the budget monitor: false-alarm frequency ≤ α on compliant streams (slow)."""

from __future__ import annotations

import pytest

from ctd_stats.audit.monitor import simulate_alarm_times
from tests._support.tolerance import binomial_tolerance

pytestmark = pytest.mark.slow

ALPHA = 0.05
TRIALS, HORIZON = 2000, 5000


@pytest.mark.parametrize(
    ("budget", "ratio", "seed"), [(0.1, 1.0, 11), (0.1, 0.8, 12), (0.3, 1.0, 13), (0.02, 1.0, 14)]
)
def test_false_alarm_frequency_at_most_alpha(
    budget: float, ratio: float, seed: int, record_property
) -> None:
    """Compliant streams (rate = budget, and below): P(ever alarm within 5000) <= alpha.

    Binomial tolerance: the one-sided 99.9% Clopper–Pearson *lower* bound on the false-alarm
    probability must not exceed alpha (i.e. the simulation gives no evidence, at level 0.1%, that the
    false-alarm probability is above alpha).
    """
    alarms = simulate_alarm_times(
        budget * ratio, budget, ALPHA, trials=TRIALS, horizon=HORIZON, seed=seed
    )
    count = int((alarms > 0).sum())
    tol = binomial_tolerance(TRIALS, ALPHA)
    record_property("false_alarm_frequency", count / TRIALS)
    print(f"budget={budget} rate={budget * ratio}: false alarms {count}/{TRIALS} = {count / TRIALS:.4f}, "
          f"tolerance {tol}")  # fmt: skip
    assert count <= tol

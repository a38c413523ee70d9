"""The simulator itself: power, negative controls, result objects (the guarantee simulations are in tests/guarantees/).

Each check asserts that the one-sided 99.9% upper Clopper–Pearson bound on the violation
probability is below δ + SLACK. If the true violation probability exceeded δ + SLACK, the bound
would exceed it with probability ≥ 0.999, so these tests would fail if the guarantee were false.
"""

import numpy as np
from scipy import stats

from ctd_stats import (
    make_population,
    simulate_budget_guarantee,
)

DELTA = 0.1
SLACK = 0.01


def test_power_fixed_sequence_continuous():
    """Reported power: at n = 1000, budget 0.3, δ = 0.1 the mean true rate is ≥ 0.275."""
    res = simulate_budget_guarantee(make_population("uniform"), n=1000, budget=0.3, delta=0.1, trials=10_000, seed=0)
    assert res.mean_realized_rate >= 0.275
    # and the guarantee is nearly tight (exact test): violation frequency is close to δ
    lo, _ = res.violation_interval
    assert lo > 0.07


def test_negative_control_plugin_threshold_violates():
    """The uncertified plug-in threshold (empirical 1 − budget quantile) violates about half the time:
    the same measurement would catch a calibration that does not hold its guarantee."""
    rng = np.random.default_rng(0)
    S = rng.random((5000, 1000))
    tau = np.quantile(S, 0.7, axis=1)
    viol = int(np.sum(1 - tau > 0.3))
    lower = stats.beta.ppf(0.001, viol, 5000 - viol + 1)
    assert lower > DELTA + SLACK


def test_result_json():
    import json

    res = simulate_budget_guarantee(np.random.default_rng(0).random(10_000), n=100, budget=0.3, delta=0.1, trials=200)
    json.dumps(res.to_dict(), allow_nan=False)
    assert res.population == "empirical"

"""The simulator itself: power, negative controls, result objects (the guarantee simulations are in tests/guarantees/).

Each check counts violations in fixed-seed simulations and accepts iff the count is within
``binomial_tolerance(trials, δ)`` (tests/_support/tolerance.py): a procedure that holds its level δ
fails with probability ≤ 0.001, one that violates more often than δ fails with a probability that
grows with the excess, so these tests would fail if the guarantee were false.
"""

import numpy as np
import pytest

from ctd_stats import (
    make_population,
    simulate_budget_guarantee,
)
from tests._support.tolerance import binomial_tolerance

DELTA = 0.1


def test_power_fixed_sequence_continuous():
    """Reported power: at n = 1000, budget 0.3, δ = 0.1 the mean true rate is ≥ 0.275."""
    res = simulate_budget_guarantee(
        make_population("uniform"), n=1000, budget=0.3, delta=0.1, trials=10_000, seed=0
    )
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
    assert viol > binomial_tolerance(5000, DELTA)


def test_result_json():
    import json

    res = simulate_budget_guarantee(
        np.random.default_rng(0).random(10_000), n=100, budget=0.3, delta=0.1, trials=200
    )
    json.dumps(res.to_dict(), allow_nan=False)
    assert res.population == "empirical"


def test_simulation_grid_matches_the_exact_reference():
    """The simulator agrees with the closed forms (n = 20, budget 0.3, δ = 0.1: P = 0.0355, E = 3/21)."""
    from scipy.stats import binomtest

    from ctd_stats.stats.simulate import make_population
    from ctd_stats.study.simulation_grid import simulate_grid

    rows = simulate_grid(
        make_population("uniform"),
        sizes=[20],
        budgets=[0.3],
        procedures=["fixed_sequence", "bonferroni"],
        delta=0.1,
        trials=20_000,
        seed=7,
    )
    fs, bonf = rows
    assert fs["exact_violation"] == pytest.approx(0.0355, abs=5e-4)
    assert fs["exact_mean_rate"] == pytest.approx(3 / 21)
    # violations ~ Bin(trials, exact): an exact two-sided test must not reject at 0.001
    assert binomtest(fs["violations"], fs["trials"], fs["exact_violation"]).pvalue > 1e-3
    assert abs(fs["realized_mean"] - fs["exact_mean_rate"]) < 0.003  # sd/sqrt(20000) ≈ 0.0005
    assert bonf["exact_violation"] is None and bonf["exact_mean_rate"] is None  # no closed form
    discrete = simulate_grid(
        make_population("discrete", values=[0.0, 1.0], probs=[0.5, 0.5]),
        sizes=[20],
        budgets=[0.3],
        procedures=["fixed_sequence"],
        delta=0.1,
        trials=100,
        seed=0,
    )
    assert discrete[0]["exact_violation"] is None  # ties: no closed form

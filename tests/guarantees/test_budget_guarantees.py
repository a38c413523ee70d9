"""Guarantee simulations of the budget (and joint) guarantees: fixed seeds, explicit binomial tolerance.

Each check counts violations in fixed-seed simulations and accepts iff the count is within
``binomial_tolerance(trials, δ)`` (tests/_support/tolerance.py): a procedure that holds its level δ
fails with probability ≤ 0.001, one that violates more often than δ fails with a probability that
grows with the excess, so these tests would fail if the guarantee were false.
"""

import numpy as np
import pytest

from ctd_stats import (
    CascadeData,
    make_population,
    simulate_budget_guarantee,
    simulate_cascade_guarantee,
)
from ctd_stats.stats.simulate import DiscretePopulation, EmpiricalPopulation
from tests._support.tolerance import binomial_tolerance

DELTA = 0.1

pytestmark = pytest.mark.slow


def _population(N, rng, signal):
    probe_ok = rng.random(N) < 0.75
    expert_ok = rng.random(N) < 0.9
    d = signal * (expert_ok.astype(float) - probe_ok.astype(float)) + rng.normal(0, 1, N)
    return CascadeData(np.round(d, 2), probe_ok, expert_ok)  # rounding: ties


@pytest.mark.parametrize("procedure", ["fixed_sequence", "bonferroni"])
@pytest.mark.parametrize("dist", ["uniform", "normal", "discrete", "point_mass"])
def test_budget_guarantee(dist, procedure):
    res = simulate_budget_guarantee(
        make_population(dist),
        n=1000,
        budget=0.3,
        delta=DELTA,
        trials=10_000,
        procedure=procedure,
        seed=42,
    )
    assert res.violations <= binomial_tolerance(res.trials, DELTA), res.to_dict()


@pytest.mark.parametrize("n", [50, 200])
def test_budget_guarantee_small_n_ties_at_the_budget(n):
    """Atoms exactly at the budget boundary (P(X > 1) = 0.3 exactly) and small n."""
    pop = DiscretePopulation([0, 1, 2, 3], [0.4, 0.3, 0.2, 0.1])
    res = simulate_budget_guarantee(pop, n=n, budget=0.3, delta=DELTA, trials=10_000, seed=1)
    assert res.violations <= binomial_tolerance(res.trials, DELTA)
    pop2 = EmpiricalPopulation(np.random.default_rng(0).integers(0, 20, 100_000))
    res2 = simulate_budget_guarantee(pop2, n=n, budget=0.15, delta=DELTA, trials=10_000, seed=2)
    assert res2.violations <= binomial_tolerance(res2.trials, DELTA)


@pytest.mark.parametrize("signal", [0.0, 1.5])
def test_pareto_budget_guarantee(signal):
    pop = _population(200_000, np.random.default_rng(3), signal)
    res = simulate_cascade_guarantee(pop, n=1000, budget=0.3, delta=DELTA, trials=2000, seed=5)
    r = res.budget_result
    assert r.violations <= binomial_tolerance(r.trials, DELTA), r.to_dict()


@pytest.mark.parametrize("error_level", [0.2, 0.15])
@pytest.mark.parametrize("joint", ["max_p", "bonferroni_split"])
def test_joint_budget_and_error_guarantee(joint, error_level):
    """Joint violation ≤ δ (99.9% upper Clopper–Pearson bound < δ + 0.02) for both joint rules.

    ε below the probe's own error (25%), so certification needs the expert: the max-p chain, ordered
    by opt p-values, must also certify most of the time (the old least-delegation-first order never did).
    """
    pop = _population(200_000, np.random.default_rng(4), 2.0)
    res = simulate_cascade_guarantee(
        pop,
        n=1000,
        budget=0.3,
        delta=DELTA,
        trials=1500,
        error_level=error_level,
        joint=joint,
        seed=6,
    )
    v = res.joint_violations
    assert v <= binomial_tolerance(1500, DELTA), res.to_dict()
    assert res.budget_result.fail_closed < 0.1 * 1500, res.to_dict()  # it certifies (power)

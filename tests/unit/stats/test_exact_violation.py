"""Where the world is known, the violation probability is exact: checked against simulation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from ctd_stats.stats import planning
from ctd_stats.stats.simulate import (
    DiscretePopulation,
    EmpiricalPopulation,
    ScipyPopulation,
    exact_budget_violation,
    simulate_budget_guarantee,
)

POPULATIONS = {
    "normal": ScipyPopulation(stats.norm(), name="normal"),
    "atoms": DiscretePopulation([0.0, 0.5, 1.0, 2.0], [0.5, 0.2, 0.2, 0.1]),
    "empirical": EmpiricalPopulation(np.round(np.random.default_rng(1).normal(size=300), 1)),
}


@pytest.mark.parametrize("name", list(POPULATIONS))
@pytest.mark.parametrize(("n", "budget"), [(20, 0.3), (60, 0.25)])
def test_exact_violation_matches_the_simulated_frequency(name, n, budget):
    pop = POPULATIONS[name]
    res = simulate_budget_guarantee(pop, n=n, budget=budget, delta=0.1, trials=20_000, seed=5)
    exact = res.exact_violation
    assert exact is not None and exact <= 0.1 + 1e-12
    assert res.to_dict()["exact_violation_probability"] == exact
    assert stats.binomtest(res.violations, res.trials, exact).pvalue > 1e-3, (res.violations, exact)
    if name == "normal":
        assert exact == pytest.approx(planning.violation_probability(n, budget, 0.1), abs=1e-12)


def test_atoms_exact_value_by_hand():
    # rates P(X ≥ v): 1, 0.5, 0.3, 0.1; budget 0.25 → q = 0.3; n = 20, δ = 0.1 → k* = 2
    pop = POPULATIONS["atoms"]
    k = 2
    assert planning._kstar(20, 0.25, 0.1) == k
    assert exact_budget_violation(pop, 20, 0.25, 0.1) == pytest.approx(stats.binom.cdf(k, 20, 0.3))

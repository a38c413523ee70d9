"""Guarantee simulations of the no-split budget certificate (``split="none"``): fixed seeds, explicit
binomial tolerance.

With ``split="none"`` the Pareto front, its order and the choice of τ̂ are computed on the same rows
as the budget test (proof in :mod:`ctd_stats.stats.pareto`). Each check counts violations of
P(R_B(τ̂) > budget) ≤ δ and accepts iff the count is within ``binomial_tolerance(trials, δ)``
(tests/_support/tolerance.py; a valid procedure fails with probability ≤ 0.001).
The worlds include experts worse than the probe (where over-delegation would be harmful) and heavy
ties in d.
"""

import numpy as np
import pytest

from ctd_stats import CascadeData, simulate_cascade_guarantee
from tests._support.tolerance import binomial_tolerance

DELTA = 0.1
TRIALS = 2000

pytestmark = pytest.mark.slow


def _world(seed, probe_acc, expert_acc, signal, decimals=2, n_pop=200_000):
    rng = np.random.default_rng(seed)
    probe_ok = rng.random(n_pop) < probe_acc
    expert_ok = rng.random(n_pop) < expert_acc
    d = signal * (expert_ok.astype(float) - probe_ok.astype(float)) + rng.normal(0, 1, n_pop)
    return CascadeData(np.round(d, decimals), probe_ok, expert_ok)


WORLDS = {
    "strong_informative": (11, 0.75, 0.9, 1.5, 2),
    "strong_uninformative": (12, 0.75, 0.9, 0.0, 2),
    "harmful_informative": (13, 0.75, 0.6, 1.5, 2),
    "harmful_uninformative": (14, 0.75, 0.4, 0.0, 2),
    "strong_heavy_ties": (15, 0.7, 0.95, 2.0, 0),
}


@pytest.mark.parametrize("n", [200, 1000])
@pytest.mark.parametrize("world", list(WORLDS))
def test_no_split_budget_guarantee(world, n):
    pop = _world(*WORLDS[world])
    res = simulate_cascade_guarantee(
        pop, n=n, budget=0.3, delta=DELTA, trials=TRIALS, split="none", seed=1000 + n
    )
    r = res.budget_result
    assert r.violations <= binomial_tolerance(r.trials, DELTA), r.to_dict()


@pytest.mark.parametrize("budget", [0.1, 0.3])
def test_no_split_guarantee_when_every_delegation_helps(budget):
    """Expert always right, probe always wrong: the error-minimising τ delegates everything, so the
    budget alone stops it; the violation frequency sits close to δ, the hardest case."""
    rng = np.random.default_rng(21)
    n_pop = 100_000
    pop = CascadeData(rng.normal(size=n_pop), np.zeros(n_pop, bool), np.ones(n_pop, bool))
    res = simulate_cascade_guarantee(
        pop, n=300, budget=budget, delta=DELTA, trials=TRIALS, split="none", seed=22
    )
    r = res.budget_result
    assert r.violations <= binomial_tolerance(r.trials, DELTA), r.to_dict()
    assert (
        r.fail_closed == 0 and r.mean_realized_rate > 0.7 * budget
    )  # it spends the budget (k* < αn)

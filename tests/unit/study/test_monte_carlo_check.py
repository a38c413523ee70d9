"""The study's guarantee check is a Monte Carlo estimate: named so, with its power, next to exact values.

Fails before issue 20: no power (a pass at 34 of 200 passes a true violation rate of 0.15 with
probability 0.815, the issue's 0.82), no exact value, and the JSON/report called it a guarantee check.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from ctd_stats.stats.ltt import certified_count
from ctd_stats.stats.pareto import CascadeData
from ctd_stats.stats.sweep import budget_thresholds
from ctd_stats.study.guarantee import (
    MonteCarloCheck,
    exact_pool_violation,
    flag_limit,
    flag_probability,
    monte_carlo_budget_check,
    pool_rates,
)
from tests._support.tolerance import binomial_tolerance


def test_power_against_a_violation_rate_of_015_is_stated_exactly():
    assert flag_limit(200, 0.1) == 34  # the tests' tolerance
    passes = 1 - flag_probability(200, 34, 0.15)
    assert passes == pytest.approx(stats.binom.cdf(34, 200, 0.15), abs=1e-15)
    assert passes == pytest.approx(0.815, abs=5e-4)  # the issue: 0.82
    assert stats.binom.sf(flag_limit(200, 0.1), 200, 0.1) <= 0.001  # false flags at δ
    mc = MonteCarloCheck(np.array([0.2]), 0.1, 200, np.array([35]))
    assert mc.flagged.tolist() == [True] and mc.power == pytest.approx(1 - passes)
    text = mc.sentence()
    assert (
        "Monte Carlo" in text
        and "0.185" in text
        and "0.815" in text
        and "cannot detect dependence" in text
    )


def _pool(n: int = 400, seed: int = 2) -> CascadeData:
    rng = np.random.default_rng(seed)
    d = np.round(rng.normal(size=n), 1)  # ties: a discrete population
    y = rng.random(n) < 0.4
    return CascadeData.from_probabilities(d, y, rng.random(n), rng.random(n))


@pytest.mark.parametrize("n_cal", [30, 120])
def test_exact_pool_violation_matches_simulation(n_cal):
    """Budget-only arm, pool as population: the exact P(Bin(n, q) ≤ k*) against 40,000 draws."""
    pool = _pool()
    budgets = np.array([0.1, 0.2, 0.3])
    exact = exact_pool_violation(np.sort(pool.dv_score), n_cal, budgets, 0.1)
    assert np.all(exact <= 0.1 + 1e-12)
    trials = 40_000
    draws = np.random.default_rng(9).integers(0, pool.n, size=(trials, n_cal))
    rates = pool_rates(
        np.sort(pool.dv_score), budget_thresholds(pool.dv_score[draws], budgets, 0.1)
    )
    v = np.count_nonzero(rates > budgets[None, :] + 1e-12, axis=0)
    for j in range(budgets.size):
        assert stats.binomtest(int(v[j]), trials, float(exact[j])).pvalue > 1e-3, (
            j,
            v[j],
            exact[j],
        )
    k = certified_count(n_cal, 0.2, 0.1)
    assert k >= 0


def test_pareto_arm_within_its_exact_bound():
    pool = _pool(seed=4)
    budgets = np.array([0.15, 0.3])
    trials, n_cal = 600, 120
    pv, _, bv, _ = monte_carlo_budget_check(
        pool, budgets, 0.1, n_cal=n_cal, trials=trials, opt_fraction=0.3, split="none", seed=3
    )
    bound = exact_pool_violation(np.sort(pool.dv_score), n_cal, budgets, 0.1)
    for j in range(budgets.size):
        assert pv[j] <= binomial_tolerance(trials, bound[j])
        assert bv[j] <= binomial_tolerance(trials, bound[j])


def test_study_json_and_report_name_it_monte_carlo():
    from ctd_stats.reports.study import build_study_report
    from ctd_stats.study import run_study
    from ctd_stats.study import runner as engine
    from tests.unit.study.test_study import _inputs

    assert "checked exactly" not in (engine.__doc__ or "")
    s = run_study(_inputs(), budgets=[0.1, 0.3], repeats=20, seed=1)
    d = s.to_dict()
    mc = d["monte_carlo_check"]
    assert mc["kind"] == "monte_carlo" and d["guarantee_check"] == mc  # older key kept as an alias
    assert mc["flag_limit"] == flag_limit(20, s.delta)
    assert mc["power"]["alternative_violation_rate"] == 0.15
    assert 0 < mc["power"]["probability_flagged"] < 1
    bound = mc["exact"]["pareto_violation_upper_bound"]
    assert len(bound) == 2 and all(0 <= x <= s.delta + 1e-12 for x in bound)
    md = build_study_report([s], title="t", costs={"synthetic": 0.5}).to_markdown()
    assert "Monte Carlo check" in md and "Guarantee check:" not in md

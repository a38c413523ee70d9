"""``split="none"``: the Pareto front, order and choice on the same rows as the budget test."""

import math

import numpy as np
import pytest
from scipy import stats

from ctd_stats import CascadeData, calibrate_budget, calibrate_cascade, simulate_cascade_guarantee
from ctd_stats.errors import CTDInputError
from ctd_stats.spec.cascade_spec import CalibrationSpec
from ctd_stats.stats.ltt import certified_count


def _data(rng, n, expert_acc=0.9, signal=1.5):
    probe_ok = rng.random(n) < 0.75
    expert_ok = rng.random(n) < expert_acc
    d = signal * (expert_ok.astype(float) - probe_ok.astype(float)) + rng.normal(0, 1, n)
    return CascadeData(np.round(d, 1), probe_ok, expert_ok)


@pytest.mark.parametrize("pvalue", ["binomial", "hb"])
def test_chosen_threshold_satisfies_the_boundary_condition(pvalue):
    """The proof's sufficient condition: #{d > τ̂} ≤ k* on the n rows, and τ̂ never below the
    budget-only τ̂ of the same rows (whatever the front). Fails if the front, the test counts or the
    choice came from other rows or skipped the test."""
    rng = np.random.default_rng(0)
    for t in range(200):
        n = int(rng.integers(30, 400))
        data = _data(
            rng, n, expert_acc=float(rng.choice([0.4, 0.75, 0.95])), signal=float(rng.uniform(0, 3))
        )
        budget = float(rng.choice([0.05, 0.2, 0.4]))
        cal = calibrate_cascade(data, budget=budget, delta=0.1, split="none", pvalue=pvalue)
        assert cal.split == "none" and cal.n == cal.n_opt == cal.n_ht == n
        kstar = certified_count(n, budget, 0.1, pvalue)
        k = int(np.count_nonzero(data.dv_score > cal.threshold))
        assert k <= max(kstar, 0), (t, k, kstar)
        only = calibrate_budget(data.dv_score, budget, 0.1, pvalue=pvalue)
        assert cal.threshold >= only.threshold
        # among certified front points the lowest in-sample error is chosen
        if cal.is_certified:
            err = cal.front_errors[cal.certified]
            assert cal.chosen_opt_error == err.min()


def test_every_delegation_helps_spends_exactly_the_budget_only_threshold():
    rng = np.random.default_rng(1)
    n = 500
    data = CascadeData(rng.normal(size=n), np.zeros(n, bool), np.ones(n, bool))
    cal = calibrate_cascade(data, budget=0.3, delta=0.1, split="none")
    assert cal.threshold == calibrate_budget(data.dv_score, 0.3, 0.1).threshold


def test_no_split_budget_violations_small_simulation():
    """Exact binomial check (fast): where more delegation always lowers the error, only the test
    limits τ̂, so a front chosen or tested on the wrong rows shows up as violations ≫ δ."""
    rng = np.random.default_rng(2)
    N = 50_000
    pop = CascadeData(rng.normal(size=N), np.zeros(N, bool), np.ones(N, bool))
    res = simulate_cascade_guarantee(
        pop, n=150, budget=0.2, delta=0.1, trials=400, split="none", seed=3
    )
    v = res.budget_result.violations
    assert stats.binomtest(v, 400, 0.1, alternative="greater").pvalue > 0.001, res.to_dict()
    assert res.budget_result.mean_realized_rate > 0.15  # it spends the budget


def test_pre_split_parts_are_joined():
    rng = np.random.default_rng(4)
    a, b = _data(rng, 100), _data(rng, 200)
    joined = calibrate_cascade(opt=a, ht=b, budget=0.3, delta=0.1, split="none")
    whole = calibrate_cascade(CascadeData.concat([a, b]), budget=0.3, delta=0.1, split="none")
    assert joined.threshold == whole.threshold and joined.n == 300


def test_no_split_is_refused_with_an_error_level():
    data = _data(np.random.default_rng(5), 200)
    with pytest.raises(CTDInputError, match=r"split='none'.*error_level"):
        calibrate_cascade(data, budget=0.3, delta=0.1, split="none", error_level=0.2)
    with pytest.raises(CTDInputError, match="split must be one of"):
        calibrate_cascade(data, budget=0.3, delta=0.1, split="half")


def test_spec_split_defaults_and_refusal():
    assert CalibrationSpec().effective_split == "none"
    assert CalibrationSpec(error_level=0.2).effective_split == "opt_ht"
    assert CalibrationSpec(split="opt_ht").effective_split == "opt_ht"
    with pytest.raises(ValueError, match=r"calibration\.split"):
        CalibrationSpec(split="none", error_level=0.2)


def test_to_dict_records_the_split():
    cal = calibrate_cascade(
        _data(np.random.default_rng(6), 300), budget=0.3, delta=0.1, split="none"
    )
    d = cal.to_dict()
    assert d["split"] == "none" and d["n_opt"] == d["n_ht"] == 300
    assert math.isfinite(cal.threshold)

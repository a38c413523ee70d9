"""CTDCalibrator (issue 21): the scikit-learn estimator protocol around the calibration, with exactly
the certified threshold of the function it calls (so exactly its guarantee)."""

from __future__ import annotations

import numpy as np
import pytest

from ctd_stats import CascadeData, CTDCalibrator, CTDInputError, calibrate_budget, calibrate_cascade
from ctd_stats.stats.simulate import make_population


def test_fit_certifies_what_calibrate_budget_certifies() -> None:
    rng = np.random.default_rng(0)
    d = rng.normal(size=2000)
    est = CTDCalibrator(budget=0.2, delta=0.05).fit(d)
    ref = calibrate_budget(d, 0.2, 0.05)
    assert est.threshold_ == ref.threshold and est.is_certified_
    assert est.certificate_.to_dict() == ref.to_dict()
    new = rng.normal(size=500)
    np.testing.assert_array_equal(est.predict(new), new > ref.threshold)
    np.testing.assert_array_equal(est.predict(new[:, None]), est.predict(new))
    np.testing.assert_allclose(est.decision_function(new), new - ref.threshold)


def test_pareto_method_matches_calibrate_cascade() -> None:
    rng = np.random.default_rng(1)
    n = 1500
    y = rng.integers(0, 2, n)
    p = np.clip(0.5 + (2 * y - 1) * 0.2 + rng.normal(0, 0.2, n), 0, 1)
    b = np.clip(0.5 + (2 * y - 1) * 0.4 + rng.normal(0, 0.1, n), 0, 1)
    d = (2 * y - 1) * (b - p) + rng.normal(0, 0.1, n)
    est = CTDCalibrator(0.3, 0.1, method="pareto").fit(d, y, probe_prob=p, expert_prob=b)
    ref = calibrate_cascade(CascadeData.from_probabilities(d, y, p, b), budget=0.3, delta=0.1)
    assert est.threshold_ == ref.threshold
    with pytest.raises(CTDInputError, match="needs y, probe_prob and expert_prob"):
        CTDCalibrator(method="pareto").fit(d)
    with pytest.raises(CTDInputError, match="would be ignored"):
        CTDCalibrator().fit(d, y)


def test_guarantee_holds_in_simulation() -> None:
    """P(true rate > budget) ≤ δ over fresh calibration sets (exact binomial tolerance, 0.1% false alarm)."""
    from tests._support.tolerance import binomial_tolerance

    pop = make_population("uniform")
    rng = np.random.default_rng(7)
    trials, budget, delta = 400, 0.3, 0.1
    violations = 0
    for _ in range(trials):
        est = CTDCalibrator(budget, delta).fit(pop.sample(rng, (300,)))
        violations += float(pop.rate_above(est.threshold_)) > budget
    assert violations <= binomial_tolerance(trials, delta)


def test_fail_closed_and_not_fitted() -> None:
    est = CTDCalibrator(budget=0.01, delta=0.01)
    with pytest.raises(CTDInputError, match="not fitted"):
        est.predict([0.0])
    est.fit(np.arange(20.0))  # 20 rows cannot certify a 1% budget at δ = 1%
    assert not est.is_certified_ and est.threshold_ == np.inf
    assert not est.predict(np.array([1e9, 0.0])).any()


def test_get_set_params_and_clone_protocol() -> None:
    est = CTDCalibrator(0.2, 0.05, pvalue="hb")
    params = est.get_params()
    assert (
        params["budget"] == 0.2 and params["pvalue"] == "hb" and set(params) >= {"method", "seed"}
    )
    twin = type(est)(**params)  # what sklearn.base.clone does
    assert twin.get_params() == params
    assert est.set_params(budget=0.1) is est and est.budget == 0.1
    with pytest.raises(ValueError, match="invalid parameter 'budgett'"):
        est.set_params(budgett=0.1)
    assert repr(est) == "CTDCalibrator(budget=0.1, delta=0.05, pvalue='hb')"
    with pytest.raises(CTDInputError, match="shape"):
        CTDCalibrator().fit(np.ones((5, 2)))

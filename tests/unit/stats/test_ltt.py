import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from ctd_stats import calibrate_budget, calibrate_budget_batch
from ctd_stats.errors import CTDInputError


def brute_force_budget(scores, budget, delta, procedure, thresholds=None):
    """Independent reference: plain loops over thresholds, scipy's binomial CDF."""
    scores = list(map(float, scores))
    grid = sorted(set(scores) if thresholds is None else set(map(float, thresholds)), reverse=True)
    n = len(scores)
    pvals = []
    for t in grid:
        k = sum(1 for s in scores if s > t)
        pvals.append(stats.binom.cdf(k, n, budget))
    rejected = []
    if procedure == "fixed_sequence":
        ok = True
        for p in pvals:
            ok = ok and p <= delta
            rejected.append(ok)
    elif procedure == "bonferroni":
        rejected = [p <= delta / len(pvals) for p in pvals]
    else:  # holm
        order = sorted(range(len(pvals)), key=lambda i: pvals[i])
        rejected = [False] * len(pvals)
        for step, i in enumerate(order):
            if pvals[i] <= delta / (len(pvals) - step):
                rejected[i] = True
            else:
                break
    cert = [t for t, r in zip(grid, rejected, strict=False) if r]
    return (min(cert) if cert else math.inf), grid, pvals


@pytest.mark.parametrize("procedure", ["fixed_sequence", "bonferroni", "holm"])
@pytest.mark.parametrize("kind", ["continuous", "ties", "discrete"])
def test_matches_brute_force(procedure, kind):
    rng = np.random.default_rng(11)
    for _trial in range(15):
        n = int(rng.integers(5, 300))
        if kind == "continuous":
            x = rng.normal(size=n)
        elif kind == "ties":
            x = rng.integers(0, 6, size=n).astype(float)
        else:
            x = rng.choice([0.0, 0.5, 1.0], size=n, p=[0.7, 0.2, 0.1])
        budget = float(rng.uniform(0.05, 0.6))
        delta = float(rng.uniform(0.02, 0.3))
        cal = calibrate_budget(x, budget, delta, procedure=procedure)
        tau, grid, pvals = brute_force_budget(x, budget, delta, procedure)
        assert cal.threshold == tau
        np.testing.assert_allclose(cal.thresholds, grid)
        np.testing.assert_allclose(cal.pvalues, pvals, rtol=1e-7, atol=1e-100)
        # explicit user grid, given unsorted
        user = rng.permutation(np.linspace(x.min() - 1, x.max() + 1, 17))
        cal2 = calibrate_budget(x, budget, delta, procedure=procedure, thresholds=user)
        assert cal2.threshold == brute_force_budget(x, budget, delta, procedure, user)[0]


@pytest.mark.parametrize("procedure", ["fixed_sequence", "bonferroni"])
def test_batch_equals_row_by_row(procedure):
    rng = np.random.default_rng(5)
    S = np.concatenate([rng.random((30, 200)), rng.integers(0, 4, (30, 200)).astype(float)])
    batch = calibrate_budget_batch(S, 0.25, 0.1, procedure=procedure)
    rows = [calibrate_budget(s, 0.25, 0.1, procedure=procedure).threshold for s in S]
    np.testing.assert_array_equal(batch, rows)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(5, 300),
    budget=st.floats(0.05, 0.9),
    transform=st.sampled_from(["exp", "cube", "affine", "logistic"]),
)
def test_invariant_under_increasing_transforms(seed, n, budget, transform):
    x = np.round(np.random.default_rng(seed).normal(size=n), 1)  # ties included
    f = {
        "exp": np.exp,
        "cube": lambda v: v**3 + v,
        "affine": lambda v: 3.0 * v - 7.0,
        "logistic": lambda v: 1 / (1 + np.exp(-v)),
    }[transform]
    a = calibrate_budget(x, budget, 0.1)
    b = calibrate_budget(f(x), budget, 0.1)
    np.testing.assert_array_equal(a.certified, b.certified)
    np.testing.assert_allclose(a.pvalues, b.pvalues)
    assert (a.delegate(x) == b.delegate(f(x))).all()


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(5, 300),
    d1=st.floats(0.01, 0.5),
    d2=st.floats(0.01, 0.5),
)
def test_certified_set_shrinks_with_delta(seed, n, d1, d2):
    x = np.random.default_rng(seed).random(n)
    lo, hi = sorted((d1, d2))
    for proc in ("fixed_sequence", "bonferroni", "holm"):
        a = calibrate_budget(x, 0.3, lo, procedure=proc)
        b = calibrate_budget(x, 0.3, hi, procedure=proc)
        assert np.all(a.certified <= b.certified)
        assert a.threshold >= b.threshold


@given(budget=st.floats(0.01, 0.9), delta=st.floats(0.01, 0.5))
def test_fail_closed_when_n_too_small(budget, delta):
    n_min = math.log(delta) / math.log(1 - budget)  # (1 − budget)^n ≤ δ needs n ≥ n_min
    n = math.ceil(n_min) - 1
    if n < 1:
        return
    cal = calibrate_budget(np.arange(n, dtype=float), budget, delta)
    assert math.isinf(cal.threshold) and not cal.is_certified
    assert "no threshold certified" in cal.reason
    assert not cal.delegate(np.array([1e9])).any()
    assert cal.to_dict()["threshold"] == "inf"


def test_result_contents_and_json():
    import json

    x = np.random.default_rng(0).random(500)
    cal = calibrate_budget(x, 0.2, 0.05)
    d = cal.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["n"] == 500 and d["procedure"] == "fixed_sequence" and d["pvalue_kind"] == "binomial"
    assert cal.is_certified and np.mean(x > cal.threshold) <= 0.2
    assert "i.i.d." in cal.guarantee
    assert np.all(np.diff(cal.thresholds) < 0)  # test order: descending τ
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        cal.threshold = 0.0  # immutable


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scores": [0.1, np.nan]}, "scores contains 1 non-finite"),
        ({"scores": [0.1, np.inf]}, "scores contains"),
        ({"scores": []}, "scores is empty"),
        ({"budget": 1.5}, "budget must lie strictly between 0 and 1"),
        ({"budget": 0.0}, "budget"),
        ({"delta": -0.1}, "delta"),
        ({"delta": 1.0}, "delta"),
        ({"thresholds": [0.1, np.nan]}, "thresholds contain NaN"),
        ({"thresholds": []}, "thresholds is empty"),
        ({"procedure": "magic"}, "procedure must be one of"),
        ({"pvalue": "magic"}, "pvalue must be one of"),
        ({"scores": [[1.0, 2.0]]}, "1-dimensional"),
    ],
)
def test_bad_input(kwargs, match):
    args = {"scores": [0.1, 0.2, 0.3], "budget": 0.3, "delta": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        calibrate_budget(args.pop("scores"), args.pop("budget"), args.pop("delta"), **args)
    assert issubclass(CTDInputError, ValueError)


def test_infinite_candidate_certified_alone_has_a_reason():
    """A user grid with +inf: τ = +inf certified alone must fail closed *with* a reason (issue 10)."""
    cal = calibrate_budget(np.arange(100.0), 0.3, 0.1, thresholds=[np.inf, 50.0])
    assert math.isinf(cal.threshold) and not cal.is_certified
    assert cal.reason is not None and "+∞" in cal.reason
    cal = calibrate_budget(np.arange(100.0), 0.3, 0.1, thresholds=[np.inf])
    assert not cal.is_certified and cal.reason


def test_integers_above_2_to_53_are_refused():
    big = np.array([2**53 + 1, 2**53, 0], dtype=np.int64)  # the first two merge in float64
    with pytest.raises(CTDInputError, match="2\\^53"):
        calibrate_budget(big, 0.3, 0.1)
    with pytest.raises(CTDInputError, match="2\\^53"):
        calibrate_budget([-(2**60), 1], 0.3, 0.1)
    with pytest.raises(CTDInputError, match="2\\^53"):
        calibrate_budget(np.array([2**63 + 5], dtype=np.uint64), 0.3, 0.1)
    ok = calibrate_budget(
        np.array([2**53, 0, 1], dtype=np.int64), 0.5, 0.5
    )  # exactly representable
    assert ok.n == 3


def test_calibration_and_cascade_delegate_agree_on_infinite_scores():
    from ctd_stats import Cascade

    cal = calibrate_budget(np.arange(100.0), 0.3, 0.1)
    s = np.array([np.inf, -np.inf, 0.0, 99.0])
    np.testing.assert_array_equal(cal.delegate(s), Cascade.rule(cal.threshold).delegate(s))
    np.testing.assert_array_equal(cal.delegate(s), [True, False, False, True])

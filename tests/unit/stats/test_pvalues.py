import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from ctd_stats.errors import CTDInputError
from ctd_stats.stats.pvalues import (
    bentkus_pvalue,
    binomial_pvalue,
    hb_pvalue,
    hoeffding_pvalue,
    pvalue_function,
    wsr_pvalue,
)
from tests._support.tolerance import binomial_tolerance


def test_binomial_matches_scipy_reference():
    n = 137
    k = np.arange(n + 1)
    for a in (0.001, 0.05, 0.3, 0.5, 0.999):
        np.testing.assert_allclose(
            binomial_pvalue(k, n, a), stats.binom.cdf(k, n, a), rtol=1e-7, atol=1e-100
        )


def test_edge_cases():
    n = 50
    assert binomial_pvalue(np.int64(n), n, 0.3) == pytest.approx(1.0)
    assert binomial_pvalue(np.int64(0), n, 0.3) == pytest.approx(0.7**50)
    assert hoeffding_pvalue(np.int64(0), n, 0.3) == pytest.approx(0.7**50)  # KL(0||a) = -log(1-a)
    assert hoeffding_pvalue(np.int64(n), n, 0.3) == pytest.approx(1.0)  # r̂ ≥ α → p = 1
    assert bentkus_pvalue(np.int64(n), n, 0.3) == 1.0
    # α extremely close to 0 or 1 stays finite and in [0, 1]
    for a in (1e-12, 1 - 1e-12):
        for f in (binomial_pvalue, hoeffding_pvalue, bentkus_pvalue, hb_pvalue):
            p = f(np.arange(n + 1), n, a)
            assert np.all(np.isfinite(p)) and p.min() >= 0 and p.max() <= 1


def test_hb_is_min_and_bentkus_is_e_times_binomial():
    n, k = 400, np.arange(0, 401, 7)
    b = binomial_pvalue(k, n, 0.2)
    np.testing.assert_allclose(bentkus_pvalue(k, n, 0.2), np.minimum(1, np.e * b))
    np.testing.assert_allclose(
        hb_pvalue(k, n, 0.2), np.minimum(hoeffding_pvalue(k, n, 0.2), bentkus_pvalue(k, n, 0.2))
    )
    # the exact binomial p-value is the smallest (most powerful) of the count-based ones
    assert np.all(b <= hoeffding_pvalue(k, n, 0.2) + 1e-12)


@given(
    n=st.integers(1, 400),
    a=st.floats(0.001, 0.999),
    kind=st.sampled_from(["binomial", "hoeffding", "bentkus", "hb"]),
)
def test_pvalues_monotone_in_k(n, a, kind):
    p = pvalue_function(kind)(np.arange(n + 1), n, a)
    assert np.all(np.diff(p) >= -1e-12)
    assert p.min() >= 0 and p.max() <= 1


def test_validity_by_exact_enumeration():
    """Super-uniformity under H0 checked exactly: P(p ≤ u) = Σ_k Bin(k; n, R) 1[p(k) ≤ u] ≤ u."""
    n = 60
    k = np.arange(n + 1)
    for kind in ("binomial", "hoeffding", "bentkus", "hb"):
        f = pvalue_function(kind)
        for alpha in (0.05, 0.3, 0.7):
            p = f(k, n, alpha)
            for R in (alpha + 1e-9, alpha + 0.05, min(0.99, alpha + 0.2)):
                pmf = stats.binom.pmf(k, n, R)
                for u in (0.01, 0.05, 0.1, 0.3):
                    assert pmf[p <= u].sum() <= u + 1e-9, (kind, alpha, R, u)


def test_float_counts_rejected():
    with pytest.raises(CTDInputError, match="integer counts"):
        binomial_pvalue(np.array([3.0]), 10, 0.3)
    with pytest.raises(CTDInputError, match="k must lie"):
        binomial_pvalue(np.array([11]), 10, 0.3)
    with pytest.raises(CTDInputError, match="level"):
        binomial_pvalue(np.array([1]), 10, 1.5)
    with pytest.raises(CTDInputError, match="pvalue must be one of"):
        pvalue_function("nope")


def test_wsr_valid_in_simulation():
    """Betting p-value at the null boundary E[L] = α: P(p ≤ δ) ≤ δ within a binomial tolerance."""
    rng = np.random.default_rng(7)
    trials, n, alpha, delta = 2000, 200, 0.3, 0.1
    losses = rng.beta(3, 7, size=(n, trials))  # mean exactly 0.3, continuous in [0, 1]
    p = wsr_pvalue(losses, alpha, delta=delta)
    rejections = int(np.sum(p <= delta))
    assert rejections <= binomial_tolerance(trials, delta)
    # and it has power when the mean is clearly below α
    p_alt = wsr_pvalue(rng.beta(2, 8, size=(n, 500)), alpha, delta=delta)
    assert np.mean(p_alt <= delta) > 0.8

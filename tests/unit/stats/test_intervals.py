"""Fixed-n interval and test against scipy / statsmodels references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from ctd_stats.stats.intervals import binomial_exceedance_pvalue, clopper_pearson, fixed_n_audit

CASES = [(0, 1), (1, 1), (0, 50), (3, 50), (50, 50), (17, 200), (1234, 10_000), (9999, 10_000)]


@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.01])
@pytest.mark.parametrize(("k", "n"), CASES)
def test_clopper_pearson_matches_statsmodels(k: int, n: int, alpha: float) -> None:
    lo, hi = clopper_pearson(k, n, alpha)
    ref_lo, ref_hi = proportion_confint(k, n, alpha=alpha, method="beta")
    assert float(lo) == pytest.approx(ref_lo, abs=1e-12)
    assert float(hi) == pytest.approx(ref_hi, abs=1e-12)


def test_clopper_pearson_vectorised_and_one_sided() -> None:
    k = np.array([c[0] for c in CASES])
    n = np.array([c[1] for c in CASES])
    lo, hi = clopper_pearson(k, n, 0.05)
    for i, (kk, nn) in enumerate(CASES):
        r = stats.binomtest(kk, nn).proportion_ci(0.95, method="exact")
        assert lo[i] == pytest.approx(r.low, abs=1e-12)
        assert hi[i] == pytest.approx(r.high, abs=1e-12)
    glo, ghi = clopper_pearson(k, n, 0.05, "greater")
    assert np.all(ghi == 1.0) and np.all(glo >= lo)
    llo, lhi = clopper_pearson(k, n, 0.05, "less")
    assert np.all(llo == 0.0) and np.all(lhi <= hi)


@pytest.mark.parametrize("budget", [0.01, 0.1, 0.3, 0.77])
@pytest.mark.parametrize(("k", "n"), CASES)
def test_pvalue_matches_scipy_binomtest(k: int, n: int, budget: float) -> None:
    ref = stats.binomtest(k, n, budget, alternative="greater").pvalue
    assert float(binomial_exceedance_pvalue(k, n, budget)) == pytest.approx(
        ref, rel=1e-10, abs=1e-300
    )


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 5000), frac=st.floats(0, 1), budget=st.floats(0.001, 0.999))
def test_interval_contains_estimate_and_pvalue_in_unit(n: int, frac: float, budget: float) -> None:
    k = round(frac * n)
    lo, hi = clopper_pearson(k, n, 0.05)
    assert 0.0 <= lo <= k / n <= hi <= 1.0
    p = float(binomial_exceedance_pvalue(k, n, budget))
    assert 0.0 <= p <= 1.0


def test_pvalue_is_super_uniform_below_budget() -> None:
    # exact size of the level-0.05 test at p = budget and p < budget, from the binomial pmf
    n, b, a = 400, 0.1, 0.05
    ks = np.arange(n + 1)
    rejects = binomial_exceedance_pvalue(ks, n, b) <= a
    for p in (b, 0.08, 0.05):
        size = stats.binom.pmf(ks, n, p)[rejects].sum()
        assert size <= a


def test_fixed_n_audit_fields() -> None:
    r = fixed_n_audit(150, 1000, 0.1, 0.05)
    assert r.rejects and r.pvalue < 1e-6 and r.rate == 0.15
    r = fixed_n_audit(0, 0, 0.1)
    assert not r.rejects and np.isnan(r.rate)
    with pytest.raises(ValueError):
        binomial_exceedance_pvalue(5, 3, 0.1)

import math

import numpy as np
import pytest
from scipy import special, stats

from ctd_stats import calibrate_budget, certifiable_budget, min_calibration_size
from ctd_stats.errors import CTDInputError


def test_certifiable_budget_is_the_exact_boundary():
    for n in (10, 100, 1000):
        for delta in (0.05, 0.1):
            b = certifiable_budget(n, delta)
            assert b == pytest.approx(1 - delta ** (1 / n))
            x = np.arange(n, dtype=float)
            assert calibrate_budget(x, b, delta).is_certified  # exactly at the returned value
            assert not calibrate_budget(x, np.nextafter(b, 0.0), delta).is_certified


def test_issue_10_reproducer_certifies_at_the_returned_budget():
    # was 0.95 - 1 ulp... p = 0.050000000000000044 > 0.05
    assert calibrate_budget([0.0], certifiable_budget(1, 0.05), 0.05).is_certified


@pytest.mark.parametrize("delta", [0.01, 0.05, 0.1, 0.2])
def test_certifiable_budget_exhaustive_no_fudge(delta):
    """Every n ≤ 1000 and several rates: the binomial test certifies at exactly the returned float and
    not at the float just below it (no tolerance)."""
    for n in range(1, 1001):
        for rate in (0.0, 0.1, 0.3):
            b = certifiable_budget(n, delta, rate)
            k = int(np.floor(np.round(rate * n, 9)))
            # binomial_pvalue is bdtr clipped to [0, 1]: the exact test calibrate_budget runs
            assert special.bdtr(k, n, b) <= delta, (n, delta, rate, b)
            assert special.bdtr(k, n, np.nextafter(b, 0.0)) > delta, (n, delta, rate, b)
    for n in (1, 2, 3, 7, 50, 333, 1000):  # and through the public calibration entry point
        b = certifiable_budget(n, delta)
        assert calibrate_budget(np.arange(n, dtype=float), b, delta).is_certified, (n, delta)


def _brute_last_failure(budget, delta, rate, upto):
    ns = np.arange(1, upto + 1)
    k = np.floor(np.round(rate * ns, 9))
    bad = ns[stats.binom.cdf(k, ns, budget) > delta]
    return int(bad[-1]) if bad.size else 0


def test_min_calibration_size_issue_10_reproducer():
    n = min_calibration_size(0.1, 0.2, rate=0.05)  # was 29, yet 40 and 41 do not certify
    assert n > 41
    ms = np.arange(n, 20_000)
    assert np.all(special.bdtr(np.floor(np.round(0.05 * ms, 9)), ms, 0.1) <= 0.2)
    assert certifiable_budget(n - 1, 0.2, 0.05) > 0.1
    assert certifiable_budget(n, 0.2, 0.05) <= 0.1


@pytest.mark.parametrize("delta", [0.01, 0.05, 0.1, 0.2, 0.3])
def test_min_calibration_size_exhaustive(delta):
    """Every size from the returned n up to well past the Chernoff point certifies; n − 1 does not."""
    for budget in (0.05, 0.1, 0.2, 0.3, 0.5):
        for frac in (0.0, 0.25, 0.5, 0.7):
            rate = frac * budget
            n = min_calibration_size(budget, delta, rate)
            kl = special.rel_entr(rate, budget) + special.rel_entr(1 - rate, 1 - budget)
            upto = (
                int(2 * np.log(1 / delta) / kl) + 200
            )  # twice the Chernoff point: all certify beyond
            assert n == _brute_last_failure(budget, delta, rate, upto) + 1, (budget, delta, rate)


def test_min_calibration_size():
    n = min_calibration_size(0.3, 0.1)
    assert n == math.ceil(math.log(0.1) / math.log(0.7))
    assert calibrate_budget(np.arange(n, dtype=float), 0.3, 0.1).is_certified
    assert not calibrate_budget(np.arange(n - 1, dtype=float), 0.3, 0.1).is_certified
    n2 = min_calibration_size(0.3, 0.1, rate=0.28)
    for m in (n2, n2 + 17, 2 * n2):
        assert certifiable_budget(m, 0.1, 0.28) <= 0.3 + 1e-12
    assert certifiable_budget(n2 - 1, 0.1, 0.28) > 0.3


def test_bad_inputs():
    with pytest.raises(CTDInputError):
        min_calibration_size(0.3, 0.1, rate=0.3)
    with pytest.raises(CTDInputError):
        certifiable_budget(0, 0.1)
    with pytest.raises(CTDInputError):
        certifiable_budget(10, 1.2)


def test_rate_times_n_is_not_floored_below_the_intended_count():
    # 0.29 * 100 == 28.999999999999996 in floating point; the intended count is 29
    from scipy import stats

    assert certifiable_budget(100, 0.1, 0.29) == pytest.approx(stats.beta.ppf(0.9, 30, 71))

"""Planning against exact arithmetic: the float boundary of the computed test, checked across n ≤ 10⁶.

The reference is the binomial cdf in 40-digit arithmetic (mpmath), summed from the count downwards
with the pmf recurrence until the terms are negligible, so it is exact to far below the tolerances
used here. The issue's crash (``certifiable_budget(4519, 0.5, 0.01)`` raised AssertionError: scipy's
``bdtr`` is off by ~3·10⁻¹¹ there, beyond the old fixed walk of 10,000 ULPs) is the first test.
"""

from __future__ import annotations

from fractions import Fraction
from math import comb

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special

from ctd_stats.stats.planning import certifiable_budget
from ctd_stats.stats.randomized import boundary_gamma
from ctd_stats.stats.randomized import randomized_expected_rate as expected_rate
from ctd_stats.stats.randomized import randomized_violation_probability as violation_probability

mp.mp.dps = 40


def exact_cdf(k: int, n: int, b: float) -> mp.mpf:
    """P(Bin(n, b) ≤ k) in 40-digit arithmetic (b is the exact float)."""
    p = mp.mpf(b)
    log_term = mp.loggamma(n + 1) - mp.loggamma(k + 1) - mp.loggamma(n - k + 1)
    term = mp.exp(log_term + k * mp.log(p) + (n - k) * mp.log1p(-p))
    total = term
    ratio = (1 - p) / p
    for j in range(k, 0, -1):  # pmf(j − 1) = pmf(j) · j (1 − p) / ((n − j + 1) p)
        term *= j * ratio / (n - j + 1)
        total += term
        if term < total * mp.mpf(10) ** -36:
            break
    return total


def _k(rate: float, n: int) -> int:
    return int(np.floor(np.round(rate * n, 9)))


def test_issue_reproducer_no_longer_crashes_and_is_the_boundary():
    b = certifiable_budget(4519, 0.5, 0.01)  # raised AssertionError before
    assert special.bdtr(45, 4519, b) <= 0.5 < special.bdtr(45, 4519, np.nextafter(b, 0.0))
    assert exact_cdf(45, 4519, b * (1 - 1e-9)) > 0.5 > exact_cdf(45, 4519, b * (1 + 1e-9))


def test_a_sweep_of_calls_never_crashes():
    """2,000 calls over n from 1 to 10⁶ (the red-team crashed 448 of 17,148): each is the float boundary."""
    rng = np.random.default_rng(20)
    for _ in range(2_000):
        n = int(np.exp(rng.uniform(0, np.log(1e6))))
        d = float(rng.choice([0.001, 0.01, 0.05, 0.1, 0.2, 0.5]))
        rate = float(rng.choice([0.0, 0.001, 0.01, 0.1, 0.3, 0.5, 0.9]))
        k = _k(rate, n)
        b = certifiable_budget(n, d, rate)
        assert special.bdtr(k, n, b) <= d < special.bdtr(k, n, np.nextafter(b, 0.0)), (n, d, rate)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    n=st.integers(1, 1_000_000),
    delta=st.floats(0.001, 0.5),
    rate=st.sampled_from([0.0, 0.001, 0.01, 0.05, 0.2, 0.5, 0.8]),
)
def test_certifiable_budget_matches_high_precision(n, delta, rate):
    """The returned float is the computed test's boundary and within a relative 10⁻⁹ of the exact one."""
    k = _k(rate, n)
    b = certifiable_budget(n, delta, rate)
    assert special.bdtr(k, n, b) <= delta < special.bdtr(k, n, np.nextafter(b, 0.0))
    assert exact_cdf(k, n, b * (1 - 1e-9)) > delta > exact_cdf(k, n, min(b * (1 + 1e-9), 1.0))


def _frac_cdf(k: int, n: int, b: Fraction) -> Fraction:
    return sum((comb(n, j) * b**j * (1 - b) ** (n - j) for j in range(k + 1)), Fraction(0))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    n=st.integers(1, 40),
    budget=st.fractions(Fraction(1, 100), Fraction(99, 100), max_denominator=100),
    delta=st.fractions(Fraction(1, 100), Fraction(1, 2), max_denominator=100),
)
def test_randomised_closed_forms_match_exact_enumeration(n, budget, delta):
    """Level and expected rate of the randomised step, by enumerating k_U exactly (fractions).

    On continuous scores τ̂ is the (k_U + 1)-th largest of n, k_U ∈ {k*, k* + 1} capped so that a
    finite threshold exists (k_U ≤ n − 1); its true rate is Beta(k_U + 1, n − k_U), so
    P(violation) = E_U[F(k_U)] and E[rate] = E_U[(k_U + 1) / (n + 1)], with F(−1) = 0, rate 0 if k_U < 0.
    Enumerated with γ computed in exact arithmetic: includes every k* = n − 1 case (169 of 2,208 settings
    were wrong before).
    """
    b, d = float(budget), float(delta)
    cdf = [_frac_cdf(k, n, Fraction(b)) for k in range(n + 1)]
    kstar = max((k for k in range(n + 1) if cdf[k] <= Fraction(d)), default=-1)
    f0 = cdf[kstar] if kstar >= 0 else Fraction(0)
    gamma = Fraction(0) if kstar >= n - 1 else (Fraction(d) - f0) / (cdf[kstar + 1] - f0)
    outcomes = [(1 - gamma, kstar), (gamma, kstar + 1)]
    level = sum((w * (cdf[k] if k >= 0 else 0) for w, k in outcomes), Fraction(0))
    rate = sum((w * (Fraction(k + 1, n + 1) if k >= 0 else 0) for w, k in outcomes), Fraction(0))
    ks, g = boundary_gamma(n, b, d)
    assert ks == kstar and g == pytest.approx(float(gamma), abs=1e-9)
    assert violation_probability(n, b, d) == pytest.approx(float(level), abs=1e-9)
    assert expected_rate(n, b, d) == pytest.approx(float(rate), abs=1e-9)
    assert float(level) <= d + 1e-12

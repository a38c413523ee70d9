"""Planning: how much calibration data a budget needs, and which budget n points can certify.

Both functions answer questions about the exact binomial test used by :func:`calibrate_budget`.
A threshold that delegates k of the n calibration points is certified at level δ iff
P(Bin(n, budget) ≤ k) ≤ δ, which is equivalent to

    budget ≥ U(k; n, δ) := the one-sided (1 − δ) Clopper–Pearson upper bound = Beta⁻¹(1 − δ; k + 1, n − k).

(Fixed-sequence testing in descending τ certifies exactly these thresholds, since p is monotone.)
"""

from __future__ import annotations

import math
import struct

import numpy as np
from scipy import special

from ctd_stats.errors import CTDInputError
from ctd_stats.stats.inputs import check_open_unit


def _delegated_count(rate: float, n: np.ndarray | int) -> np.ndarray:
    """k = ⌊rate · n⌋ robust to float rounding (0.29 · 100 is 28.999… in binary, yet means 29)."""
    return np.floor(np.round(np.multiply(rate, n), 9)).astype(np.int64)


def _float_bits(x: float) -> int:
    return int(struct.unpack("<q", struct.pack("<d", x))[0])


def _bits_float(i: int) -> float:
    return float(struct.unpack("<d", struct.pack("<q", i))[0])


def certifiable_budget(n: int, delta: float, rate: float = 0.0) -> float:
    """Smallest budget (a float64) at which a threshold with empirical delegation rate ``rate`` on n points is certified.

    With k = ⌊rate · n⌋ delegated calibration points, this is the (1 − δ) one-sided Clopper–Pearson
    upper bound U(k; n, δ) = Beta⁻¹(1 − δ; k + 1, n − k), located as the exact float boundary of the
    test :func:`~ctd_stats.stats.ltt.calibrate_budget` runs: the returned float ``b`` satisfies
    ``P(Bin(n, b) ≤ k) ≤ δ`` as computed (``scipy.special.bdtr``), while the next float below ``b``
    does not. So ``calibrate_budget`` with budget ``b`` certifies such a threshold and with any
    smaller budget it does not. ``rate = 0`` (default) gives the smallest budget that n points can
    certify at all, ≈ 1 − δ^(1/n) (a threshold above every calibration score). Any budget below it
    fails closed.

    Method: bisection on the bit patterns of the floats in [0, 1] (ordered like the floats), with the
    invariant "the test fails at the lower end and passes at the upper end" (it fails at 0, where
    P(Bin(n, 0) ≤ k) = 1, and passes at 1 for k < n). It ends after at most 62 evaluations of the test
    when the two ends are adjacent floats, so it always terminates and needs no assumption about
    the accuracy of ``bdtr`` (which is off by up to ~3·10⁻¹¹ for n ≳ 4,000, far beyond a fixed walk
    of a few thousand ULPs from a quantile estimate). Cost about 0.1 ms (``benchmarks/test_bench_planning.py``).
    Against the mathematical bound (high-precision incomplete beta) the returned value agrees to a
    relative 10⁻⁸ for n ≤ 10⁶ (``tests/unit/stats/test_planning_properties.py``).
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise CTDInputError(f"n must be a positive integer, got {n!r}")
    d = check_open_unit("delta", delta)
    if not 0.0 <= rate < 1.0:
        raise CTDInputError(f"rate must lie in [0, 1), got {rate!r}")
    n = int(n)
    k = int(_delegated_count(rate, n))
    if k >= n:
        raise CTDInputError(
            f"rate {rate!r} delegates all n = {n} points: no budget below 1 certifies it"
        )
    bdtr = special.bdtr
    lo, hi = _float_bits(0.0), _float_bits(1.0)  # invariant: fails at lo, passes at hi (k < n)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if bdtr(k, n, _bits_float(mid)) <= d:
            hi = mid
        else:
            lo = mid
    return _bits_float(hi)


def _certifies(n: np.ndarray, budget: float, delta: float, rate: float) -> np.ndarray:
    k = _delegated_count(rate, n)
    return np.asarray(special.bdtr(k, n, budget) <= delta)


def _bernoulli_kl(a: float, b: float) -> float:
    return float(special.rel_entr(a, b) + special.rel_entr(1.0 - a, 1.0 - b))


def chernoff_size(budget: float, delta: float, rate: float = 0.0) -> int:
    """An n from which on *every* size certifies: ⌈log(1/δ) / KL(rate‖budget)⌉ (plus a rounding margin).

    For every n ≥ this value, k = ⌊rate · n⌋ satisfies P(Bin(n, budget) ≤ k) ≤ exp(−n · KL(k/n ‖ budget))
    ≤ exp(−n · KL(rate′ ‖ budget)) ≤ δ (Chernoff), with rate′ = rate + 10⁻⁹ ≥ k/n covering the
    rounding in ⌊rate · n⌋, since KL(· ‖ budget) is decreasing below the budget.
    """
    b = check_open_unit("budget", budget)
    d = check_open_unit("delta", delta)
    r = min(rate + 1e-9, b) if rate > 0 else 0.0
    kl = _bernoulli_kl(r, b)
    if kl <= 0:
        raise CTDInputError(f"rate {rate} is too close to the budget {b} to ever certify it")
    return math.ceil(math.log(1.0 / d) / kl * (1 + 1e-12)) + 1


def min_calibration_size(
    budget: float, delta: float, rate: float = 0.0, *, max_n: int = 10_000_000
) -> int:
    """Smallest n such that every calibration size n′ ≥ n (up to ``max_n``) certifies ``budget``.

    Meaning: with n′ hypothesis-testing points, a threshold that delegates ⌊rate · n′⌋ of them has
    exact binomial p-value P(Bin(n′, budget) ≤ ⌊rate · n′⌋) ≤ δ, for **every** n′ in [n, max_n]. The
    condition is not monotone in n′ (⌊·⌋ drops the count by one at a time), so a smaller size may
    certify too and then fail again: this returns where the failures end. It is found by checking
    every n′ up to N_c = :func:`chernoff_size` (``min(N_c, max_n)``); from N_c on every size certifies
    by the Chernoff bound, so when N_c ≤ ``max_n`` the claim holds for every n′ ≥ n without limit.

    ``rate = 0``: the minimum n to certify anything, ⌈log δ / log(1 − budget)⌉ (monotone). ``rate``
    close to the budget needs many points: roughly n ≈ z²_{1−δ} · budget (1 − budget) / (budget − rate)².

    Raises
    ------
    CTDInputError
        If ``max_n`` itself does not certify (no such n ≤ ``max_n``).
    """
    b = check_open_unit("budget", budget)
    d = check_open_unit("delta", delta)
    if not 0.0 <= rate < b:
        raise CTDInputError(f"rate must lie in [0, budget) = [0, {b}), got {rate!r}")
    if isinstance(max_n, bool) or not isinstance(max_n, int | np.integer) or max_n < 1:
        raise CTDInputError(f"max_n must be a positive integer, got {max_n!r}")
    try:
        top = min(chernoff_size(b, d, rate), int(max_n))
    except CTDInputError:
        top = int(max_n)
    last_bad = 0
    chunk = 1 << 20
    for start in range(1, top + 1, chunk):  # bounded memory for very large N_c
        ns = np.arange(start, min(start + chunk, top + 1), dtype=np.int64)
        bad = np.flatnonzero(~_certifies(ns, b, d, rate))
        if bad.size:
            last_bad = int(ns[bad[-1]])
    if last_bad >= top and top == max_n:
        raise CTDInputError(f"no n ≤ max_n = {max_n} certifies budget {b} at rate {rate}")
    return last_bad + 1


def _kstar(n: int, budget: float, delta: float) -> int:
    from ctd_stats.stats.ltt import certified_count

    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise CTDInputError(f"n must be a positive integer, got {n!r}")
    return certified_count(
        int(n), check_open_unit("budget", budget), check_open_unit("delta", delta)
    )


def expected_rate(n: int, budget: float, delta: float) -> float:
    """Exact expected true delegation rate E[R_B(τ̂)] of budget-only calibration, continuous scores.

    For :func:`~ctd_stats.stats.ltt.calibrate_budget` with the full grid, fixed-sequence testing and the
    exact binomial p-value, on n i.i.d. scores from a *continuous* distribution (no ties), τ̂ is the
    (k* + 1)-th largest score, k* = the largest k with P(Bin(n, budget) ≤ k) ≤ δ. Its true rate
    R_B(τ̂) = 1 − F(τ̂) is then the (k* + 1)-th smallest of n uniforms, Beta(k* + 1, n − k*), whatever
    the score distribution, so E[R_B(τ̂)] = (k* + 1)/(n + 1); 0 when nothing can be certified (k* < 0,
    τ̂ = +∞). Example: n = 20, budget 0.3, δ = 0.1 gives 3/21 ≈ 0.143. With ties the rate is lower.
    """
    k = _kstar(n, budget, delta)
    return 0.0 if k < 0 else (k + 1) / (int(n) + 1)


def violation_probability(
    n: int, budget: float, delta: float, true_rate: float | None = None
) -> float:
    """Exact P(R_B(τ̂) > ``true_rate``) for budget-only calibration on continuous scores.

    Same setting as :func:`expected_rate`: R_B(τ̂) ~ Beta(k* + 1, n − k*), so
    P(R_B(τ̂) > x) = P(Bin(n, x) ≤ k*). With ``true_rate = None`` (x = budget) this is the probability
    that the guarantee is violated, which is ≤ δ by construction and typically below it at small n
    because of discreteness (n = 20, budget 0.3, δ = 0.1: 0.0355). 0 when k* < 0 (τ̂ = +∞ never delegates).
    """
    b = check_open_unit("budget", budget)
    x = b if true_rate is None else float(true_rate)
    if not 0.0 <= x <= 1.0:
        raise CTDInputError(f"true_rate must lie in [0, 1], got {true_rate!r}")
    k = _kstar(n, b, delta)
    if k < 0:
        return 0.0
    return float(special.bdtr(k, int(n), x))

"""Planning: how much calibration data a budget needs, and which budget n points can certify.

Both functions answer questions about the exact binomial test used by :func:`calibrate_budget`.
A threshold that delegates k of the n calibration points is certified at level δ iff
P(Bin(n, budget) ≤ k) ≤ δ, which is equivalent to

    budget ≥ U(k; n, δ) := the one-sided (1 − δ) Clopper–Pearson upper bound = Beta⁻¹(1 − δ; k + 1, n − k).

(Fixed-sequence testing in descending τ certifies exactly these thresholds, since p is monotone.)
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats

from ctd_stats._validation import check_open_unit
from ctd_stats.errors import CTDInputError


def _delegated_count(rate: float, n: np.ndarray | int) -> np.ndarray:
    """k = ⌊rate · n⌋ robust to float rounding (0.29 · 100 is 28.999… in binary, yet means 29)."""
    return np.floor(np.round(np.multiply(rate, n), 9)).astype(np.int64)


def certifiable_budget(n: int, delta: float, rate: float = 0.0) -> float:
    """Smallest budget at which a threshold with empirical delegation rate ``rate`` on n points is certified.

    With k = ⌊rate · n⌋ delegated calibration points, this is the (1 − δ) Clopper–Pearson upper
    bound U(k; n, δ). ``rate = 0`` (default) gives the smallest budget that n points can certify at
    all: 1 − δ^(1/n) (a threshold above every calibration score). Any budget below it fails closed.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise CTDInputError(f"n must be a positive integer, got {n!r}")
    d = check_open_unit("delta", delta)
    if not 0.0 <= rate < 1.0:
        raise CTDInputError(f"rate must lie in [0, 1), got {rate!r}")
    k = int(_delegated_count(rate, n))
    return float(stats.beta.ppf(1.0 - d, k + 1, n - k))


def _certifies(n: np.ndarray, budget: float, delta: float, rate: float) -> np.ndarray:
    k = _delegated_count(rate, n)
    return np.asarray(special.bdtr(k, n, budget) <= delta)


def min_calibration_size(
    budget: float, delta: float, rate: float = 0.0, *, max_n: int = 10_000_000
) -> int:
    """Smallest n such that a threshold with empirical rate ``rate`` on n points certifies ``budget``.

    Meaning: with n hypothesis-testing points, a threshold that delegates ⌊rate · n⌋ of them has
    binomial p-value ≤ δ, and so does every larger n up to ``max_n`` (⌊·⌋ makes the condition
    slightly non-monotone in n; the returned n is the start of the final run). ``rate = 0``: the
    minimum n to certify anything (n ≥ log δ / log(1 − budget)). ``rate`` close to the budget
    needs many points: roughly n ≈ z²_{1−δ} · budget (1 − budget) / (budget − rate)².
    """
    b = check_open_unit("budget", budget)
    d = check_open_unit("delta", delta)
    if not 0.0 <= rate < b:
        raise CTDInputError(f"rate must lie in [0, budget) = [0, {b}), got {rate!r}")
    hi = 1
    while True:
        if hi > max_n:
            raise CTDInputError(f"no n ≤ max_n = {max_n} certifies budget {b} at rate {rate}")
        if bool(_certifies(np.array([hi]), b, d, rate)[0]) and bool(
            _certifies(np.array([hi * 2]), b, d, rate)[0]
        ):
            break
        hi *= 2
    ns = np.arange(1, 2 * hi + 1, dtype=np.int64)
    ok = _certifies(ns, b, d, rate)
    bad = np.flatnonzero(~ok)
    return int(ns[bad[-1] + 1]) if bad.size else 1

"""The one tolerance for simulated guarantees: an exact binomial acceptance region.

A simulation of a procedure valid at level δ counts violations V ~ Bin(trials, q) with q ≤ δ. The
tests accept iff ``V <= binomial_tolerance(trials, δ)``: a valid procedure (q = δ exactly) fails with
probability ≤ 0.001, and one that violates more often than δ fails with a probability that grows with
the excess. Every guarantee test (budget, joint, monitor, p-values, controls) uses this, with fixed
seeds; :func:`binomial_acceptance` is its two-sided form for "the simulation agrees with an exact
value".
"""

from __future__ import annotations

from scipy import stats

__all__ = ["binomial_acceptance", "binomial_tolerance"]


def binomial_tolerance(trials: int, level: float, false_alarm: float = 0.001) -> int:
    """The largest violation count a procedure valid at ``level`` reaches with probability ≥ 1 − false_alarm.

    Exact: the smallest k with P(Bin(trials, level) > k) ≤ false_alarm.
    """
    k = int(stats.binom.ppf(1.0 - false_alarm, trials, level))
    while stats.binom.sf(k, trials, level) > false_alarm:
        k += 1
    return k


def binomial_acceptance(trials: int, p: float, false_alarm: float = 0.001) -> tuple[int, int]:
    """Two-sided region [lo, hi] holding Bin(trials, p) with probability ≥ 1 − false_alarm (exact)."""
    half = false_alarm / 2
    hi = binomial_tolerance(trials, p, half)
    lo = int(stats.binom.isf(1.0 - half, trials, p))
    while lo > 0 and stats.binom.cdf(lo - 1, trials, p) > half:
        lo -= 1
    while stats.binom.cdf(lo - 1, trials, p) > half:
        lo -= 1
    return lo, hi

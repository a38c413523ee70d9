"""The exact violation probability of budget-only calibration where the population is known.

For budget-only calibration (full grid, fixed-sequence, exact binomial p-value) on n i.i.d. draws,
τ̂ is the (k* + 1)-th largest draw (:func:`~ctd_stats.stats.ltt.budget_threshold`), k* =
:func:`~ctd_stats.stats.ltt.certified_count`. Let v* = inf{v : R(v) ≤ B} with R(v) = P(X > v). The rate is
non-increasing and right-continuous, so R(τ̂) > B iff τ̂ < v*, iff fewer than k* + 1 draws are
≥ v*. The number of draws ≥ v* is Bin(n, q) with q = P(X ≥ v*), hence

    P(violation) = P(Bin(n, q) ≤ k*)    (0 when k* < 0: τ̂ = +∞ never delegates).

For a continuous law q = B (the familiar P(Bin(n, B) ≤ k*)); for a discrete one (finitely many
atoms, or the empirical law of a score array) q is the smallest attainable rate above B,
P(X ≥ v*) = min{R(v) : R(v) > B} over the atoms v (taking R just below the atom v*). The study's
Monte Carlo check and ``ctd simulate`` report it next to the simulated frequency, so that the
estimate can be read against the truth.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from ctd_stats.stats.ltt import certified_count


def discrete_violation(
    atom_rates_ge: NDArray[np.float64], n: int, budget: float, delta: float
) -> float:
    """P(Bin(n, q) ≤ k*), q = the smallest of ``atom_rates_ge`` (P(X ≥ v) of each atom v) above B.

    ``atom_rates_ge`` need not be sorted. 0 when no atom has a rate above the budget or k* < 0.
    """
    k = certified_count(int(n), float(budget), float(delta))
    above = atom_rates_ge[atom_rates_ge > budget + 1e-12]
    if k < 0 or above.size == 0:
        return 0.0
    return float(stats.binom.cdf(k, int(n), float(above.min())))


def continuous_violation(n: int, budget: float, delta: float) -> float:
    """P(Bin(n, B) ≤ k*): a continuous population (q = B)."""
    k = certified_count(int(n), float(budget), float(delta))
    return 0.0 if k < 0 else float(stats.binom.cdf(k, int(n), float(budget)))

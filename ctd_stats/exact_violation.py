"""The exact violation probability of budget-only calibration where the population is known.

For budget-only calibration (full grid, fixed-sequence, exact binomial p-value) on n i.i.d. draws,
τ̂ is the (k* + 1)-th largest draw (:func:`~ctd_stats.ltt.budget_threshold`), k* =
:func:`~ctd_stats.ltt.certified_count`. Let v* = inf{v : R(v) ≤ B} with R(v) = P(X > v). The rate is
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

from ctd_stats.ltt import certified_count


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


def exact_budget_violation(population: object, n: int, budget: float, delta: float) -> float | None:
    """The exact P(violation) for a population of :mod:`ctd_stats.simulate`, or None if unknown.

    Known for a continuous ``scipy.stats`` law, a :class:`~ctd_stats.simulate.DiscretePopulation`
    and an :class:`~ctd_stats.simulate.EmpiricalPopulation`; None for mixtures with atoms and
    discrete ``scipy.stats`` laws (where v* would need a search).
    """
    from ctd_stats.simulate import (
        DiscretePopulation,
        EmpiricalPopulation,
        MixturePopulation,
        ScipyPopulation,
    )

    if isinstance(population, ScipyPopulation):
        is_cont = isinstance(getattr(population.dist, "dist", None), stats.rv_continuous)
        return continuous_violation(n, budget, delta) if is_cont else None
    if isinstance(population, DiscretePopulation):
        ge = np.cumsum(population.probs[::-1])[::-1]  # P(X ≥ values[j])
        return discrete_violation(ge, n, budget, delta)
    if isinstance(population, EmpiricalPopulation):
        s = population.sorted
        values = np.unique(s)
        ge = (s.size - np.searchsorted(s, values, side="left")) / s.size
        return discrete_violation(ge, n, budget, delta)
    if isinstance(population, MixturePopulation) and all(
        isinstance(c, ScipyPopulation)
        and isinstance(getattr(c.dist, "dist", None), stats.rv_continuous)
        for c in population.components
    ):
        return continuous_violation(n, budget, delta)
    return None

"""The study's check of the budget guarantee with the pool as the population (all budgets at once).

Calibration sets of ``n_cal`` rows are drawn i.i.d. (with replacement) from the pool, so the pool is
the deployment distribution and the true delegation rate of any τ is the pool fraction above it.
Per trial, one resample is calibrated at every budget of the grid (common random numbers across
budgets): for each budget the number of trials whose certified τ̂ delegates more than the budget of
the pool is then Binomial(trials, P(violation)) with P(violation) ≤ δ by the guarantee, which
:mod:`ctd_stats.reports.study` and the tests check with an exact binomial tolerance.

Two arms: the Pareto arm (:func:`~ctd_stats.stats.sweep.cascade_thresholds`, the deployed
procedure, with the study's split) and the budget-only arm (:func:`~ctd_stats.stats.sweep.budget_thresholds`
on all ``n_cal`` rows). Cost: ``trials`` × O(n_cal log n_cal) for the Pareto arm (a loop over
trials, each vectorised over budgets) and one row-wise sort of a (trials, n_cal) matrix for the
budget-only arm.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ctd_stats.stats.pareto import CascadeData
from ctd_stats.stats.simulate import RATE_TOLERANCE
from ctd_stats.stats.sweep import budget_thresholds, cascade_thresholds


def pool_rates(pool_sorted: NDArray[np.float64], taus: NDArray[np.float64]) -> NDArray[np.float64]:
    """True delegation rate P(d > τ) of each τ when the population is the (sorted) pool."""
    n = pool_sorted.size
    return np.asarray((n - np.searchsorted(pool_sorted, taus, side="right")) / n, dtype=np.float64)


def bootstrap_budget_check(
    pool: CascadeData,
    alphas: NDArray[np.float64],
    delta: float,
    *,
    n_cal: int,
    trials: int,
    opt_fraction: float,
    split: str,
    seed: int,
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.int64], NDArray[np.float64]]:
    """Violations and mean true rate per budget, Pareto arm then budget-only arm (four arrays, [J])."""
    pool_sorted = np.sort(pool.dv_score)
    N = pool.n
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
    pareto = np.empty((trials, alphas.size))
    for t in range(trials):
        data = pool.subset(rng.integers(0, N, size=n_cal))
        taus = cascade_thresholds(
            data, budgets=alphas, delta=delta, opt_fraction=opt_fraction, seed=int(rng.integers(2**31)),
            split=split,
        )
        pareto[t] = pool_rates(pool_sorted, taus)
    draws = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2,))).integers(0, N, size=(trials, n_cal))
    only = pool_rates(pool_sorted, budget_thresholds(pool.dv_score[draws], alphas, delta))
    limit = alphas[None, :] + RATE_TOLERANCE
    return (
        np.count_nonzero(pareto > limit, axis=0).astype(np.int64),
        pareto.mean(axis=0),
        np.count_nonzero(only > limit, axis=0).astype(np.int64),
        only.mean(axis=0),
    )

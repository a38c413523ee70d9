"""The study's Monte Carlo check of the budget guarantee, with the pool as the population.

Calibration sets of ``n_cal`` rows are drawn i.i.d. (with replacement) from the pool, so the pool is
the deployment distribution and the true delegation rate of any τ is the pool fraction above it.
Per trial, one resample is calibrated at every budget of the grid (common random numbers across
budgets): for each budget the number of trials whose certified τ̂ delegates more than the budget of
the pool is then Binomial(trials, P(violation)) with P(violation) ≤ δ by the guarantee.

What it can and cannot show (:class:`MonteCarloCheck`). It is a Monte Carlo estimate, not a proof:

* **flag rule**: a budget is flagged when its violations exceed :func:`flag_limit`, the exact
  binomial tolerance with false-flag probability ≤ 0.001 for a procedure valid at δ (34 of 200 at
  δ = 0.1);
* **power**: at that rule the probability of flagging a procedure whose true violation rate is
  :data:`POWER_ALTERNATIVE` (0.15) is P(Bin(trials, 0.15) > limit), exactly (0.185 at 200 trials:
  it *passes* such a procedure with probability 0.815). The report states it, so a pass is read for
  what it is;
* **assumption**: rows are resampled i.i.d. from the pool, so the check tests the procedure under
  its own assumption. It cannot see dependence in the real data (rows clustered by conversation or
  user): there the real violation rate can be far above δ while this check passes (see
  ``calibration.cluster`` and the cluster correlation warning).

Where the world is known the violation probability needs no simulation
(:func:`exact_pool_violation`): with the pool as population the budget-only procedure (full grid,
fixed-sequence, binomial) certifies τ̂ = the (k* + 1)-th largest of the n draws, and it violates the
budget iff fewer than k* + 1 draws exceed v′, the largest pool value whose pool rate q exceeds the
budget; so P(violation) = P(Bin(n, q) ≤ k*) exactly (q = the smallest pool rate above the budget).
For the Pareto arm the same event is necessary for a violation (every certified τ has at most k*
test rows above it), so P(Bin(n_test, q) ≤ k*(n_test)) is an exact upper bound, n_test = the rows
its budget test uses.

Two arms: the Pareto arm (:func:`~ctd_stats.stats.sweep.cascade_thresholds`, the deployed
procedure, with the study's split) and the budget-only arm (:func:`~ctd_stats.stats.sweep.budget_thresholds`
on all ``n_cal`` rows). Cost: ``trials`` × O(n_cal log n_cal) for the Pareto arm (a loop over
trials, each vectorised over budgets) and one row-wise sort of a (trials, n_cal) matrix for the
budget-only arm; the exact probabilities cost O(J log n) for J budgets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from ctd_stats.stats.pareto import CascadeData
from ctd_stats.stats.simulate import RATE_TOLERANCE
from ctd_stats.stats.sweep import budget_thresholds, cascade_thresholds


def pool_rates(pool_sorted: NDArray[np.float64], taus: NDArray[np.float64]) -> NDArray[np.float64]:
    """True delegation rate P(d > τ) of each τ when the population is the (sorted) pool."""
    n = pool_sorted.size
    return np.asarray((n - np.searchsorted(pool_sorted, taus, side="right")) / n, dtype=np.float64)


def monte_carlo_budget_check(
    pool: CascadeData,
    budget_grid: NDArray[np.float64],
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
    pareto = np.empty((trials, budget_grid.size))
    for t in range(trials):
        data = pool.subset(rng.integers(0, N, size=n_cal))
        taus = cascade_thresholds(
            data,
            budgets=budget_grid,
            delta=delta,
            opt_fraction=opt_fraction,
            seed=int(rng.integers(2**31)),
            split=split,
        )
        pareto[t] = pool_rates(pool_sorted, taus)
    draws = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2,))).integers(
        0, N, size=(trials, n_cal)
    )
    only = pool_rates(pool_sorted, budget_thresholds(pool.dv_score[draws], budget_grid, delta))
    limit = budget_grid[None, :] + RATE_TOLERANCE
    return (
        np.count_nonzero(pareto > limit, axis=0).astype(np.int64),
        pareto.mean(axis=0),
        np.count_nonzero(only > limit, axis=0).astype(np.int64),
        only.mean(axis=0),
    )


def guarantee_piece(
    pool: CascadeData,
    budget_grid: NDArray[np.float64],
    delta: float,
    *,
    n_cal: int,
    trials: int,
    opt_fraction: float,
    split: str,
    seed: int,
) -> list[Any]:
    """The study's guarantee task: :func:`monte_carlo_budget_check`'s four arrays, then the exact
    violation probability of the budget-only arm and the exact bound for the Pareto arm ([J] each)."""
    pool_sorted = np.sort(pool.dv_score)
    n_test = pareto_test_rows(n_cal, split, opt_fraction)
    return [
        *monte_carlo_budget_check(
            pool,
            budget_grid,
            delta,
            n_cal=n_cal,
            trials=trials,
            opt_fraction=opt_fraction,
            split=split,
            seed=seed,
        ),
        exact_pool_violation(pool_sorted, n_cal, budget_grid, delta),
        exact_pool_violation(pool_sorted, n_test, budget_grid, delta),
    ]


#: Older name of :func:`monte_carlo_budget_check` (kept for callers; it was never a bootstrap CI).
bootstrap_budget_check = monte_carlo_budget_check

#: The alternative violation rate against which the check's power is reported.
POWER_ALTERNATIVE = 0.15
#: Probability that the flag rule flags a procedure whose violation rate is exactly δ (at most).
FALSE_FLAG = 0.001


def flag_limit(trials: int, delta: float, false_flag: float = FALSE_FLAG) -> int:
    """Largest violation count that passes: the smallest k with P(Bin(trials, δ) > k) ≤ ``false_flag``."""
    k = int(stats.binom.ppf(1.0 - false_flag, trials, delta))
    while stats.binom.sf(k, trials, delta) > false_flag:
        k += 1
    return k


def flag_probability(trials: int, limit: int, violation_rate: float) -> float:
    """P(the check flags) = P(Bin(trials, rate) > limit), for a procedure with that violation rate."""
    return float(stats.binom.sf(limit, trials, violation_rate))


def exact_pool_violation(
    pool_sorted: NDArray[np.float64], n: int, budgets: NDArray[np.float64], delta: float
) -> NDArray[np.float64]:
    """Exact P(violation) of budget-only calibration on n i.i.d. draws from the pool, per budget.

    P(Bin(n, q) ≤ k*), q = the smallest pool rate above the budget
    (:func:`ctd_stats.stats.exact_violation.discrete_violation`). For a Pareto arm that tests the budget
    on n rows it is an exact upper bound (module docstring).
    """
    from ctd_stats.stats.exact_violation import discrete_violation

    N = pool_sorted.size
    values = np.unique(pool_sorted)
    ge = (N - np.searchsorted(pool_sorted, values, side="left")) / N  # P(X ≥ v) of each atom
    return np.array([discrete_violation(ge, n, float(b), delta) for b in budgets])  # J budgets


def pareto_test_rows(n_cal: int, split: str, opt_fraction: float) -> int:
    """Rows the Pareto arm's budget test uses: all ``n_cal`` (split none), else the ht part."""
    if split == "none":
        return n_cal
    return n_cal - min(max(1, round(opt_fraction * n_cal)), n_cal - 1)


@dataclass(frozen=True)
class MonteCarloCheck:
    """The Monte Carlo check of one expert's budgets, with its flag rule, power and exact values."""

    budgets: NDArray[np.float64]
    delta: float
    trials: int
    violations: NDArray[np.int64]
    exact_budget_only: NDArray[np.float64] | None = None
    exact_pareto_bound: NDArray[np.float64] | None = None

    @property
    def limit(self) -> int:
        return flag_limit(self.trials, self.delta)

    @property
    def flagged(self) -> NDArray[np.bool_]:
        return np.asarray(self.violations > self.limit, dtype=bool)

    @property
    def power(self) -> float:
        """P(flag) when the true violation rate is :data:`POWER_ALTERNATIVE`."""
        return flag_probability(self.trials, self.limit, POWER_ALTERNATIVE)

    def sentence(self) -> str:
        """What a pass means, in words (for reports)."""
        return (
            f"Monte Carlo check ({self.trials} i.i.d. resamples of the pool): a budget is flagged when "
            f"more than {self.limit} of {self.trials} calibrations violate it (false-flag probability "
            f"≤ {FALSE_FLAG:g} at δ = {self.delta:g}). It flags a true violation rate of "
            f"{POWER_ALTERNATIVE:g} with probability {self.power:.3f} only (it passes one with "
            f"probability {1 - self.power:.3f}), and it resamples rows independently, so it cannot "
            "detect dependence (clustered rows) in the real data."
        )

    def to_dict(
        self, mean_true_rate: NDArray[np.float64], eval_exceedances: NDArray[np.int64], repeats: int
    ) -> dict[str, Any]:
        """JSON-ready; ``mean_true_rate`` and the eval-rate exceedances come from the study."""
        from ctd_stats.stats.intervals import clopper_pearson

        def opt(x: NDArray[np.float64] | None) -> list[float] | None:
            return None if x is None else [float(v) for v in x]

        lo, hi = clopper_pearson(self.violations, self.trials, alpha=0.05)
        return {
            "trials": self.trials,
            "violations": [int(v) for v in self.violations],
            "frequency": [float(v) / self.trials for v in self.violations],
            "interval95": [[float(a), float(b)] for a, b in zip(lo, hi, strict=True)],
            "mean_true_rate": [float(x) for x in mean_true_rate],
            "eval_rate_exceedances": [int(x) for x in eval_exceedances],
            "repeats": repeats,
            "kind": "monte_carlo",
            "flag_limit": self.limit,
            "flagged": [bool(f) for f in self.flagged],
            "false_flag_probability": FALSE_FLAG,
            "power": {
                "alternative_violation_rate": POWER_ALTERNATIVE,
                "probability_flagged": self.power,
            },
            "assumption": "calibration rows resampled i.i.d. from the pool (the procedure's own "
            "assumption); dependence in the real data is not detected",
            "exact": {
                "budget_only_violation_probability": opt(self.exact_budget_only),
                "pareto_violation_upper_bound": opt(self.exact_pareto_bound),
            },
        }

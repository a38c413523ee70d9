"""Validate the finite-sample guarantees in simulation, many worlds at once.

A *population* knows how to draw i.i.d. scores and the true delegation rate R_B(τ) = P(d(X) > τ) of
any threshold. :func:`simulate_budget_guarantee` draws ``trials`` calibration sets of size n at once
(a trials × n array, in chunks to bound memory), calibrates each with the vectorised closed form of
:func:`ctd_stats.stats.ltt.calibrate_budget`, and measures R_B(τ̂) exactly on the population. The
violation frequency #{R_B(τ̂) > budget}/trials estimates P(violation), which the guarantee bounds by
δ; its exact Clopper–Pearson interval says how precisely.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from ctd_stats.engines.local import Engine, LocalEngine
from ctd_stats.errors import CTDInputError
from ctd_stats.stats.exact_violation import continuous_violation, discrete_violation
from ctd_stats.stats.inputs import as_finite_1d, check_open_unit
from ctd_stats.stats.intervals import clopper_pearson
from ctd_stats.stats.ltt import calibrate_budget_batch
from ctd_stats.stats.pareto import CascadeData, calibrate_cascade

#: Rates are compared with the budget up to this absolute tolerance, so that float rounding in a
#: population's tail sums (0.1 + 0.2 > 0.3) is not counted as a violation.
RATE_TOLERANCE = 1e-12

# ----------------------------------------------------------------------------- populations


class Population(ABC):
    """A score distribution: i.i.d. draws and the exact true rate P(d(X) > τ)."""

    name: str = "population"

    @abstractmethod
    def sample(self, rng: np.random.Generator, shape: tuple[int, ...]) -> NDArray[np.float64]:
        """Draw i.i.d. scores of the given shape."""

    @abstractmethod
    def rate_above(self, thresholds: ArrayLike) -> NDArray[np.float64]:
        """True delegation rate P(d(X) > τ) for each τ (``inf`` gives 0)."""


class ScipyPopulation(Population):
    """A continuous or discrete ``scipy.stats`` frozen distribution."""

    def __init__(self, dist: Any, name: str = "scipy") -> None:
        self.dist = dist
        self.name = name

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...]) -> NDArray[np.float64]:
        return np.asarray(self.dist.rvs(size=shape, random_state=rng), dtype=np.float64)

    def rate_above(self, thresholds: ArrayLike) -> NDArray[np.float64]:
        t = np.asarray(thresholds, dtype=np.float64)
        return np.where(np.isposinf(t), 0.0, np.asarray(self.dist.sf(t), dtype=np.float64))


class DiscretePopulation(Population):
    """Finitely many values with given probabilities (ties and point masses)."""

    def __init__(self, values: ArrayLike, probs: ArrayLike, name: str = "discrete") -> None:
        v = as_finite_1d("values", values)
        p = as_finite_1d("probs", probs)
        if v.size != p.size or p.min() < 0 or not math.isclose(p.sum(), 1.0, abs_tol=1e-9):
            raise CTDInputError("probs must be non-negative, sum to 1 and match values in length")
        order = np.argsort(v)
        self.values, self.probs = v[order], p[order] / p.sum()
        # tail[j] = P(X > values[j-1]) = sum of probs from j on
        self._tail = np.concatenate([np.cumsum(self.probs[::-1])[::-1], [0.0]])
        self.name = name

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...]) -> NDArray[np.float64]:
        return rng.choice(self.values, size=shape, p=self.probs)

    def rate_above(self, thresholds: ArrayLike) -> NDArray[np.float64]:
        t = np.asarray(thresholds, dtype=np.float64)
        return np.asarray(
            self._tail[np.searchsorted(self.values, t, side="right")], dtype=np.float64
        )


class MixturePopulation(Population):
    """A mixture of populations with given weights (e.g. a point mass plus a continuous part)."""

    def __init__(
        self, components: Sequence[Population], weights: ArrayLike, name: str = "mixture"
    ) -> None:
        w = as_finite_1d("weights", weights)
        if len(components) != w.size or w.min() < 0 or w.sum() <= 0:
            raise CTDInputError("weights must be non-negative, one per component")
        self.components, self.weights = list(components), w / w.sum()
        self.name = name

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...]) -> NDArray[np.float64]:
        which = rng.choice(len(self.components), size=shape, p=self.weights)
        out = np.empty(shape, dtype=np.float64)
        for j, comp in enumerate(self.components):
            m = which == j
            out[m] = comp.sample(rng, (int(m.sum()),))
        return out

    def rate_above(self, thresholds: ArrayLike) -> NDArray[np.float64]:
        return np.asarray(
            sum(
                w * c.rate_above(thresholds)
                for w, c in zip(self.weights, self.components, strict=True)
            ),
            dtype=np.float64,
        )


class EmpiricalPopulation(Population):
    """Resample a large array of scores with replacement; the population is its empirical law."""

    def __init__(self, scores: ArrayLike, name: str = "empirical") -> None:
        self.sorted = np.sort(as_finite_1d("population scores", scores))
        self.name = name

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...]) -> NDArray[np.float64]:
        return self.sorted[rng.integers(0, self.sorted.size, size=shape)]

    def rate_above(self, thresholds: ArrayLike) -> NDArray[np.float64]:
        t = np.asarray(thresholds, dtype=np.float64)
        n = self.sorted.size
        return np.asarray((n - np.searchsorted(self.sorted, t, side="right")) / n, dtype=np.float64)


def make_population(distribution: str, **params: Any) -> Population:
    """Build a named parametric population.

    ``uniform``; ``normal`` (loc, scale); ``beta`` (a, b); ``discrete`` (values, probs);
    ``point_mass`` (atom, mass, then a standard-normal continuous part: a tie of size ``mass``);
    ``lognormal`` (sigma).
    """
    d = distribution
    if d == "uniform":
        return ScipyPopulation(stats.uniform(), "uniform")
    if d == "normal":
        return ScipyPopulation(
            stats.norm(params.get("loc", 0.0), params.get("scale", 1.0)), "normal"
        )
    if d == "beta":
        return ScipyPopulation(stats.beta(params.get("a", 2.0), params.get("b", 5.0)), "beta")
    if d == "lognormal":
        return ScipyPopulation(stats.lognorm(params.get("sigma", 1.0)), "lognormal")
    if d == "discrete":
        return DiscretePopulation(
            params.get("values", [0, 1, 2, 3]), params.get("probs", [0.4, 0.3, 0.2, 0.1])
        )
    if d == "point_mass":
        atom = DiscretePopulation([params.get("atom", 0.0)], [1.0], "atom")
        return MixturePopulation(
            [atom, ScipyPopulation(stats.norm(), "normal")],
            [params.get("mass", 0.5), 1 - params.get("mass", 0.5)],
            "point_mass",
        )
    raise CTDInputError(
        f"unknown distribution {distribution!r}: expected uniform, normal, beta, lognormal, discrete or point_mass"
    )


# ------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class SimulationResult:
    """Outcome of a guarantee simulation (immutable)."""

    population: str
    method: str
    procedure: str
    n: int
    budget: float
    delta: float
    trials: int
    violations: int
    fail_closed: int
    confidence: float
    realized_rates: NDArray[np.float64]
    seed: int
    exact_violation: float | None = None  # exact P(violation) where the population makes it known

    @property
    def violation_frequency(self) -> float:
        return self.violations / self.trials

    @property
    def violation_interval(self) -> tuple[float, float]:
        """Exact two-sided Clopper–Pearson interval for P(violation) at ``confidence``."""
        lo, hi = clopper_pearson(self.violations, self.trials, alpha=1.0 - self.confidence)
        return float(lo), float(hi)

    @property
    def violation_upper(self) -> float:
        """One-sided upper Clopper–Pearson bound for P(violation) at ``confidence``."""
        if self.violations == self.trials:
            return 1.0
        return float(
            stats.beta.ppf(self.confidence, self.violations + 1, self.trials - self.violations)
        )

    @property
    def mean_realized_rate(self) -> float:
        return float(self.realized_rates.mean())

    def to_dict(self) -> dict[str, Any]:
        q = np.quantile(self.realized_rates, [0.05, 0.25, 0.5, 0.75, 0.95])
        lo, hi = self.violation_interval
        return {
            "population": self.population,
            "method": self.method,
            "procedure": self.procedure,
            "n": self.n,
            "budget": self.budget,
            "delta": self.delta,
            "trials": self.trials,
            "seed": self.seed,
            "violations": self.violations,
            "violation_frequency": self.violation_frequency,
            "violation_interval": [lo, hi],
            "violation_upper": self.violation_upper,
            "exact_violation_probability": self.exact_violation,
            "confidence": self.confidence,
            "fail_closed": self.fail_closed,
            "realized_rate_mean": self.mean_realized_rate,
            "realized_rate_quantiles": {
                "5%": q[0],
                "25%": q[1],
                "50%": q[2],
                "75%": q[3],
                "95%": q[4],
            },
        }


def _as_population(population: Population | ArrayLike) -> Population:
    if isinstance(population, Population):
        return population
    return EmpiricalPopulation(population)


#: Most trials in one chunk. Chunks are the unit of work of every engine and each has its own seed,
#: so the chunking (and with it the numbers) depends only on (trials, n, seed), never on the engine.
TRIALS_PER_CHUNK = 500


@dataclass(frozen=True)
class BudgetChunk:
    """One piece of a budget simulation: ``trials`` calibration sets of size ``n``, own seed."""

    n: int
    trials: int
    budget: float
    delta: float
    procedure: str
    seed: int
    index: int

    def rng(self) -> np.random.Generator:
        """The chunk's generator: child ``index`` of ``SeedSequence(seed)`` (stateless, engine-free)."""
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(self.index,)))


def budget_chunks(
    *,
    n: int,
    trials: int,
    budget: float,
    delta: float,
    procedure: str,
    seed: int,
    chunk_elements: int = 4_000_000,
) -> list[BudgetChunk]:
    """Split ``trials`` into chunks of at most ``min(TRIALS_PER_CHUNK, chunk_elements // n)`` trials."""
    per_chunk = max(1, min(TRIALS_PER_CHUNK, chunk_elements // n))
    return [
        BudgetChunk(n, min(per_chunk, trials - start), budget, delta, procedure, seed, i)
        for i, start in enumerate(range(0, trials, per_chunk))
    ]


def run_budget_chunk(population: Population, chunk: BudgetChunk) -> NDArray[np.float64]:
    """Certified thresholds of one chunk's calibration sets (vectorised over its trials)."""
    draws = population.sample(chunk.rng(), (chunk.trials, chunk.n))
    return calibrate_budget_batch(draws, chunk.budget, chunk.delta, procedure=chunk.procedure)


def check_budget_arguments(
    n: int, trials: int, budget: float, delta: float, confidence: float
) -> tuple[float, float, float]:
    """Validated (budget, delta, confidence)."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise CTDInputError(f"n must be a positive integer, got {n!r}")
    if trials < 1:
        raise CTDInputError(f"trials must be ≥ 1, got {trials}")
    return (
        check_open_unit("budget", budget),
        check_open_unit("delta", delta),
        check_open_unit("confidence", confidence),
    )


def budget_result(
    population: Population,
    taus: NDArray[np.float64],
    *,
    n: int,
    budget: float,
    delta: float,
    procedure: str,
    seed: int,
    confidence: float,
) -> SimulationResult:
    """The :class:`SimulationResult` of the certified thresholds of all trials."""
    rates = population.rate_above(taus)
    return SimulationResult(
        population=population.name,
        method="budget_only",
        procedure=procedure,
        n=int(n),
        budget=budget,
        delta=delta,
        trials=int(taus.size),
        violations=int(np.count_nonzero(rates > budget + RATE_TOLERANCE)),
        fail_closed=int(np.count_nonzero(np.isinf(taus))),
        confidence=confidence,
        realized_rates=rates,
        seed=seed,
        exact_violation=(
            exact_budget_violation(population, n, budget, delta)
            if procedure == "fixed_sequence"
            else None
        ),
    )


def simulate_budget_guarantee(
    population: Population | ArrayLike,
    *,
    n: int,
    budget: float,
    delta: float,
    trials: int = 10_000,
    procedure: str = "fixed_sequence",
    seed: int = 0,
    confidence: float = 0.999,
    chunk_elements: int = 4_000_000,
    engine: Engine | None = None,
) -> SimulationResult:
    """Simulate budget-only calibration (full grid, exact binomial p-value) ``trials`` times.

    Parameters
    ----------
    population : Population or array_like
        A generator (:func:`make_population`) or a large array of scores resampled with replacement.
    n : int
        Calibration-set size per trial.
    procedure : {"fixed_sequence", "bonferroni"}
    seed : int
        Chunk ``i`` of the trials (:func:`budget_chunks`) draws from child ``i`` of
        ``numpy.random.SeedSequence(seed)``, so the numbers do not depend on the engine.
    confidence : float
        Confidence of the reported Clopper–Pearson interval on the violation frequency.
    chunk_elements : int
        Bound on trials × n drawn at once (memory ≈ 16 bytes × chunk_elements).
    engine : Engine, optional
        Where the chunks run (:func:`ctd_stats.engines.local.get_engine`); default this process.
    """
    pop = _as_population(population)
    b, d, c = check_budget_arguments(n, trials, budget, delta, confidence)
    chunks = budget_chunks(
        n=n,
        trials=trials,
        budget=b,
        delta=d,
        procedure=procedure,
        seed=seed,
        chunk_elements=chunk_elements,
    )
    parts = (engine or LocalEngine()).map(run_budget_chunk, pop, chunks)
    return budget_result(
        pop,
        np.concatenate(parts),
        n=n,
        budget=b,
        delta=d,
        procedure=procedure,
        seed=seed,
        confidence=c,
    )


@dataclass(frozen=True)
class CascadeSimulationResult:
    """Outcome of :func:`simulate_cascade_guarantee`: budget (and optional joint error) violations."""

    budget_result: SimulationResult
    realized_errors: NDArray[np.float64]
    error_level: float | None
    joint_violations: int

    def to_dict(self) -> dict[str, Any]:
        out = self.budget_result.to_dict()
        out["realized_error_mean"] = float(self.realized_errors.mean())
        out["error_level"] = self.error_level
        out["joint_violations"] = self.joint_violations
        return out


def simulate_cascade_guarantee(
    population: CascadeData,
    *,
    n: int,
    budget: float,
    delta: float,
    trials: int = 1000,
    opt_fraction: float = 0.3,
    error_level: float | None = None,
    joint: str = "bonferroni_split",
    seed: int = 0,
    confidence: float = 0.999,
    split: str = "opt_ht",
) -> CascadeSimulationResult:
    """Simulate Pareto (CTD) calibration by resampling rows of a large population table.

    Each trial draws n rows with replacement, runs :func:`calibrate_cascade`, and measures on the whole
    population the true delegation rate and cascade error of τ̂. A *violation* is R_B(τ̂) > budget; a
    *joint violation* (with ``error_level``) is R_B(τ̂) > budget, or a certified τ̂ with
    R_E(τ̂) > error_level (a fail-closed result claims only the budget). ``split`` is passed to
    :func:`calibrate_cascade` (``"none"``: front and test on all n rows; budget only).
    Loops over trials (each calibration is O(n log n)); not a hot path.
    """
    rng = np.random.default_rng(seed)
    pop_sorted = np.sort(population.dv_score)
    order = np.argsort(-population.dv_score, kind="stable")
    pw = (~population.probe_correct)[order].astype(np.int64)
    ew = (~population.expert_correct)[order].astype(np.int64)
    gain = np.concatenate([[0], np.cumsum(ew - pw)])
    N = population.n
    rates = np.empty(trials)
    errs = np.empty(trials)
    certified = np.zeros(trials, dtype=bool)
    for t in range(trials):
        idx = rng.integers(0, N, size=n)
        cal = calibrate_cascade(
            population.subset(idx),
            budget=budget,
            delta=delta,
            opt_fraction=opt_fraction,
            seed=int(rng.integers(2**31)),
            error_level=error_level,
            joint=joint,
            split=split,
        )
        k = int(N - np.searchsorted(pop_sorted, cal.threshold, side="right"))
        rates[t] = k / N
        errs[t] = (pw.sum() + gain[k]) / N
        certified[t] = cal.is_certified
    b = check_open_unit("budget", budget)
    viol = rates > b + RATE_TOLERANCE
    # A fail-closed result (never delegate) claims only the budget, so it cannot violate the error part.
    joint_viol = (
        viol | (certified & (errs > error_level + RATE_TOLERANCE))
        if error_level is not None
        else viol
    )
    res = SimulationResult(
        population="resampled table",
        method="ctd_pareto" if split == "opt_ht" else f"ctd_pareto(split={split})",
        procedure="fixed_sequence" if error_level is None else joint,
        n=n,
        budget=b,
        delta=delta,
        trials=trials,
        violations=int(viol.sum()),
        fail_closed=int(np.count_nonzero(~certified)),
        confidence=confidence,
        realized_rates=rates,
        seed=seed,
    )
    return CascadeSimulationResult(res, errs, error_level, int(joint_viol.sum()))


def exact_budget_violation(population: object, n: int, budget: float, delta: float) -> float | None:
    """The exact P(violation) for a population of :mod:`ctd_stats.stats.simulate`, or None if unknown.

    Known for a continuous ``scipy.stats`` law, a :class:`~ctd_stats.stats.simulate.DiscretePopulation`
    and an :class:`~ctd_stats.stats.simulate.EmpiricalPopulation`; None for mixtures with atoms and
    discrete ``scipy.stats`` laws (where v* would need a search).
    """
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

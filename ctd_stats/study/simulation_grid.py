"""A grid of guarantee simulations for a spec: every (procedure, n, budget), one row each.

``ctd simulate`` runs this; :mod:`ctd_stats.reports.simulation` turns the rows into a report. Each
row carries the violation count, its Clopper–Pearson interval (from
:attr:`ctd_stats.stats.simulate.SimulationResult.violation_interval`) and the realized-rate spread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ctd_stats.engines.local import Engine, LocalEngine
from ctd_stats.errors import CTDInputError
from ctd_stats.stats.simulate import (
    EmpiricalPopulation,
    Population,
    SimulationResult,
    budget_chunks,
    budget_result,
    check_budget_arguments,
    make_population,
    run_budget_chunk,
)

if TYPE_CHECKING:  # pragma: no cover
    from ctd_stats.spec.cascade_spec import CascadeSpec

#: Columns of a simulation row, in report order.
COLUMNS = (
    "population",
    "procedure",
    "n",
    "budget",
    "delta",
    "trials",
    "violations",
    "violation_frequency",
    "ci_low",
    "ci_high",
    "realized_mean",
    "realized_q05",
    "realized_q95",
    "fail_closed",
    "exact_violation",
    "exact_mean_rate",
)


def exact_reference(
    population: Population | np.ndarray, procedure: str, n: int, budget: float, delta: float
) -> tuple[float | None, float | None]:
    """Exact ``(P(violation), E[true rate])`` where closed forms exist, else ``(None, None)``.

    They exist for fixed-sequence budget-only calibration on the full grid with exact binomial
    p-values (what the simulation runs) when the scores are *continuous* (a continuous ``scipy.stats``
    population): see :func:`ctd_stats.stats.planning.violation_probability` and
    :func:`ctd_stats.stats.planning.expected_rate`. With ties (discrete populations, resampled tables)
    the true rate is lower and no closed form is given.
    """
    from scipy import stats

    from ctd_stats.stats.planning import expected_rate, violation_probability
    from ctd_stats.stats.simulate import ScipyPopulation

    continuous = isinstance(population, ScipyPopulation) and isinstance(
        getattr(population.dist, "dist", None), stats.rv_continuous
    )
    if not continuous or procedure != "fixed_sequence":
        return None, None
    return violation_probability(n, budget, delta), expected_rate(n, budget, delta)


def result_row(res: SimulationResult) -> dict[str, Any]:
    """One report row of a simulation result."""
    lo, hi = res.violation_interval
    q05, q95 = np.quantile(res.realized_rates, [0.05, 0.95])
    return {
        "population": res.population,
        "procedure": res.procedure,
        "n": res.n,
        "budget": res.budget,
        "delta": res.delta,
        "trials": res.trials,
        "violations": res.violations,
        "violation_frequency": res.violation_frequency,
        "ci_low": lo,
        "ci_high": hi,
        "realized_mean": res.mean_realized_rate,
        "realized_q05": float(q05),
        "realized_q95": float(q95),
        "fail_closed": res.fail_closed,
        "exact_violation": None,
        "exact_mean_rate": None,
    }


def simulate_grid(
    population: Population | np.ndarray,
    *,
    sizes: Sequence[int],
    budgets: Sequence[float],
    procedures: Sequence[str],
    delta: float,
    trials: int,
    seed: int,
    progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None,
    engine: Engine | None = None,
) -> list[dict[str, Any]]:
    """One row per (procedure, n, budget), in that order; setting ``i`` uses seed ``seed + i``.

    Every setting is cut into chunks of trials (:func:`ctd_stats.stats.simulate.budget_chunks`, each with
    its own seed); the chunks of all settings go to the engine together, so a Ray cluster runs the
    whole grid at once. The numbers are the same on every engine. ``progress`` wraps the settings
    on the local engine (the Ray engine reports nothing until the grid is done).
    """
    pop = population if isinstance(population, Population) else EmpiricalPopulation(population)
    jobs = [(p, n, b) for p in procedures for n in sizes for b in budgets]
    checked = [check_budget_arguments(n, trials, b, delta, 0.999) for _, n, b in jobs]
    plans = [
        budget_chunks(n=n, trials=trials, budget=bb, delta=dd, procedure=proc, seed=seed + i)
        for i, ((proc, n, _), (bb, dd, _)) in enumerate(zip(jobs, checked, strict=True))
    ]
    if engine is None or engine.name == "local":
        eng = engine or LocalEngine()
        order = progress(range(len(jobs))) if progress is not None else range(len(jobs))
        parts = {i: eng.map(run_budget_chunk, pop, plans[i]) for i in order}
    else:
        flat = engine.map(run_budget_chunk, pop, [c for plan in plans for c in plan])
        parts, k = {}, 0
        for i, plan in enumerate(plans):
            parts[i], k = flat[k : k + len(plan)], k + len(plan)
    rows = []
    for i, ((proc, n, _), (bb, dd, cc)) in enumerate(zip(jobs, checked, strict=True)):
        res = budget_result(
            pop,
            np.concatenate(parts[i]),
            n=n,
            budget=bb,
            delta=dd,
            procedure=proc,
            seed=seed + i,
            confidence=cc,
        )
        row = result_row(res)
        row["exact_violation"], row["exact_mean_rate"] = exact_reference(pop, proc, n, bb, dd)
        rows.append(row)
    return rows


def violates_beyond_doubt(rows: Sequence[dict[str, Any]]) -> bool:
    """True if some setting's violation-frequency interval lies entirely above its δ."""
    return any(r["ci_low"] > r["delta"] for r in rows)


def spec_population(spec: CascadeSpec) -> tuple[Population | np.ndarray, str]:
    """The simulation population of a spec and a description of it."""
    from ctd_stats.spec.cascade_spec import ParametricPopulation

    pop = spec.simulation.population
    if isinstance(pop, ParametricPopulation):
        params = pop.resolved_params()
        desc = f"{pop.distribution}({', '.join(f'{k}={v}' for k, v in params.items())})"
        return make_population(pop.distribution, **params), desc
    table = spec.load_table()
    assert table is not None
    exp = table.expert(pop.expert)
    mask = table.mask(*pop.splits) if pop.splits else np.ones(len(table), dtype=bool)
    scores = exp.dv_score[mask]
    if scores.size == 0:
        raise CTDInputError(
            f"{spec.source}: simulation.population.splits: no table rows in {', '.join(pop.splits or [])}"
        )
    return (
        scores,
        f"the score table's DV scores of expert {exp.name!r} ({scores.size} rows, resampled)",
    )

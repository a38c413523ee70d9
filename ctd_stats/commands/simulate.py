"""``ctd simulate [SPEC]``: check the budget guarantee in simulation.

Without a spec, a built-in example: continuous scores, n = 1000 calibration points, budget 0.3,
δ = 0.1, 2,000 simulated calibration sets, fixed-sequence and Bonferroni; it prints a table. With a
spec: its population, sizes, budgets and procedures; writes ``simulation.csv``, ``simulation.json``,
``simulation.png`` and the report (``simulation.md`` / ``.html``) into the output directory.

Exit code 1 if some setting violates the guarantee beyond doubt (the lower end of the
Clopper–Pearson interval of the violation frequency is above δ), 0 otherwise, 2 on bad input.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure as MplFigure

from ctd_stats.commands._progress import progress
from ctd_stats.errors import EXIT_NOT_CERTIFIED, EXIT_OK, CTDInputError
from ctd_stats.io import atomic_directory, atomic_write_json, atomic_write_text
from ctd_stats.report import Figure, Heading, Paragraph, Report, Table
from ctd_stats.simulate import Population, make_population, simulate_budget_guarantee
from ctd_stats.spec import CascadeSpec, ParametricPopulation, load_spec


@dataclass(frozen=True)
class Example:
    """The built-in example (the README's first command)."""

    distribution: str = "uniform"
    n: int = 1000
    budget: float = 0.3
    delta: float = 0.1
    trials: int = 2000
    procedures: tuple[str, ...] = ("fixed_sequence", "bonferroni")


EXAMPLE = Example()

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
)


def register(subparsers: Any) -> None:
    """Add the ``simulate`` sub-command."""
    p = subparsers.add_parser(
        "simulate",
        help="check the budget guarantee in simulation",
        description="Simulate many calibration sets and measure how often the certified threshold "
        "exceeds the budget (must be ≤ δ). Without SPEC: a built-in example (n = 1000, budget 0.3, "
        "δ = 0.1, 2,000 trials, fixed-sequence and Bonferroni).",
    )
    p.add_argument("spec", nargs="?", help="cascade spec (YAML); omit for the built-in example")
    p.add_argument("--trials", type=int, help="override the number of simulated calibration sets")
    p.add_argument("--seed", type=int, help="override the seed")
    p.add_argument(
        "--output", "-o", help="output directory (default: the spec's outputs.directory)"
    )
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="JSON on stdout")
    p.set_defaults(func=run)


def _row(res: Any) -> dict[str, Any]:
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
) -> list[dict[str, Any]]:
    """One row per (procedure, n, budget), in that order."""
    jobs = [(p, n, b) for p in procedures for n in sizes for b in budgets]
    rows = []
    for i, (proc, n, b) in enumerate(progress(jobs, desc="simulating", total=len(jobs))):
        res = simulate_budget_guarantee(
            population, n=n, budget=b, delta=delta, trials=trials, procedure=proc, seed=seed + i
        )
        rows.append(_row(res))
    return rows


def spec_population(spec: CascadeSpec) -> tuple[Population | np.ndarray, str]:
    """The simulation population of a spec and a description of it."""
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


def _print_table(rows: list[dict[str, Any]]) -> None:
    head = f"{'procedure':<15} {'n':>6} {'budget':>6} {'δ':>5} {'violations':>10} {'freq':>7} {'99.9% CP interval':>17} {'realized rate: mean [5%, 95%]':>31} {'fail-closed':>11}"
    print(head)
    for r in rows:
        ci = f"[{r['ci_low']:.4f}, {r['ci_high']:.4f}]"
        rr = f"{r['realized_mean']:.4f} [{r['realized_q05']:.4f}, {r['realized_q95']:.4f}]"
        print(
            f"{r['procedure']:<15} {r['n']:>6} {r['budget']:>6g} {r['delta']:>5g} "
            f"{r['violations']:>10} {r['violation_frequency']:>7.4f} {ci:>17} {rr:>31} {r['fail_closed']:>11}"
        )


def _verdict(rows: list[dict[str, Any]]) -> int:
    return EXIT_NOT_CERTIFIED if any(r["ci_low"] > r["delta"] for r in rows) else EXIT_OK


def plot(rows: list[dict[str, Any]]) -> MplFigure:
    """Violation frequency (with CP interval) and realized rate against budget, per procedure and n."""
    fig = MplFigure(figsize=(10, 3.8), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    series = sorted({(r["procedure"], r["n"]) for r in rows})
    budgets_all = sorted({r["budget"] for r in rows})
    width = 0.25 * (min(np.diff(budgets_all)) if len(budgets_all) > 1 else 0.1)
    for j, (proc, n) in enumerate(series):
        pts = sorted(
            (r for r in rows if r["procedure"] == proc and r["n"] == n), key=lambda r: r["budget"]
        )
        x = np.array([r["budget"] for r in pts]) + (j - (len(series) - 1) / 2) * width / max(
            1, len(series)
        )
        f = np.array([r["violation_frequency"] for r in pts])
        lo = np.array([r["ci_low"] for r in pts])
        hi = np.array([r["ci_high"] for r in pts])
        label = f"{proc}, n={n}"
        ax1.errorbar(
            x,
            f,
            yerr=[np.maximum(f - lo, 0), np.maximum(hi - f, 0)],
            fmt="o",
            capsize=3,
            label=label,
        )
        m = np.array([r["realized_mean"] for r in pts])
        q05 = np.array([r["realized_q05"] for r in pts])
        q95 = np.array([r["realized_q95"] for r in pts])
        (line,) = ax2.plot(x, m, "o-", label=label)
        ax2.vlines(x, q05, q95, color=line.get_color(), lw=2, alpha=0.6)
    deltas = sorted({r["delta"] for r in rows})
    for d in deltas:
        ax1.axhline(d, color="#c62828", ls="--", lw=1.2, label=f"δ = {d:g}")
    ax1.set_xlabel("budget")
    ax1.set_ylabel("violation frequency")
    ax1.set_title("P(true rate > budget), 99.9% Clopper–Pearson", fontsize=10)
    ax1.set_ylim(bottom=0)
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.25)
    top = max(max(budgets_all), max(r["realized_q95"] for r in rows)) * 1.1
    ax2.plot([0, top], [0, top], color="#c62828", ls="--", lw=1, label="rate = budget")
    ax2.set_xlabel("budget")
    ax2.set_ylabel("true delegation rate of τ̂")
    ax2.set_title("Realized rate: mean, 5%–95%", fontsize=10)
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.25)
    return fig


def _csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _report(rows: list[dict[str, Any]], spec: CascadeSpec, population: str, png: bytes) -> Report:
    worst = max(rows, key=lambda r: r["violation_frequency"])
    ok = _verdict(rows) == EXIT_OK
    summary = (
        f"{len(rows)} setting(s) simulated, {rows[0]['trials']} calibration sets each, scores from "
        f"{population}. The highest violation frequency was {worst['violation_frequency']:.4f} "
        f"({worst['procedure']}, n = {worst['n']}, budget {worst['budget']:g}) against δ = "
        f"{worst['delta']:g}: "
        + (
            "consistent with the guarantee."
            if ok
            else "ABOVE δ beyond sampling error: the guarantee fails here."
        )
    )
    rep = Report(title=f"Simulation — {spec.cascade.name}", summary=summary)
    rep.add(
        Heading("Violation frequency and realized rate"),
        Figure(
            png=png,
            caption="Left: how often the certified threshold's true rate exceeded the "
            "budget, with its 99.9% Clopper–Pearson interval; it must stay at or below δ. Right: "
            "the true delegation rate of the certified threshold (mean and 5%–95% range).",
        ),
        Table(list(COLUMNS), [[r[c] for c in COLUMNS] for r in rows]),
        Paragraph(
            "Simulated with budget-only calibration over every distinct score and the exact "
            "binomial p-value; the true rate is computed on the population itself."
        ),
    )
    return rep


def run(args: argparse.Namespace) -> int:
    as_json = getattr(args, "json", False)
    if not args.spec:
        ex = EXAMPLE
        rows = simulate_grid(
            make_population(ex.distribution),
            sizes=[ex.n],
            budgets=[ex.budget],
            procedures=list(ex.procedures),
            delta=ex.delta,
            trials=args.trials or ex.trials,
            seed=args.seed if args.seed is not None else 0,
        )
        code = _verdict(rows)
        if as_json:
            print(json.dumps({"example": True, "rows": rows, "exit_code": code}, indent=2))
            return code
        print("Built-in example: uniform scores, n = 1000 calibration points, budget 0.3, δ = 0.1.")
        print(
            "Each trial certifies a threshold τ̂ on fresh data; a violation is a true rate P(d > τ̂) > 0.3."
        )
        _print_table(rows)
        print(
            "The guarantee holds if the violation frequency is at most δ = 0.1 (up to sampling error)."
        )
        return code

    spec = load_spec(args.spec)
    sim = spec.simulation
    population, desc = spec_population(spec)
    rows = simulate_grid(
        population,
        sizes=sim.sizes,
        budgets=spec.simulation_budgets(),
        procedures=sim.procedures,
        delta=spec.calibration.delta,
        trials=args.trials or sim.trials,
        seed=args.seed if args.seed is not None else sim.seed,
    )
    code = _verdict(rows)
    fig = Figure.from_matplotlib(plot(rows))
    directory = Path(args.output) if getattr(args, "output", None) else spec.output_dir()
    rep = _report(rows, spec, desc, fig.png)
    with atomic_directory(directory) as stage:
        atomic_write_text(stage / "simulation.csv", _csv(rows))
        atomic_write_json(stage / "simulation.json", {"population": desc, "rows": rows})
        (stage / "simulation.png").write_bytes(fig.png)
        if "md" in spec.outputs.formats:
            atomic_write_text(stage / "simulation.md", rep.to_markdown())
        if "html" in spec.outputs.formats:
            atomic_write_text(stage / "simulation.html", rep.to_html())
    if as_json:
        print(
            json.dumps(
                {"population": desc, "rows": rows, "directory": str(directory), "exit_code": code},
                indent=2,
            )
        )
        return code
    print(f"population: {desc}")
    _print_table(rows)
    print(f"wrote {directory}/simulation.{{csv,json,png}} and the report")
    return code

"""``ctd simulate [SPEC]``: check the budget guarantee in simulation.

Without a spec, a built-in example: continuous scores, n = 1000 calibration points, budget 0.3,
δ = 0.1, 2,000 simulated calibration sets, fixed-sequence and Bonferroni; it prints a table. With a
spec: its population, sizes, budgets and procedures; writes ``simulation.csv``, ``simulation.json``,
``simulation.png`` and the report (``simulation.md`` / ``.html``) into the output directory.

Exit code 1 if some setting violates the guarantee beyond doubt (the lower end of the
Clopper–Pearson interval of the violation frequency is above δ), 0 otherwise, 2 on bad input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click

from ctd_stats.cli.argtypes import (
    FILE,
    CountRange,
    Seed,
    arguments,
    engine_options,
    force_option,
    json_option,
    output_option,
)
from ctd_stats.cli.progress import progress
from ctd_stats.engines.local import get_engine
from ctd_stats.errors import EXIT_NOT_CERTIFIED, EXIT_OK
from ctd_stats.limits import MAX_TRIALS
from ctd_stats.reports.document import Figure
from ctd_stats.reports.outputs import output_set


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


@click.command(
    "simulate",
    short_help="check the budget guarantee in simulation",
    help="Simulate many calibration sets and measure how often the certified threshold "
    "exceeds the budget (must be ≤ δ). Without SPEC: a built-in example (n = 1000, budget 0.3, "
    "δ = 0.1, 2,000 trials, fixed-sequence and Bonferroni).",
)
@click.argument("spec", type=FILE, required=False)
@click.option(
    "--trials",
    type=CountRange(MAX_TRIALS, "trials"),
    default=None,
    help=f"override the number of simulated calibration sets (1 to {MAX_TRIALS:,})",
)
@click.option("--seed", type=Seed(), default=None, help="override the seed (≥ 0)")
@output_option
@force_option
@engine_options
@json_option
@click.pass_context
def command(ctx: click.Context, **values: Any) -> int:
    return run(arguments(ctx, values))


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
    from ctd_stats.study.simulation_grid import violates_beyond_doubt

    return EXIT_NOT_CERTIFIED if violates_beyond_doubt(rows) else EXIT_OK


#: Trials × settings from which ``ctd simulate`` times a pilot first and announces a long run.
PILOT_FROM = 20_000
#: Trials of the pilot (one setting, the largest n).
PILOT_TRIALS = 200


def _estimate(population: Any, engine: Any, **grid: Any) -> None:
    """Announce the simulation's duration (timed on a pilot) when it is large; see :mod:`._estimate`."""
    from ctd_stats.cli.estimate import pilot_estimate
    from ctd_stats.study.simulation_grid import simulate_grid

    settings = len(grid["sizes"]) * len(grid["budgets"]) * len(grid["procedures"])
    total = grid["trials"] * settings
    if total < PILOT_FROM or (engine is not None and engine.name != "local"):
        return
    pilot_grid = {
        **grid,
        "sizes": [max(grid["sizes"])],
        "budgets": grid["budgets"][:1],
        "procedures": list(grid["procedures"])[:1],
    }

    def pilot(trials: int) -> None:
        simulate_grid(population, **{**pilot_grid, "trials": trials})

    pilot_estimate(pilot, PILOT_TRIALS, total, "simulated calibration sets")


def _progress(jobs: Any) -> Any:
    return progress(jobs, desc="simulating", total=len(jobs))


def run(args: SimpleNamespace) -> int:
    from ctd_stats.reports.simulation import build_simulation_report, plot, rows_csv
    from ctd_stats.spec.cascade_spec import load_spec
    from ctd_stats.stats.simulate import make_population
    from ctd_stats.study.simulation_grid import simulate_grid, spec_population

    as_json = getattr(args, "json", False)
    engine = get_engine(getattr(args, "engine", "local"), getattr(args, "address", None))
    if not args.spec:
        ex = EXAMPLE
        grid: dict[str, Any] = dict(
            sizes=[ex.n],
            budgets=[ex.budget],
            procedures=list(ex.procedures),
            delta=ex.delta,
            trials=ex.trials if args.trials is None else args.trials,
            seed=args.seed if args.seed is not None else 0,
        )
        pop = make_population(ex.distribution)
        _estimate(pop, engine, **grid)
        rows = simulate_grid(pop, progress=_progress, engine=engine, **grid)
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
    grid = dict(
        sizes=sim.sizes,
        budgets=spec.simulation_budgets(),
        procedures=sim.procedures,
        delta=spec.calibration.delta,
        trials=sim.trials if args.trials is None else args.trials,
        seed=args.seed if args.seed is not None else sim.seed,
    )
    _estimate(population, engine, **grid)
    rows = simulate_grid(population, progress=_progress, engine=engine, **grid)
    code = _verdict(rows)
    fig = Figure.from_matplotlib(plot(rows))
    directory = Path(args.output) if getattr(args, "output", None) else spec.output_dir()
    rep = build_simulation_report(rows, spec.cascade.name, desc, fig.png)
    formats = spec.outputs.formats
    names = ["simulation.csv", "simulation.json", "simulation.png"]
    names += [f"simulation.{f}" for f in ("md", "html") if f in formats]
    with output_set(
        directory,
        "simulate",
        spec_sha256=spec.sha256,
        force=getattr(args, "force", False),
        names=names,
        may_write=[*names, "simulation.md", "simulation.html"],
    ) as out:
        out.write_text("simulation.csv", rows_csv(rows))
        out.write_json("simulation.json", {"population": desc, "rows": rows})
        out.write_bytes("simulation.png", fig.png)
        if "md" in formats:
            out.write_text("simulation.md", rep.to_markdown())
        if "html" in formats:
            out.write_text("simulation.html", rep.to_html())
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

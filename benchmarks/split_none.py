"""Pareto calibration with and without the opt/ht split, for the budget-only guarantee.

Run: ``python benchmarks/split_none.py [trials]``. For several worlds (including an expert worse than
the probe) and n ∈ {200, 1000}, it draws ``trials`` calibration sets from a 200,000-row population,
calibrates with ``split="opt_ht"`` (front on 30% opt, test on 70% ht) and ``split="none"`` (front and
test on all n rows), and prints the budget-violation frequency with its 95% Clopper–Pearson interval,
the mean true delegation rate and the mean true cascade error of τ̂ (budget 0.3, δ = 0.1).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import numpy as np

from ctd_stats import CascadeData, simulate_cascade_guarantee
from ctd_stats.stats.intervals import clopper_pearson

N_POP = 200_000


def world(
    seed: int, probe_acc: float, expert_acc: float, signal: float, decimals: int = 2
) -> CascadeData:
    """Probe right w.p. ``probe_acc``, expert w.p. ``expert_acc`` (independent); the DV score is
    d = signal·(expert_ok − probe_ok) + N(0, 1), rounded to ``decimals`` (ties)."""
    rng = np.random.default_rng(seed)
    probe_ok = rng.random(N_POP) < probe_acc
    expert_ok = rng.random(N_POP) < expert_acc
    d = signal * (expert_ok.astype(float) - probe_ok.astype(float)) + rng.normal(0, 1, N_POP)
    return CascadeData(np.round(d, decimals), probe_ok, expert_ok)


#: name -> population builder. "harmful" experts are worse than the probe overall.
WORLDS: dict[str, Callable[[], CascadeData]] = {
    "strong expert, informative d": lambda: world(1, 0.75, 0.9, 1.5),
    "strong expert, uninformative d": lambda: world(2, 0.75, 0.9, 0.0),
    "harmful expert (0.6 vs probe 0.75), informative d": lambda: world(3, 0.75, 0.6, 1.5),
    "harmful expert (0.4), uninformative d": lambda: world(4, 0.75, 0.4, 0.0),
    "strong expert, heavy ties (d to 0.5)": lambda: world(5, 0.7, 0.95, 2.0, decimals=0),
}


def measure(trials: int, budget: float = 0.3, delta: float = 0.1) -> list[dict[str, object]]:
    """One row per (world, n, split)."""
    rows: list[dict[str, object]] = []
    for wi, (name, build) in enumerate(WORLDS.items()):
        pop = build()
        for n in (200, 1000):
            for split in ("opt_ht", "none"):
                res = simulate_cascade_guarantee(
                    pop,
                    n=n,
                    budget=budget,
                    delta=delta,
                    trials=trials,
                    split=split,
                    seed=100 * wi + n,
                )
                r = res.budget_result
                lo, hi = clopper_pearson(r.violations, r.trials, alpha=0.05)
                rows.append(
                    {
                        "world": name,
                        "n": n,
                        "split": split,
                        "violations": r.violations,
                        "trials": r.trials,
                        "frequency": r.violation_frequency,
                        "ci95": (float(lo), float(hi)),
                        "mean_rate": r.mean_realized_rate,
                        "mean_error": float(res.realized_errors.mean()),
                        "fail_closed": r.fail_closed,
                    }
                )
    return rows


def main() -> None:
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    t0 = time.perf_counter()
    print(f"budget 0.3, δ = 0.1, {trials} calibration draws per row\n")
    print(
        f"{'world':<52} {'n':>5} {'split':>7} {'viol. freq [95% CI]':>24} {'mean rate':>10} {'mean error':>11}"
    )
    for r in measure(trials):
        lo, hi = r["ci95"]  # type: ignore[misc]
        print(
            f"{r['world']:<52} {r['n']:>5} {r['split']:>7} {r['frequency']:>8.3f} [{lo:.3f}, {hi:.3f}] "
            f"{r['mean_rate']:>10.3f} {r['mean_error']:>11.4f}"
        )
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()

"""Power of the two joint rules (budget AND cascade error) in strong-expert worlds.

Run: ``python benchmarks/joint_power.py [trials]``. Prints, per world and error level ε, how often
each rule certifies a finite τ (n = 1000, budget 0.3, δ = 0.1) and its joint-violation frequency.
The "least-delegation-first" row is the pre-fix ``max_p`` chain, for reference.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from ctd_stats import CascadeData, simulate_cascade_guarantee
from ctd_stats.stats.fwer import FixedSequence
from ctd_stats.stats.pareto import calibrate_cascade


def strong_expert_world(N: int, seed: int, signal: float) -> CascadeData:
    """Probe right 75% of the time, expert 90%; d = signal·(expert_ok − probe_ok) + N(0, 1), rounded (ties)."""
    rng = np.random.default_rng(seed)
    probe_ok = rng.random(N) < 0.75
    expert_ok = rng.random(N) < 0.9
    d = signal * (expert_ok.astype(float) - probe_ok.astype(float)) + rng.normal(0, 1, N)
    return CascadeData(np.round(d, 2), probe_ok, expert_ok)


def old_order_certifies(pop: CascadeData, n: int, trials: int, eps: float, seed: int) -> float:
    """Certification frequency of the pre-fix chain (max(p_B, p_E) tested least delegation first)."""
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(trials):
        cal = calibrate_cascade(
            pop.subset(rng.integers(0, pop.n, n)),
            budget=0.3,
            delta=0.1,
            error_level=eps,
            joint="max_p",
            seed=int(rng.integers(2**31)),
        )
        assert cal.error_pvalues is not None
        p = np.maximum(cal.pvalues, cal.error_pvalues)  # front order = descending τ
        hits += bool(FixedSequence().reject(p, 0.1).any())
    return hits / trials


def main(trials: int = 2000) -> None:
    n = 1000
    print(f"n = {n}, budget = 0.3, delta = 0.1, trials = {trials}")
    print(
        f"{'world':<22}{'eps':>6}  {'rule':<26}{'certified':>10}{'joint viol.':>13}{'mean err':>10}{'mean rate':>10}"
    )
    for signal in (2.0, 1.0):
        pop = strong_expert_world(200_000, 4, signal)
        world = f"strong, signal {signal}"
        for eps in (0.20, 0.15):
            for joint in ("max_p", "bonferroni_split"):
                t0 = time.perf_counter()
                res = simulate_cascade_guarantee(
                    pop,
                    n=n,
                    budget=0.3,
                    delta=0.1,
                    trials=trials,
                    error_level=eps,
                    joint=joint,
                    seed=6,
                )
                r = res.budget_result
                cert = 1 - r.fail_closed / r.trials
                print(
                    f"{world:<22}{eps:>6.2f}  {joint:<26}{cert:>10.4f}{res.joint_violations / trials:>13.4f}"
                    f"{res.realized_errors.mean():>10.4f}{r.mean_realized_rate:>10.4f}"
                    f"   ({time.perf_counter() - t0:.1f} s)"
                )
            old = old_order_certifies(pop, n, min(trials, 500), eps, 6)
            print(f"{world:<22}{eps:>6.2f}  {'max_p least-deleg. first':<26}{old:>10.4f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)

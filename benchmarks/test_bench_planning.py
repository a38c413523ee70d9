"""Planning speed (issue 20): ``certifiable_budget`` by bisection on float bits, target ≤ 1 ms per call.

A sweep of 500 calls with n log-uniform in [1, 10⁶] and several δ and rates; prints the mean and the
slowest call. Before the change a call took ~38 ms on the red-team's sweep and 448 of 17,148 raised.
"""

from __future__ import annotations

import time

import numpy as np

from ctd_stats import certifiable_budget


def _sweep(m: int = 500) -> list[tuple[int, float, float]]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(m):
        n = int(np.exp(rng.uniform(0, np.log(1e6))))
        out.append(
            (n, float(rng.choice([0.01, 0.05, 0.1, 0.5])), float(rng.choice([0.0, 0.01, 0.3])))
        )
    return out


def test_certifiable_budget_speed(benchmark):
    calls = _sweep()

    def run() -> list[float]:
        return [certifiable_budget(n, d, r) for n, d, r in calls]

    benchmark.pedantic(run, rounds=3, iterations=1)
    per_call = benchmark.stats["mean"] / len(calls)
    worst = 0.0
    for n, d, r in calls:
        t0 = time.perf_counter()
        certifiable_budget(n, d, r)
        worst = max(worst, time.perf_counter() - t0)
    print(
        f"\ncertifiable_budget: {per_call * 1e3:.3f} ms per call (mean), slowest {worst * 1e3:.3f} ms"
    )
    assert per_call <= 1e-3

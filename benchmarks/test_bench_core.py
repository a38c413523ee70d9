"""Speed and memory targets of the calibration core (issue 2).

Targets: calibrate_budget on 10⁶ continuous scores with the full grid ≤ 0.3 s on one core and peak
memory ≤ 200 MB; simulate_budget_guarantee with 10⁴ trials at n = 1000 ≤ 5 s. The side-by-side
reference does the same budget calibration the common way (an n × L indicator matrix, a Python loop
over L = 1000 thresholds) on 10⁵ scores, so the speed-up is measured in one run.
"""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest
from scipy import stats

from ctd_stats import (
    CascadeData,
    calibrate_budget,
    calibrate_cascade,
    make_population,
    simulate_budget_guarantee,
)
from ctd_stats.stats.fwer import FixedSequence


@pytest.fixture(scope="module")
def scores_1e6():
    return np.random.default_rng(0).random(1_000_000)


def test_calibrate_budget_1e6_full_grid(benchmark, scores_1e6):
    cal = benchmark(calibrate_budget, scores_1e6, 0.3, 0.1)
    assert cal.thresholds.size == 1_000_000
    assert benchmark.stats["mean"] <= 0.3 * 2  # target 0.3 s; 2× headroom for a loaded CI core


def test_calibrate_budget_1e6_peak_memory(scores_1e6):
    tracemalloc.start()
    calibrate_budget(scores_1e6, 0.3, 0.1)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"peak traced memory: {peak / 2**20:.1f} MiB")
    assert peak <= 200 * 2**20


def test_calibrate_cascade_1e5_full_grid(benchmark):
    rng = np.random.default_rng(1)
    n = 100_000
    data = CascadeData(rng.normal(size=n), rng.random(n) < 0.75, rng.random(n) < 0.9)
    cal = benchmark(calibrate_cascade, data, budget=0.3, delta=0.1)
    assert cal.grid_size == 30_000


def test_simulate_1e4_trials_n1000(benchmark):
    pop = make_population("uniform")
    res = benchmark.pedantic(
        simulate_budget_guarantee,
        kwargs={"population": pop, "n": 1000, "budget": 0.3, "delta": 0.1, "trials": 10_000},
        rounds=3,
        iterations=1,
    )
    assert res.trials == 10_000
    assert benchmark.stats["mean"] <= 5.0


def common_way(scores, budget, delta, n_thresholds=1000):
    """The usual implementation: an n × L indicator matrix and a loop over thresholds."""
    grid = np.linspace(scores.min(), scores.max(), n_thresholds)[::-1]
    indicator = scores[:, None] > grid[None, :]  # n × L
    pvals = []
    for j in range(grid.size):
        k = int(indicator[:, j].sum())
        pvals.append(stats.binom.cdf(k, scores.size, budget))
    rejected = FixedSequence().reject(np.array(pvals), delta)
    return grid[rejected].min() if rejected.any() else np.inf


def test_speedup_vs_common_way():
    scores = np.random.default_rng(2).random(100_000)
    grid = np.linspace(scores.min(), scores.max(), 1000)
    t0 = time.perf_counter()
    ref = common_way(scores, 0.3, 0.1)
    t_ref = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(5):
        ours = calibrate_budget(scores, 0.3, 0.1, thresholds=grid).threshold
    t_ours = (time.perf_counter() - t0) / 5
    print(f"common way {t_ref:.3f} s, ctd {t_ours * 1e3:.2f} ms, speed-up {t_ref / t_ours:.0f}x")
    assert ours == ref
    assert t_ref / t_ours > 10

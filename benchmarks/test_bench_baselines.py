"""Benchmarks of the batch delegation baselines (ctd_stats.stats.baselines).

Sizes from the issue: 10^6 scores, B = 128, and 200 trials' worth of batching (200 random stream
orders of a 5,000-item evaluation split = 10^6 scored positions), plus the paper's full sweep of
21 values of k over those 200 trials. Run with
``python -m pytest benchmarks/test_bench_uncertainty.py --benchmark-only``.
"""

from __future__ import annotations

import numpy as np
import pytest

from ctd_stats.stats.baselines import (
    batch_median_window_delegate,
    batch_topk_delegate,
    calibrated_uncertainty,
    global_oracle_delegate,
    paper_k_grid,
)

N = 1_000_000
B = 128
TRIALS = 200
N_EVAL = N // TRIALS


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    scores = rng.random(N)
    orders = np.argsort(rng.random((TRIALS, N_EVAL)), axis=1)
    return scores, orders


def test_bench_median_window_1e6(benchmark, data):
    scores, _ = data
    mask = benchmark.pedantic(batch_median_window_delegate, args=(scores, 32, B), rounds=3)
    assert mask.sum() == (N // B) * 32 + (32 * (N % B)) // B


def test_bench_topk_1e6(benchmark, data):
    scores, _ = data
    mask = benchmark.pedantic(batch_topk_delegate, args=(scores, 32, B), rounds=3)
    assert mask.sum() == (N // B) * 32 + (32 * (N % B)) // B


def test_bench_median_window_200_trials(benchmark, data):
    scores, orders = data
    mask = benchmark.pedantic(
        batch_median_window_delegate,
        args=(scores[:N_EVAL], 32, B),
        kwargs={"order": orders},
        rounds=3,
    )
    assert mask.shape == (TRIALS, N_EVAL)


def test_bench_topk_200_trials_random_ties(benchmark, data):
    scores, orders = data
    rng = np.random.default_rng(1)
    mask = benchmark.pedantic(
        batch_topk_delegate,
        args=(scores[:N_EVAL], 32, B),
        kwargs={"order": orders, "rng": rng},
        rounds=3,
    )
    assert mask.shape == (TRIALS, N_EVAL)


def test_bench_full_k_sweep_200_trials(benchmark, data):
    """Both top-k baselines for every k of the paper's grid, 200 trials each."""
    scores, orders = data
    p = scores[:N_EVAL]

    def sweep() -> float:
        total = 0.0
        for k in paper_k_grid(B):
            total += batch_median_window_delegate(p, int(k), B, order=orders).mean()
            total += batch_topk_delegate(p, int(k), B, order=orders).mean()
        return total

    benchmark.pedantic(sweep, rounds=1)


def test_bench_calibrated_uncertainty_and_oracle_1e6(benchmark, data):
    scores, _ = data

    def run() -> int:
        u = calibrated_uncertainty(scores, scores[:100_000])
        return int(global_oracle_delegate(u + 0.25, 0.3).sum())

    benchmark.pedantic(run, rounds=3)

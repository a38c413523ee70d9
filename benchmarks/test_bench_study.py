"""Benchmark: the repeated-split study of ``ctd run specs/demo.yaml`` (issue 10: ≤ 5 s of compute).

The study runs, per expert, 200 random calibration/evaluation splits of the shipped demo pool, each
certifying and evaluating 7 methods at 10 budgets (plus the diagnostics: ranking-only curves, batch
top-k at 3 batch sizes), and one bootstrap check of the budget guarantee (200 resampled calibration
sets, all budgets). Reports and figures are not part of it.

Measured on the shared 2-core machine (a background model build on both cores): before the
many-budget sweep (one ``calibrate_cascade`` per budget, split and method; per-budget batch
selections; per-row rank sorts for AUROC; one guarantee simulation per budget) ≈ 18 s for the two
experts; after it ≈ 5–7.5 s under that load. The side-by-side below times one split's certified
arms both ways in the same run.

Run with ``pytest benchmarks/test_bench_study.py -s``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctd_stats.stats.pareto import CascadeData, calibrate_cascade
from ctd_stats.stats.sweep import cascade_thresholds
from ctd_stats.study.runner import StudyInputs, run_study

TARGET_SECONDS = 5.0
TABLE = Path(__file__).resolve().parents[1] / "ctd_stats" / "data" / "demo_scores.parquet"
BUDGETS = [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5]


@pytest.fixture(scope="module")
def demo_inputs() -> list[StudyInputs]:
    f = pd.read_parquet(TABLE)
    f = f[f["split"] == ""]
    experts = [c.split("__", 1)[1] for c in f.columns if c.startswith("dv_score__")]
    return [
        StudyInputs(
            labels=f["label"].to_numpy().astype(bool),
            probe_prob=f["probe_prob"].to_numpy(),
            expert_prob=f[f"expert_prob__{e}"].to_numpy(),
            dv_score=f[f"dv_score__{e}"].to_numpy(),
            group=f["group"].to_numpy().astype(str),
            expert=e,
        )
        for e in experts
    ]


def test_demo_study_200_splits(benchmark, demo_inputs):
    def study() -> list:
        return [
            run_study(i, budgets=BUDGETS, delta=0.1, repeats=200, split="none") for i in demo_inputs
        ]

    results = benchmark.pedantic(study, rounds=1, iterations=1)
    seconds = benchmark.stats.stats.mean
    print(
        f"\nstudy, {len(demo_inputs)} experts × 200 splits × {len(BUDGETS)} budgets: {seconds:.2f} s "
        f"(target ≤ {TARGET_SECONDS:g} s of compute)"
    )
    assert all(r.auroc.shape == (200, 7, len(BUDGETS)) for r in results)


def test_many_budget_sweep_against_one_call_per_budget(demo_inputs):
    inp = demo_inputs[0]
    rng = np.random.default_rng(0)
    perm = rng.permutation(inp.n)
    opt, ht = perm[: inp.n // 6], perm[inp.n // 6 : inp.n // 2]
    o, h = inp.cascade_data(opt, inp.dv_score[opt]), inp.cascade_data(ht, inp.dv_score[ht])
    reps = 50
    t = time.perf_counter()
    for _ in range(reps):
        loop = [calibrate_cascade(opt=o, ht=h, budget=a, delta=0.1).threshold for a in BUDGETS]
    t_loop = (time.perf_counter() - t) / reps
    t = time.perf_counter()
    for _ in range(reps):
        swept = cascade_thresholds(opt=o, ht=h, budgets=BUDGETS, delta=0.1)
    t_sweep = (time.perf_counter() - t) / reps
    print(
        f"\none split, {len(BUDGETS)} budgets: per-budget calls {t_loop * 1e3:.2f} ms, sweep "
        f"{t_sweep * 1e3:.2f} ms ({t_loop / t_sweep:.1f}x)"
    )
    np.testing.assert_array_equal(swept, loop)
    assert isinstance(o, CascadeData)

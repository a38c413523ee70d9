"""Benchmark: budget-only calibration side by side with MAPIE's LTT controller (issue 10 target).

Same scores, the same 1,000-point threshold grid, fixed-sequence testing and Hoeffding–Bentkus
p-values on both sides (MAPIE's ``predicted_positive_fraction`` risk is the delegation rate): the
certified sets must be identical, and the ratio of wall times is printed. Target: ≥ 1,000× at
n = 10⁵. Measured on a shared, loaded 2-core machine: MAPIE 1.6.0 28.5 s, ctd 2.3 ms (hb; 9.7 ms
with the exact binomial p-value), same 637 certified thresholds: ≈ 12,000×.

Run with ``nox -s bench`` (installs mapie) or ``pytest benchmarks/test_bench_mapie.py -s``.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest

from ctd_stats import calibrate_budget

mapie_rc = pytest.importorskip("mapie.risk_control")

N, L, BUDGET, DELTA = 100_000, 1000, 0.3, 0.1


def _best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def test_same_certified_set_and_speed_ratio() -> None:
    rng = np.random.default_rng(0)
    d = rng.beta(2, 5, N)
    y = rng.integers(0, 2, N)
    grid = np.linspace(0, 1, L, endpoint=False)
    ppf = mapie_rc.predicted_positive_fraction
    controller = mapie_rc.BinaryClassificationController(
        lambda x: np.c_[1 - x[:, 0], x[:, 0]],
        ppf,
        target_level=BUDGET,
        confidence_level=1 - DELTA,
        list_predict_params=grid,
        fwer_method="fixed_sequence",
        best_predict_param_choice=ppf,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_mapie = _best_of(lambda: controller.calibrate(d[:, None], y), 1)
    ours = calibrate_budget(d, BUDGET, DELTA, thresholds=grid, pvalue="hb")
    t_ours = _best_of(lambda: calibrate_budget(d, BUDGET, DELTA, thresholds=grid, pvalue="hb"), 5)
    mapie_set = np.sort(np.asarray(controller.valid_predict_params, dtype=np.float64))
    ours_set = np.sort(ours.thresholds[ours.certified])
    print(
        f"\nn = {N}, L = {L}: MAPIE {t_mapie:.3f} s, ctd {t_ours * 1e3:.2f} ms, "
        f"ratio {t_mapie / t_ours:,.0f}x; {ours_set.size} certified thresholds on both sides"
    )
    np.testing.assert_array_equal(mapie_set, ours_set)
    assert t_mapie / t_ours >= 1000

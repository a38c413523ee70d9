"""Each many-budget function equals its one-budget counterpart called once per budget, exactly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctd_stats.stats.baselines import (
    batch_median_window_delegate,
    batch_topk_delegate,
    global_oracle_delegate,
)
from ctd_stats.stats.ltt import budget_threshold, calibrate_budget_batch
from ctd_stats.stats.pareto import CascadeData, calibrate_cascade
from ctd_stats.stats.sweep import (
    batch_median_window_masks,
    batch_topk_masks,
    budget_thresholds,
    cascade_thresholds,
    global_oracle_masks,
)

BUDGETS = np.round(np.arange(0.02, 0.99, 0.04), 2)


def _data(rng: np.random.Generator, n: int, levels: int | None) -> CascadeData:
    d = rng.normal(size=n) if levels is None else rng.integers(0, levels, n).astype(float)
    y = rng.random(n) < 0.5
    return CascadeData(d, rng.random(n) < 0.7 + 0.2 * (d < 0), rng.random(n) < 0.85 + 0 * y)


@pytest.mark.parametrize("split", ["opt_ht", "none"])
@pytest.mark.parametrize("pvalue", ["binomial", "hoeffding", "bentkus", "hb"])
@pytest.mark.parametrize("levels", [None, 7])
def test_cascade_thresholds_equal_calibrate_cascade(split, pvalue, levels):
    rng = np.random.default_rng(11)
    for trial in range(12):
        n_opt, n_ht = int(rng.integers(5, 120)), int(rng.integers(5, 400))
        opt, ht = _data(rng, n_opt, levels), _data(rng, n_ht, levels)
        delta = float(rng.choice([0.05, 0.1, 0.2]))
        got = cascade_thresholds(
            opt=opt, ht=ht, budgets=BUDGETS, delta=delta, pvalue=pvalue, split=split
        )
        want = [
            calibrate_cascade(
                opt=opt, ht=ht, budget=float(a), delta=delta, pvalue=pvalue, split=split
            ).threshold
            for a in BUDGETS
        ]
        np.testing.assert_array_equal(got, want, err_msg=f"trial {trial}")
        # The unsplit form: the same random opt/ht split as calibrate_cascade(data, seed=...).
        data = CascadeData.concat([opt, ht])
        got = cascade_thresholds(
            data, budgets=BUDGETS, delta=delta, pvalue=pvalue, split=split, seed=trial
        )
        want = [
            calibrate_cascade(
                data, budget=float(a), delta=delta, pvalue=pvalue, split=split, seed=trial
            ).threshold
            for a in BUDGETS
        ]
        np.testing.assert_array_equal(got, want, err_msg=f"trial {trial}, data form")
    assert np.isfinite(got).any()
    tiny = cascade_thresholds(
        opt=_data(rng, 20, None), ht=_data(rng, 3, None), budgets=[0.01], delta=0.05
    )
    assert np.isinf(tiny).all()


def test_cascade_thresholds_with_a_user_grid():
    rng = np.random.default_rng(3)
    opt, ht = _data(rng, 80, None), _data(rng, 300, None)
    grid = np.linspace(-2, 2, 17)
    got = cascade_thresholds(opt=opt, ht=ht, budgets=BUDGETS, delta=0.1, thresholds=grid)
    want = [
        calibrate_cascade(opt=opt, ht=ht, budget=float(a), delta=0.1, thresholds=grid).threshold
        for a in BUDGETS
    ]
    np.testing.assert_array_equal(got, want)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(-3, 3), min_size=1, max_size=300),
    st.sampled_from([0.05, 0.1, 0.3]),
    st.sampled_from(["binomial", "hb"]),
)
def test_budget_thresholds_equal_budget_threshold(values, delta, pvalue):
    s = np.asarray(values, dtype=float)
    got = budget_thresholds(s, BUDGETS, delta, pvalue=pvalue)
    want = [budget_threshold(s, float(a), delta, pvalue=pvalue).threshold for a in BUDGETS]
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("partial", ["floor", "nearest", "drop"])
@pytest.mark.parametrize("n,batch_size", [(1, 4), (37, 8), (64, 16), (200, 32), (5, 32)])
def test_batch_masks_equal_the_one_k_functions(partial, n, batch_size):
    rng = np.random.default_rng(n + batch_size)
    scores = rng.integers(0, 5, n).astype(float)  # many ties: position decides
    scores[rng.random(n) < 0.05] = np.inf
    ks = np.arange(batch_size + 1)
    top = batch_topk_masks(scores, ks, batch_size, partial=partial)
    med = batch_median_window_masks(scores, ks, batch_size, partial=partial)
    for j, k in enumerate(ks):
        np.testing.assert_array_equal(
            top[j], batch_topk_delegate(scores, int(k), batch_size, partial=partial)
        )
        np.testing.assert_array_equal(
            med[j], batch_median_window_delegate(scores, int(k), batch_size, partial=partial)
        )


def test_global_oracle_masks_equal_global_oracle_delegate():
    rng = np.random.default_rng(5)
    for n in (1, 10, 333):
        v = np.round(rng.normal(size=n), 1)
        budgets = [0.0, 0.1, 0.3, 0.33, 0.5, 0.9, 1.0]
        masks = global_oracle_masks(v, budgets)
        for j, a in enumerate(budgets):
            np.testing.assert_array_equal(masks[j], global_oracle_delegate(v, a))


def test_bad_inputs_name_the_argument():
    opt = CascadeData(np.arange(5.0), np.ones(5, bool), np.ones(5, bool))
    with pytest.raises(Exception, match=r"budgets\[1\]"):
        cascade_thresholds(opt=opt, ht=opt, budgets=[0.1, 1.5], delta=0.1)
    with pytest.raises(Exception, match="delta"):
        budget_thresholds(np.arange(5.0), [0.1], 0.0)
    with pytest.raises(ValueError, match="k"):
        batch_topk_masks(np.arange(5.0), [9], 4)
    with pytest.raises(ValueError, match="scores"):
        batch_topk_masks(np.array([1.0, np.nan]), [1], 2)
    with pytest.raises(ValueError, match="budgets"):
        global_oracle_masks(np.arange(3.0), [1.2])


def test_budget_thresholds_of_many_calibration_sets_equal_calibrate_budget_batch():
    rng = np.random.default_rng(9)
    S = rng.integers(0, 40, size=(50, 120)).astype(float)
    got = budget_thresholds(S, BUDGETS, 0.1)
    assert got.shape == (50, BUDGETS.size)
    for j, a in enumerate(BUDGETS):
        np.testing.assert_array_equal(got[:, j], calibrate_budget_batch(S, float(a), 0.1))

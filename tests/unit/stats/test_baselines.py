"""Tests of ctd_stats.stats.baselines against brute-force loops, plus property tests."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctd_stats.stats.baselines import (
    batch_median_window_delegate,
    batch_topk_delegate,
    calibrated_uncertainty,
    global_oracle_delegate,
    paper_k_grid,
    uncertainty_score,
)


# ----------------------------------------------------------------------------- brute force
def _partial_k(k: int, r: int, b: int, partial: str) -> int:
    if partial == "drop":
        return 0
    if partial == "floor":
        return math.floor(k * r / b)
    return math.floor(k * r / b + 0.5)


def _batches(n: int, b: int):
    for lo in range(0, n, b):
        yield list(range(lo, min(lo + b, n)))


def brute_topk(scores, k, b, partial="floor", order=None):
    scores = list(scores)
    n = len(scores)
    order = list(range(n)) if order is None else list(order)
    stream = [scores[i] for i in order]
    mask_stream = [False] * n
    for batch in _batches(n, b):
        kb = k if len(batch) == b else _partial_k(k, len(batch), b, partial)
        ranked = sorted(batch, key=lambda pos: (-stream[pos], pos))
        for pos in ranked[:kb]:
            mask_stream[pos] = True
    mask = [False] * n
    for pos, item in enumerate(order):
        mask[item] = mask_stream[pos]
    return np.array(mask, dtype=bool)


def brute_median(p, k, b, partial="floor", order=None):
    p = list(p)
    n = len(p)
    order = list(range(n)) if order is None else list(order)
    stream = [p[i] for i in order]
    mask_stream = [False] * n
    for batch in _batches(n, b):
        size = len(batch)
        kb = k if size == b else _partial_k(k, size, b, partial)
        ranked = sorted(batch, key=lambda pos: (stream[pos], pos))  # ascending, ties by position
        centre = (size - 1) / 2
        ranks = sorted(range(size), key=lambda r: (abs(r - centre), r))[:kb]
        for r in ranks:
            mask_stream[ranked[r]] = True
    mask = [False] * n
    for pos, item in enumerate(order):
        mask[item] = mask_stream[pos]
    return np.array(mask, dtype=bool)


def brute_oracle(v, budget):
    n = len(v)
    m = math.ceil(round(budget * n, 9))
    take = min(m, sum(1 for x in v if x > 0))
    ranked = sorted(range(n), key=lambda i: (-v[i], i))
    mask = np.zeros(n, dtype=bool)
    mask[ranked[:take]] = True
    return mask


CASES = [
    (1, 1, 0),
    (1, 1, 1),
    (10, 3, 1),
    (10, 3, 2),
    (37, 8, 3),
    (64, 16, 16),
    (100, 7, 0),
    (129, 128, 64),
]


# ----------------------------------------------------------------------------- uncertainty scores
def test_uncertainty_score_values():
    u = uncertainty_score([0.0, 0.25, 0.5, 0.9, 1.0])
    np.testing.assert_allclose(u, [-0.5, -0.25, 0.0, -0.4, -0.5])
    assert uncertainty_score(np.full((2, 3), 0.5)).shape == (2, 3)


@pytest.mark.parametrize("bad", [[0.2, float("nan")], [1.2], [-0.1]])
def test_uncertainty_score_rejects_bad(bad):
    with pytest.raises(ValueError, match=r"^p:"):
        uncertainty_score(bad)


def test_calibrated_uncertainty_matches_ecdf():
    rng = np.random.default_rng(1)
    ref = np.round(rng.random(50), 1)  # many ties
    p = np.round(rng.random(40), 1)
    expected = [-abs(np.mean(ref <= x) - 0.5) for x in p]
    np.testing.assert_allclose(calibrated_uncertainty(p, ref), expected)
    # 2-D input is transformed elementwise
    np.testing.assert_allclose(calibrated_uncertainty(p.reshape(4, 10), ref).ravel(), expected)


def test_calibrated_uncertainty_bad_input():
    with pytest.raises(ValueError, match="reference_p"):
        calibrated_uncertainty([0.5], [])
    with pytest.raises(ValueError, match="reference_p"):
        calibrated_uncertainty([0.5], [0.1, float("nan")])
    with pytest.raises(ValueError, match=r"^p:"):
        calibrated_uncertainty([float("nan")], [0.1])


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(-5, 5), min_size=1, max_size=30),
    st.lists(st.floats(-5, 5), min_size=1, max_size=30),
)
def test_calibrated_uncertainty_rank_invariant(p, ref):
    """Only the order matters: a strictly increasing map of both inputs changes nothing."""
    p, ref = np.array(p), np.array(ref)
    u = calibrated_uncertainty(p, ref)
    # x -> 8x is exactly order-preserving in floating point (x -> tanh(x) + 1 is not).
    np.testing.assert_array_equal(calibrated_uncertainty(8 * p, 8 * ref), u)
    assert ((u <= 0) & (u >= -0.5)).all()


# ----------------------------------------------------------------------------- top-k and median window
@pytest.mark.parametrize(("n", "b", "k"), CASES)
@pytest.mark.parametrize("partial", ["floor", "nearest", "drop"])
def test_batch_functions_match_brute_force(n, b, k, partial):
    rng = np.random.default_rng(n * 1000 + b * 10 + k)
    for scores in (rng.random(n), rng.integers(0, 3, n).astype(float)):  # distinct, then many ties
        np.testing.assert_array_equal(
            batch_topk_delegate(scores, k, b, partial=partial), brute_topk(scores, k, b, partial)
        )
        np.testing.assert_array_equal(
            batch_median_window_delegate(scores, k, b, partial=partial),
            brute_median(scores, k, b, partial),
        )


def test_median_window_is_centred():
    p = np.arange(128.0)[::-1]  # ranks reversed relative to position
    m = batch_median_window_delegate(p, 2, 128)
    assert set(p[m]) == {63.0, 64.0}
    m = batch_median_window_delegate(np.arange(5.0), 1, 5)
    assert np.flatnonzero(m).tolist() == [2]


def test_trials_and_orders_match_row_by_row():
    rng = np.random.default_rng(7)
    n, b, k, trials = 53, 8, 3, 6
    scores = rng.integers(0, 4, n).astype(float)
    orders = np.argsort(rng.random((trials, n)), axis=1)
    for fn, brute in (
        (batch_topk_delegate, brute_topk),
        (batch_median_window_delegate, brute_median),
    ):
        got = fn(scores, k, b, order=orders)  # 1-D scores, one stream order per trial
        assert got.shape == (trials, n)
        for t in range(trials):
            np.testing.assert_array_equal(got[t], brute(scores, k, b, order=orders[t]))
        # 2-D scores: each row is its own stream in input order
        many = rng.random((trials, n))
        got2 = fn(many, k, b)
        for t in range(trials):
            np.testing.assert_array_equal(got2[t], brute(many[t], k, b))
        # 2-D scores with a shared 1-D order
        got3 = fn(many, k, b, order=orders[0])
        for t in range(trials):
            np.testing.assert_array_equal(got3[t], brute(many[t], k, b, order=orders[0]))
        # 1-D order keeps a 1-D result
        assert fn(scores, k, b, order=orders[0]).shape == (n,)


def test_k_zero_and_k_equals_batch():
    x = np.random.default_rng(0).random(300)
    for fn in (batch_topk_delegate, batch_median_window_delegate):
        assert not fn(x, 0, 128).any()
        assert fn(x, 128, 128).all()  # the partial batch: floor(128 * 44 / 128) = 44 = all of it


def test_counts_per_batch_and_partial_rules():
    x = np.random.default_rng(3).random(1000)  # 7 full batches of 128 + 104
    for fn in (batch_topk_delegate, batch_median_window_delegate):
        m = fn(x, 10, 128)
        assert m[: 7 * 128].reshape(7, 128).sum(1).tolist() == [10] * 7
        assert m[7 * 128 :].sum() == math.floor(10 * 104 / 128)  # 8
        assert fn(x, 10, 128, partial="nearest")[7 * 128 :].sum() == 8  # 8.125 -> 8
        assert fn(x, 13, 128, partial="nearest")[7 * 128 :].sum() == 11  # 10.56 -> 11
        assert fn(x, 13, 128, partial="floor")[7 * 128 :].sum() == 10
        assert fn(x, 13, 128, partial="drop")[7 * 128 :].sum() == 0
        assert m.mean() <= 10 / 128  # floor never exceeds the nominal rate


def test_random_tie_breaking():
    ties = np.zeros(64)
    masks = {
        tuple(np.flatnonzero(batch_topk_delegate(ties, 4, 16, rng=np.random.default_rng(s))))
        for s in range(5)
    }
    assert len(masks) > 1  # different seeds pick different tied items
    for m in masks:
        assert np.bincount(np.array(m) // 16, minlength=4).tolist() == [4, 4, 4, 4]
    distinct = np.random.default_rng(1).random(100)
    for fn in (batch_topk_delegate, batch_median_window_delegate):
        np.testing.assert_array_equal(
            fn(distinct, 5, 16, rng=np.random.default_rng(0)), fn(distinct, 5, 16)
        )


def test_infinite_scores_are_ordered():
    s = np.array([0.0, np.inf, -np.inf, 1.0])
    np.testing.assert_array_equal(batch_topk_delegate(s, 2, 4), [False, True, False, True])


@pytest.mark.parametrize("fn", [batch_topk_delegate, batch_median_window_delegate])
def test_batch_bad_input(fn):
    arg = "scores" if fn is batch_topk_delegate else "p"
    with pytest.raises(ValueError, match=rf"^{arg}:"):
        fn([0.1, float("nan")], 1, 2)
    with pytest.raises(ValueError, match=r"^k:"):
        fn([0.1, 0.2], 3, 2)
    with pytest.raises(ValueError, match=r"^k:"):
        fn([0.1, 0.2], -1, 2)
    with pytest.raises(ValueError, match=r"^k:"):
        fn([0.1, 0.2], 1.5, 2)
    with pytest.raises(ValueError, match=r"^batch_size:"):
        fn([0.1, 0.2], 0, 0)
    with pytest.raises(ValueError, match=r"^batch_size:"):
        fn([0.1, 0.2], 0, True)
    with pytest.raises(ValueError, match=r"^partial:"):
        fn([0.1, 0.2], 1, 2, partial="ceil")
    with pytest.raises(ValueError, match=r"^order:"):
        fn([0.1, 0.2, 0.3], 1, 2, order=[0, 0, 1])
    with pytest.raises(ValueError, match=r"^order:"):
        fn([0.1, 0.2, 0.3], 1, 2, order=[0, 1])
    with pytest.raises(ValueError, match=r"^order:"):
        fn(np.zeros((3, 4)), 1, 2, order=np.tile(np.arange(4), (2, 1)))
    with pytest.raises(ValueError, match=rf"^{arg}:"):
        fn(np.zeros((2, 2, 2)), 1, 2)


def test_empty_stream():
    assert batch_topk_delegate(np.array([]), 1, 4).shape == (0,)
    assert batch_median_window_delegate(np.zeros((3, 0)), 1, 4).shape == (3, 0)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 5), min_size=1, max_size=60),
    st.integers(1, 12),
    st.data(),
)
def test_property_counts_nested_and_brute(values, b, data):
    k = data.draw(st.integers(0, b))
    x = np.array(values, dtype=float)
    n = x.size
    expected = (n // b) * k + math.floor(k * (n % b) / b)
    for fn, brute in (
        (batch_topk_delegate, brute_topk),
        (batch_median_window_delegate, brute_median),
    ):
        m = fn(x, k, b)
        assert m.sum() == expected
        np.testing.assert_array_equal(m, brute(x, k, b))
        if k < b:  # growing k only adds items
            assert not (m & ~fn(x, k + 1, b)).any()


# ----------------------------------------------------------------------------- global oracle
def test_global_oracle_matches_brute_force():
    rng = np.random.default_rng(5)
    for _ in range(20):
        v = np.round(rng.normal(size=37), 1)
        for budget in (0.0, 0.05, 0.3, 0.5, 1.0):
            np.testing.assert_array_equal(
                global_oracle_delegate(v, budget), brute_oracle(v, budget)
            )
    v2 = rng.normal(size=(4, 25))
    got = global_oracle_delegate(v2, 0.2)
    for row in range(4):
        np.testing.assert_array_equal(got[row], brute_oracle(v2[row], 0.2))


def test_global_oracle_ceiling_and_cap():
    v = np.arange(10.0) + 1  # all positive
    assert global_oracle_delegate(v, 0.3).sum() == 3  # 0.3 * 10 is 3.0000000000000004
    assert global_oracle_delegate(v, 0.31).sum() == 4
    v = np.array([0.5, -0.2, 0.0, 0.1, -1.0])
    assert global_oracle_delegate(v, 1.0).tolist() == [True, False, False, True, False]


def test_global_oracle_bad_input():
    with pytest.raises(ValueError, match=r"^budget:"):
        global_oracle_delegate([0.1], 1.5)
    with pytest.raises(ValueError, match=r"^budget:"):
        global_oracle_delegate([0.1], float("nan"))
    with pytest.raises(ValueError, match=r"^v:"):
        global_oracle_delegate([float("nan")], 0.5)


def test_paper_k_grid():
    g = paper_k_grid(128)
    assert g[0] == 0 and g[-1] == 128 and len(g) == 21
    assert paper_k_grid(10).tolist() == list(range(11))
    with pytest.raises(ValueError, match="batch_size"):
        paper_k_grid(0)


def test_module_does_not_import_torch():
    code = "import sys, ctd_stats.stats.baselines; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0

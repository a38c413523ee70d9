"""Property test: the full-grid fixed-sequence boundary window equals the full chain at its edges.

``calibrate_budget`` with the full grid, fixed-sequence testing and more than 2 × ``BOUNDARY_WINDOW``
distinct scores returns only the hypotheses around the boundary (built from the first-occurrence
mask, ``_last_true`` / ``_first_true``). Here ``BOUNDARY_WINDOW`` is made small so that hypothesis can
explore small arrays with heavy ties, nothing certified and the whole chain certified, and the
window is compared with the full chain computed directly: every distinct score, its count
K(τ) = #{x > τ}, every p-value and the fixed-sequence rejections.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctd_stats import calibrate_budget
from ctd_stats.stats import ltt
from ctd_stats.stats.fwer import FixedSequence
from ctd_stats.stats.pvalues import pvalue_function

PVALUES = ("binomial", "hoeffding", "bentkus", "hb")


@st.composite
def cases(draw):
    """(scores, window, budget, delta, pvalue): more than 2 × window distinct scores, with ties."""
    window = draw(st.integers(3, 20))
    m = draw(st.integers(2 * window + 1, 2 * window + 30))  # distinct scores
    # multiplicities: mostly small, with heavy ties allowed anywhere (top and bottom included)
    mult = draw(st.lists(st.one_of(st.integers(1, 3), st.integers(1, 200)), min_size=m, max_size=m))
    values = np.arange(m, dtype=np.float64) * draw(st.sampled_from([1.0, 0.1, 1e-3]))
    x = np.repeat(values, mult)
    x = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).permutation(x)
    budget = draw(
        st.one_of(
            st.sampled_from([1e-6, 0.001, 0.05, 0.2, 0.5, 0.9, 0.99, 0.999999]),
            st.floats(0.001, 0.999),
        )
    )
    delta = draw(st.sampled_from([0.001, 0.01, 0.05, 0.1, 0.3, 0.5, 0.9]))
    pvalue = draw(st.sampled_from(PVALUES))
    return x, window, budget, delta, pvalue


def full_chain(x, budget, delta, pvalue):
    """Every distinct score (descending), its count, p-value and fixed-sequence decision."""
    grid = np.unique(x)[::-1]
    counts = (x.size - np.searchsorted(np.sort(x), grid, side="right")).astype(np.int64)
    p_all = pvalue_function(pvalue)(counts, x.size, budget)
    rej_all = FixedSequence().reject(p_all, delta)
    return grid, counts, p_all, rej_all


def check_window(x, window, budget, delta, pvalue, monkeypatch):
    monkeypatch.setattr(ltt, "BOUNDARY_WINDOW", window)
    grid, counts, p_all, rej_all = full_chain(x, budget, delta, pvalue)
    assert grid.size > 2 * window
    cal = calibrate_budget(x, budget, delta, pvalue=pvalue)
    assert cal.extras["family"] == "boundary_window"
    assert cal.extras["grid_size"] == grid.size
    cut = int(rej_all.sum())
    lo, hi = max(0, cut - window), min(grid.size, cut + window)
    np.testing.assert_array_equal(cal.thresholds, grid[lo:hi])
    np.testing.assert_array_equal(cal.pvalues, p_all[lo:hi])
    np.testing.assert_array_equal(cal.certified, rej_all[lo:hi])
    np.testing.assert_array_equal(cal.empirical_rates, counts[lo:hi] / x.size)
    assert cal.threshold == (grid[rej_all].min() if rej_all.any() else math.inf)
    assert (cal.reason is None) == bool(rej_all.any())
    # k* is the largest certified count: every count ≤ k* is certified, none above
    kstar = cal.extras["k_star"]
    np.testing.assert_array_equal(rej_all, counts <= kstar)
    return cut


@settings(max_examples=400, deadline=None, derandomize=True)
@given(cases())
def test_boundary_window_is_the_full_chain_around_the_boundary(case):
    x, window, budget, delta, pvalue = case
    with pytest.MonkeyPatch.context() as mp:
        check_window(x, window, budget, delta, pvalue, mp)


@pytest.mark.parametrize("pvalue", PVALUES)
@pytest.mark.parametrize(
    ("mult_top", "mult_bottom", "budget", "delta", "expect"),
    [
        (1, 1, 1e-6, 0.05, "none"),  # nothing certified: k* = -1, the window is the chain's start
        (1, 500, 0.9, 0.5, "all"),  # a heavy tie at the bottom: the whole chain is certified
        (300, 1, 0.2, 0.1, "one"),  # a heavy tie at the top: only τ = the top score (K = 0)
        (1, 1, 0.5, 0.1, "middle"),
    ],
)
def test_boundary_window_edges(pvalue, mult_top, mult_bottom, budget, delta, expect, monkeypatch):
    """Pinned edges: nothing certified, everything certified, ties at either end."""
    window = 5
    m = 40
    mult = np.ones(m, dtype=np.int64)
    mult[-1], mult[0] = mult_top, mult_bottom  # values ascending: the last is the top score
    x = np.repeat(np.arange(m, dtype=np.float64), mult)
    cut = check_window(x, window, budget, delta, pvalue, monkeypatch)
    if expect == "none":
        assert cut == 0
    elif expect == "one":
        assert cut == 1
    elif expect == "all":
        assert cut == m
    else:
        assert 0 < cut < m

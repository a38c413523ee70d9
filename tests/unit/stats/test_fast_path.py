"""The O(n) budget-only path and the exact closed forms for continuous scores (issue 10)."""

import numpy as np
import pytest
from scipy import special, stats

from ctd_stats import (
    budget_threshold,
    calibrate_budget,
    certified_count,
    expected_rate,
    make_population,
    simulate_budget_guarantee,
    violation_probability,
)
from tests._support.tolerance import binomial_acceptance


@pytest.mark.parametrize("pvalue", ["binomial", "hoeffding", "bentkus", "hb"])
def test_fast_path_matches_the_full_grid(pvalue):
    """Same τ̂ as calibrate_budget (fixed-sequence, full grid), with heavy ties and tiny n."""
    rng = np.random.default_rng(7)
    for _ in range(150):
        n = int(rng.integers(1, 300))
        x = np.round(rng.normal(size=n), int(rng.integers(0, 3)))
        b, d = float(rng.uniform(0.02, 0.6)), float(rng.choice([0.01, 0.05, 0.1, 0.3]))
        full = calibrate_budget(x, b, d, pvalue=pvalue)
        fast = budget_threshold(x, b, d, pvalue=pvalue)
        assert fast.threshold == full.threshold
        assert (fast.reason is None) == full.is_certified
        for t, p, c in zip(fast.thresholds, fast.pvalues, fast.certified, strict=True):
            i = int(np.flatnonzero(full.thresholds == t)[0])
            assert (full.pvalues[i], bool(full.certified[i])) == (p, bool(c))


def test_certified_count_is_the_binomial_quantile_boundary():
    for n in (1, 5, 20, 137, 1000):
        for b in (0.01, 0.1, 0.3, 0.7):
            for d in (0.01, 0.1, 0.5):
                k = certified_count(n, b, d)
                cdf = special.bdtr(np.arange(n + 1), n, b)
                assert k == int(np.searchsorted(cdf, d, side="right")) - 1


def test_exact_forms_issue_example():
    assert expected_rate(20, 0.3, 0.1) == pytest.approx(3 / 21)
    assert violation_probability(20, 0.3, 0.1) == pytest.approx(0.0355, abs=5e-5)
    assert (
        violation_probability(5, 0.3, 0.1) == 0.0 and expected_rate(5, 0.3, 0.1) == 0.0
    )  # fails closed


@pytest.mark.parametrize(("n", "budget"), [(20, 0.3), (200, 0.1), (1000, 0.3)])
def test_exact_forms_match_simulation(n, budget):
    """Simulated violation frequency and mean rate agree with the closed forms (binomial tolerance)."""
    trials, delta = 20_000, 0.1
    res = simulate_budget_guarantee(
        make_population("normal"), n=n, budget=budget, delta=delta, trials=trials, seed=3
    )
    p = violation_probability(n, budget, delta)
    lo, hi = binomial_acceptance(trials, p)  # 99.9% two-sided acceptance region
    assert lo <= res.violations <= hi, (res.violations, p * trials)
    k = certified_count(n, budget, delta)
    sd = np.sqrt(stats.beta.var(k + 1, n - k) / trials)
    assert abs(res.mean_realized_rate - expected_rate(n, budget, delta)) < 4 * sd


def test_cli_budget_only_uses_the_selection_path_and_equals_the_sorted_path(tmp_path, table_tools):
    """`ctd calibrate` with `pareto: false` (issue 20): O(n) selection, same τ̂ as the sorted full grid."""
    from ctd_stats.certificate.checks import load_certificate
    from ctd_stats.cli.entry import main
    from ctd_stats.spec.cascade_spec import load_spec

    score_frame, write_frame = table_tools
    frame = score_frame(3000)
    frame["dv_score"] = frame["dv_score"].round(2)  # ties
    write_frame(frame, tmp_path / "t.parquet")
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "data: {table: t.parquet}\ncalibration: {budget: [0.1, 0.3], pareto: false}\n"
        "outputs: {directory: out, formats: [json, md]}\n"
    )
    assert main(["calibrate", str(spec)]) == 0
    cert = load_certificate(tmp_path / "out" / "certificate.json")
    table = load_spec(spec).load_table()
    ht = table.expert().dv_score[table.mask("ht")]
    for r in cert.results:
        sorted_path = calibrate_budget(ht, r.budget, r.delta)
        assert r.threshold == sorted_path.threshold
        assert r.tested_scope == "fixed_sequence_boundary" and len(r.tested) <= 2
    assert "p-value" in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.parametrize("pvalue", ["binomial", "hb"])
def test_full_grid_computes_pvalues_only_around_the_boundary(pvalue):
    """Issue 20: full grid + fixed sequence over > 2,000 distinct scores: the same τ̂ and decisions as
    testing every hypothesis, with p-values only for the 1,000 on each side of the boundary."""
    from ctd_stats.stats.fwer import FixedSequence
    from ctd_stats.stats.ltt import BOUNDARY_WINDOW
    from ctd_stats.stats.pvalues import pvalue_function

    x = np.round(np.random.default_rng(5).normal(size=60_000), 3)  # ties, ~6,000 distinct
    cal = calibrate_budget(x, 0.2, 0.1, pvalue=pvalue)
    grid = np.unique(x)[::-1]
    counts = (x.size - np.searchsorted(np.sort(x), grid, side="right")).astype(np.int64)
    p_all = pvalue_function(pvalue)(counts, x.size, 0.2)
    rej_all = FixedSequence().reject(p_all, 0.1)
    assert (
        cal.threshold
        == grid[rej_all].min()
        == budget_threshold(x, 0.2, 0.1, pvalue=pvalue).threshold
    )
    assert cal.extras["family"] == "boundary_window" and cal.extras["grid_size"] == grid.size
    assert cal.thresholds.size == 2 * BOUNDARY_WINDOW
    lo = int(np.flatnonzero(grid == cal.thresholds[0])[0])
    window = slice(lo, lo + cal.thresholds.size)
    np.testing.assert_array_equal(cal.pvalues, p_all[window])
    np.testing.assert_array_equal(cal.certified, rej_all[window])
    assert cal.certified.any() and not cal.certified.all()


@pytest.mark.parametrize(
    ("decimals", "budget", "delta"),
    [
        (3, 0.2, 0.1),  # ties, boundary in the middle
        (2, 0.3, 0.1),  # a wider spread, boundary in the middle
        (6, 1e-5, 0.1),  # nothing certified: the window is the chain's start
        (6, 0.002, 0.1),  # boundary within the first BOUNDARY_WINDOW hypotheses
        (6, 0.9995, 0.1),  # boundary within the last BOUNDARY_WINDOW hypotheses
        (6, 0.5, 0.01),
    ],
)
def test_boundary_window_equals_the_full_chain_at_its_edges(decimals, budget, delta):
    """The window is built from the first-occurrence mask without the chain-length arrays: each
    returned hypothesis (threshold, p-value, decision, rate) equals the full chain's at that
    position, the window is the chain's slice around the boundary, and τ̂ is the full chain's."""
    from ctd_stats.stats.fwer import FixedSequence
    from ctd_stats.stats.ltt import BOUNDARY_WINDOW
    from ctd_stats.stats.pvalues import pvalue_function

    rng = np.random.default_rng(11)
    x = np.round(rng.normal(size=40_000) * (1 if decimals > 2 else 30), decimals)
    grid = np.unique(x)[::-1]
    if grid.size <= 2 * BOUNDARY_WINDOW:
        pytest.skip("too few distinct values for the window")
    cal = calibrate_budget(x, budget, delta)
    counts = (x.size - np.searchsorted(np.sort(x), grid, side="right")).astype(np.int64)
    p_all = pvalue_function("binomial")(counts, x.size, budget)
    rej_all = FixedSequence().reject(p_all, delta)
    cut = int(rej_all.sum())
    lo, hi = max(0, cut - BOUNDARY_WINDOW), min(grid.size, cut + BOUNDARY_WINDOW)
    assert cal.extras == {
        "family": "boundary_window",
        "grid_size": grid.size,
        "k_star": cal.extras["k_star"],
    }
    np.testing.assert_array_equal(cal.thresholds, grid[lo:hi])
    np.testing.assert_array_equal(cal.pvalues, p_all[lo:hi])
    np.testing.assert_array_equal(cal.certified, rej_all[lo:hi])
    np.testing.assert_array_equal(cal.empirical_rates, counts[lo:hi] / x.size)
    assert cal.threshold == (grid[rej_all].min() if rej_all.any() else np.inf)
    assert cal.threshold == budget_threshold(x, budget, delta).threshold

"""Exact detection delay of the budget monitor (issue 20: the docs' table was 22% off at 1.5b).

The exact first-passage distribution is checked against simulated streams with an exact binomial
tolerance, and against Ville's inequality at a compliant rate.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from ctd_stats.audit.monitor import MixtureMartingale, default_prior, detection_prior
from ctd_stats.audit.monitor_delay import alarm_boundary, delay_distribution

B, ALPHA = 0.1, 0.05


def test_boundary_is_the_smallest_alarming_count():
    mart = MixtureMartingale(B, ALPHA, default_prior(B))
    c = alarm_boundary(mart, 300)
    t = np.arange(1, 301)
    ok = c <= t
    assert (mart.log_evidence(t[ok], c[ok]) >= mart.log_threshold).all()
    assert (mart.log_evidence(t[ok], c[ok] - 1) < mart.log_threshold).all()


def test_exact_distribution_matches_simulated_streams():
    prior, rate, horizon, streams = detection_prior(B, 2.0), 0.2, 3_000, 3_000
    dist = delay_distribution(B, ALPHA, prior, rate, horizon)
    mart = MixtureMartingale(B, ALPHA, prior)
    rng = np.random.default_rng(4)
    t = np.arange(1, horizon + 1)
    first = np.array(
        [mart.first_alarm(t, np.cumsum(rng.random(horizon) < rate)) + 1 for _ in range(streams)]
    )
    cdf = np.cumsum(dist.pmf)
    for q in (0.25, 0.5, 0.9):
        tq = int(dist.quantile(q))
        hits = int(np.count_nonzero((first >= 1) & (first <= tq)))
        assert stats.binomtest(hits, streams, float(cdf[tq - 1])).pvalue > 1e-3, (
            q,
            hits,
            cdf[tq - 1],
        )


def test_false_alarm_within_alpha_and_the_issue_number_at_15b():
    fa = delay_distribution(B, ALPHA, default_prior(B), B, 5_000)
    assert fa.alarm_probability <= ALPHA  # Ville: at most α over any horizon
    at15 = delay_distribution(B, ALPHA, default_prior(B), 1.5 * B, 40_000)
    assert at15.quantile(0.5) == 244  # the docs said 297 (100 streams a cell)

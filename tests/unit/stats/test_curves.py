import numpy as np

from ctd_stats.stats.curves import SortedScores, cascade_error_counts, delegation_counts


def test_counts_and_errors_match_loops_with_ties():
    rng = np.random.default_rng(2)
    for _ in range(20):
        n = int(rng.integers(1, 200))
        d = rng.integers(0, 8, size=n).astype(float)
        pw = rng.random(n) < 0.3
        ew = rng.random(n) < 0.2
        t = np.concatenate([rng.uniform(-1, 9, 10), d[:5]])
        ss = SortedScores.from_scores(d)
        k = ss.delegation_counts(t)
        e = cascade_error_counts(ss, pw, ew, k)
        for j, tau in enumerate(t):
            deleg = d > tau
            assert k[j] == deleg.sum()
            assert e[j] == np.sum(np.where(deleg, ew, pw))
        np.testing.assert_array_equal(delegation_counts(d, t), k)
        np.testing.assert_array_equal(ss.distinct_values(), np.unique(d)[::-1])

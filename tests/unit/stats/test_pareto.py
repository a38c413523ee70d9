import math

import numpy as np
import pytest
from scipy import stats

from ctd_stats import CascadeData, calibrate_cascade, pareto_front
from ctd_stats.errors import CTDInputError


def synthetic_cascade(n, rng, expert_acc=0.9, probe_acc=0.75, signal=1.0):
    y = rng.random(n) < 0.4
    probe_ok = rng.random(n) < probe_acc
    expert_ok = rng.random(n) < expert_acc
    gain = expert_ok.astype(float) - probe_ok.astype(float)
    d = signal * gain + rng.normal(0, 1, n)
    return CascadeData(d, probe_ok, expert_ok), y


def brute_force_cascade(opt, ht, budget, delta):
    grid = sorted(set(opt.dv_score.tolist()), reverse=True)
    pts = []
    for t in grid:
        dl = opt.dv_score > t
        err = np.sum(np.where(dl, ~opt.expert_correct, ~opt.probe_correct))
        pts.append((t, int(dl.sum()), int(err)))
    front = []
    for i, (t, k, e) in enumerate(pts):
        dominated = any((k2 <= k and e2 <= e and (k2 < k or e2 < e)) for _, k2, e2 in pts)
        dup = any(k2 == k and e2 == e for _, k2, e2 in pts[:i])
        if not dominated and not dup:
            front.append((t, k, e))
    certified = []
    for t, _, e in front:
        kh = int(np.sum(ht.dv_score > t))
        if stats.binom.cdf(kh, ht.n, budget) <= delta:
            certified.append((t, e))
        else:
            break
    if not certified:
        return math.inf, front
    best = min(certified, key=lambda te: (te[1], -te[0]))
    return best[0], front


def test_matches_brute_force_with_ties():
    rng = np.random.default_rng(1)
    for trial in range(12):
        data, _ = synthetic_cascade(int(rng.integers(40, 400)), rng)
        if trial % 2:
            data = CascadeData(np.round(data.dv_score), data.probe_correct, data.expert_correct)
        opt, ht = data.split(0.3, seed=trial)
        budget = float(rng.uniform(0.1, 0.5))
        cal = calibrate_cascade(opt=opt, ht=ht, budget=budget, delta=0.1)
        tau, front = brute_force_cascade(opt, ht, budget, 0.1)
        assert cal.threshold == tau
        np.testing.assert_allclose(cal.front_thresholds, [f[0] for f in front])
        np.testing.assert_allclose(cal.front_errors * opt.n, [f[2] for f in front])


def test_pareto_front_drops_harmful_delegation():
    # delegating more never lowers error after the 2nd point: the rest is dominated
    counts = np.array([0, 1, 2, 3, 4, 5])
    errors = np.array([10, 8, 6, 6, 7, 5])
    np.testing.assert_array_equal(pareto_front(counts, errors), [0, 1, 2, 5])
    with pytest.raises(CTDInputError):
        pareto_front(np.array([2, 1]), np.array([0, 0]))


def test_weak_expert_is_not_overused():
    """An expert that is always worse than the probe: CTD certifies but delegates (almost) nothing."""
    rng = np.random.default_rng(4)
    n = 2000
    d = rng.normal(size=n)
    cal = calibrate_cascade(
        CascadeData(d, np.ones(n, bool), rng.random(n) < 0.5), budget=0.4, delta=0.1, seed=1
    )
    assert cal.is_certified
    assert np.mean(d > cal.threshold) < 0.01


def test_joint_error_guarantee_paths():
    rng = np.random.default_rng(8)
    data, _ = synthetic_cascade(3000, rng, signal=2.0)
    for joint in ("max_p", "bonferroni_split"):
        cal = calibrate_cascade(data, budget=0.3, delta=0.1, error_level=0.2, joint=joint)
        d = cal.to_dict()
        assert d["joint"] == joint and d["error_level"] == 0.2
        if cal.is_certified:
            i = int(np.flatnonzero(cal.thresholds == cal.threshold)[0])
            assert cal.certified[i]
            assert "AND" in cal.guarantee
    # impossible error level: fail closed
    cal = calibrate_cascade(data, budget=0.3, delta=0.1, error_level=0.01)
    assert math.isinf(cal.threshold) and "joint" in cal.reason


def test_bad_inputs():
    rng = np.random.default_rng(0)
    data, y = synthetic_cascade(100, rng)
    with pytest.raises(ValueError, match="expert_prob has length"):
        CascadeData.from_probabilities(data.dv_score, y, np.full(100, 0.3), np.full(99, 0.3))
    with pytest.raises(ValueError, match="probe_prob must lie in"):
        CascadeData.from_probabilities(data.dv_score, y, np.full(100, 1.3), np.full(100, 0.3))
    with pytest.raises(ValueError, match="dv_score contains"):
        CascadeData(np.full(3, np.nan), np.ones(3, bool), np.ones(3, bool))
    with pytest.raises(ValueError, match="either data"):
        calibrate_cascade(data, opt=data, ht=data, budget=0.3, delta=0.1)
    with pytest.raises(ValueError, match="joint must be"):
        calibrate_cascade(data, budget=0.3, delta=0.1, error_level=0.2, joint="bretz")
    with pytest.raises(ValueError, match="too small"):
        calibrate_cascade(data.subset(np.array([0])), budget=0.3, delta=0.1)
    with pytest.raises(ValueError, match="labels"):
        CascadeData.from_probabilities(
            data.dv_score, np.full(100, 2), np.full(100, 0.3), np.full(100, 0.3)
        )


def strong_expert_data(n, seed):
    """Probe right 75%, expert 90%; the DV score tracks the expert's advantage (the issue-10 world)."""
    rng = np.random.default_rng(seed)
    probe_ok = rng.random(n) < 0.75
    expert_ok = rng.random(n) < 0.9
    d = 2.0 * (expert_ok.astype(float) - probe_ok.astype(float)) + rng.normal(0, 1, n)
    return CascadeData(np.round(d, 2), probe_ok, expert_ok)


@pytest.mark.parametrize("seed", range(5))
def test_max_p_certifies_when_the_error_target_needs_the_expert(seed):
    """Issue 10 reproducer: error_level 0.2 < the probe's own error 0.25. The least-delegation-first
    max-p chain stopped at step one (p ≈ 0.95) and failed closed; ordered by opt p-values it certifies,
    like bonferroni_split does on the same data."""
    data = strong_expert_data(1000, seed)
    for joint in ("max_p", "bonferroni_split"):
        cal = calibrate_cascade(data, budget=0.3, delta=0.1, error_level=0.2, joint=joint)
        assert cal.is_certified, (joint, cal.reason)
        i = int(np.flatnonzero(cal.thresholds == cal.threshold)[0])
        assert cal.pvalues[i] <= 0.1
        if joint == "max_p":
            assert cal.error_pvalues is not None and cal.error_pvalues[i] <= 0.1
            # the chain really is fixed-sequence along test_order at level δ
            p = np.maximum(cal.pvalues, cal.error_pvalues)[cal.test_order]
            np.testing.assert_array_equal(
                cal.certified[cal.test_order], np.cumprod(p <= 0.1).astype(bool)
            )


def test_max_p_order_depends_on_opt_only():
    data = strong_expert_data(1000, 11)
    opt, ht = data.split(0.3, seed=0)
    _, ht2 = strong_expert_data(1000, 12).split(0.3, seed=0)
    a = calibrate_cascade(opt=opt, ht=ht, budget=0.3, delta=0.1, error_level=0.2, joint="max_p")
    b = calibrate_cascade(opt=opt, ht=ht2, budget=0.3, delta=0.1, error_level=0.2, joint="max_p")
    np.testing.assert_array_equal(a.test_order, b.test_order)
    np.testing.assert_array_equal(np.sort(a.test_order), np.arange(a.thresholds.size))
    # first tested: the smallest max p-value on opt
    from ctd_stats.stats.pvalues import binomial_pvalue

    p_opt = np.maximum(
        binomial_pvalue(np.round(a.front_rates * opt.n).astype(int), opt.n, 0.3),
        binomial_pvalue(np.round(a.front_errors * opt.n).astype(int), opt.n, 0.2),
    )
    assert np.all(np.diff(p_opt[a.test_order]) >= 0)
    # to_dict lists the family in test order
    rows = a.to_dict()["tested"]
    assert [r["threshold"] for r in rows] == [float(a.thresholds[i]) for i in a.test_order]


def test_default_joint_rule_is_bonferroni_split():
    cal = calibrate_cascade(strong_expert_data(600, 3), budget=0.3, delta=0.1, error_level=0.2)
    assert cal.joint == "bonferroni_split"


def test_procedure_is_not_silently_ignored_with_error_level():
    data = strong_expert_data(400, 2)
    with pytest.raises(CTDInputError, match="procedure"):
        calibrate_cascade(data, budget=0.3, delta=0.1, error_level=0.2, procedure="holm")


def test_infinite_user_threshold_gets_a_reason():
    data = strong_expert_data(400, 2)
    cal = calibrate_cascade(data, budget=0.3, delta=0.1, thresholds=[np.inf])
    assert not cal.is_certified and cal.reason


def test_bonferroni_split_failure_reason_names_both_chains():
    """Before: 'smallest p-value 1.5e-13, none small enough at delta = 0.1' — the budget p-value
    was small enough for its chain (at δ/2); the error chain was the one that rejected nothing."""
    from ctd_stats.stats.fwer import FixedSequence

    rng = np.random.default_rng(8)
    data, _ = synthetic_cascade(3000, rng, signal=2.0)
    cal = calibrate_cascade(data, budget=0.3, delta=0.1, error_level=0.01, joint="bonferroni_split")
    assert math.isinf(cal.threshold) and not cal.certified.any()
    n_b = int(
        FixedSequence().reject(cal.pvalues, 0.05).sum()
    )  # budget chain: least delegation first
    order_e = np.lexsort((np.arange(cal.thresholds.size), cal.front_errors))
    n_e = int(FixedSequence().reject(cal.error_pvalues[order_e], 0.05).sum())
    assert n_b > 0 and n_e == 0
    assert "none small enough" not in cal.reason
    assert (
        f"each chain at delta/2 = 0.05: the budget chain passed {n_b} and the error chain 0 of "
        f"{cal.thresholds.size} thresholds, none passed both"
    ) in cal.reason
    assert f"smallest error p-value {cal.error_pvalues.min():.3g}" in cal.reason

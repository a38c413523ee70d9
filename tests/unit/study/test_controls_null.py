"""The null that can fail (ctd_stats.study.controls): it holds its level on tables drawn from H0 and
rejects a planted gain. Fixed seeds; the size check uses the exact binomial tolerance."""

from __future__ import annotations

import numpy as np

from ctd_stats.study.control_inputs import ControlColumns, DevRows
from ctd_stats.study.controls import compute_controls, platt_fit
from ctd_stats.study.runner import StudyInputs
from tests._support.tolerance import binomial_tolerance
from tests.unit.study.synthetic import pool

KW = dict(budgets=[0.3], delta=0.1, repeats=10, seed=0, split="none", null_draws=40)
LEVEL = 0.05


def _h0_rows(rng: np.random.Generator, n: int, acc: float = 0.85) -> tuple[np.ndarray, ...]:
    """Labels from the (calibrated) probe's own probability; an expert right with probability
    ``acc`` everywhere; a DV score that is a function of p plus noise (it knows nothing else)."""
    p = 1 / (1 + np.exp(-2.0 * rng.normal(size=n)))
    y = rng.random(n) < p
    says = np.where(rng.random(n) < acc, y, ~y)
    b = np.where(says, acc, 1 - acc)
    d = p * (1 - p) + 0.1 * rng.normal(size=n)
    return y, p, b, d


def _h0_table(seed: int, n: int = 500) -> tuple[StudyInputs, ControlColumns]:
    rng = np.random.default_rng(seed)
    y, p, b, d = _h0_rows(rng, n)
    dy, dp, db, _ = _h0_rows(rng, n)
    inputs = StudyInputs(labels=y, probe_prob=p, expert_prob=b, dv_score=d, expert="h0")
    return inputs, ControlColumns(dev=DevRows(labels=dy, probe_prob=dp, expert_prob=db))


def test_platt_recovers_a_known_calibration():
    rng = np.random.default_rng(0)
    z = rng.normal(size=20000)
    p = 1 / (1 + np.exp(-z))
    y = rng.random(z.size) < 1 / (1 + np.exp(-(0.5 * z - 0.3)))
    a, c = platt_fit(p, y)
    assert abs(a - 0.5) < 0.05 and abs(c + 0.3) < 0.05


def test_null_holds_its_level_on_h0_tables():
    """40 tables drawn from H0: at most binomial_tolerance(40, 0.05) rejections at 0.05 (the test
    would fail if the p-value counted the wrong tail or the null world were not H0)."""
    trials = 40
    rejections = 0
    for s in range(trials):
        inputs, cols = _h0_table(100 + s)
        c = compute_controls(inputs, cols, **KW)
        assert c.null is not None
        rejections += int(c.null["p_value"][0] <= LEVEL)
    assert rejections <= binomial_tolerance(trials, LEVEL), rejections


def test_null_rejects_a_planted_gain():
    """The DV score knows where the expert helps beyond the probe's score: rejected for every seed."""
    for s in range(4):
        inputs, cols = pool(seed=10 + s)
        c = compute_controls(inputs, cols, **KW)
        assert c.null is not None
        assert c.null["p_value"][0] <= LEVEL, (s, c.null)
        assert c.null["observed_delta"][0] > c.null["null_delta"][0]["ci95"][1]


def test_null_p_value_is_from_integer_counts():
    inputs, cols = pool(seed=20)
    c = compute_controls(inputs, cols, **KW)
    assert c.null is not None
    k, m = c.null["exceedances"][0], c.null["valid_draws"][0]
    assert isinstance(k, int) and c.null["p_value"][0] == (1 + k) / (1 + m)

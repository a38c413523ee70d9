import json

import numpy as np
import pytest

from ctd_stats.reports.study import build_study_report
from ctd_stats.study import METHODS, StudyInputs, auroc_rows, faic, run_study
from tests._support.tolerance import binomial_tolerance


def test_auroc_rows_matches_pairwise_definition():
    rng = np.random.default_rng(0)
    y = rng.random(60) < 0.4
    S = np.round(rng.random((5, 60)), 1)  # ties
    got = auroc_rows(S, y)
    for i, s in enumerate(S):
        pos, neg = s[y], s[~y]
        ref = np.mean((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :]))
        assert got[i] == pytest.approx(ref)
    assert np.isnan(auroc_rows(S, np.zeros(60, bool))).all()


def test_faic_edges():
    b = np.array([0.1, 0.2, 0.3])
    assert faic(b, np.array([0.9, 0.95, 0.97]), 0.8, np.array([0.9, 0.95, 0.97])) == pytest.approx(
        1.0
    )
    assert faic(b, np.array([0.7, 0.7, 0.7]), 0.8, np.array([0.9, 0.95, 0.97])) == 0.0
    assert np.isnan(faic(b, b, 0.8, np.array([0.8, 0.7, 0.6])))


def _inputs(n=700, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.4
    p = np.clip(0.5 + (2 * y - 1) * rng.normal(0.15, 0.25, n), 0, 1)
    b = np.clip(0.5 + (2 * y - 1) * rng.normal(0.3, 0.25, n), 0, 1)
    d = (2 * y - 1) * (b - p) + rng.normal(0, 0.3, n)
    g = rng.choice(["a", "b", "c"], n)
    return StudyInputs(y, p, b, d, g, expert="synthetic", seconds_per_call=0.5)


def test_study_runs_and_ctd_beats_uncertainty_when_dv_is_informative():
    s = run_study(_inputs(), budgets=[0.1, 0.2, 0.3], repeats=40, seed=1)
    a = s.mean("auroc")
    assert np.all(a[METHODS.index("ctd")] >= a[METHODS.index("unc_calibrated")])
    # oracle is an upper reference for the batch methods
    assert np.all(a[METHODS.index("oracle")] >= a[METHODS.index("dv_topk")] - 1e-9)
    # top-k methods spend exactly round(αB)/B of each full batch
    r = s.mean("rate")[METHODS.index("unc_topk")]
    assert np.all(r <= np.array([0.1, 0.2, 0.3]) + 0.01)
    # guarantee check within δ (binomial tolerance for 40 trials: CP upper at 99.9%)

    for v in s.bootstrap_violations:
        assert v <= binomial_tolerance(40, 0.1)
    d = s.to_dict()
    json.dumps(d, allow_nan=True)
    assert set(d["auroc"]) == set(METHODS)
    rep = build_study_report([s], title="t", costs={"synthetic": 0.5})
    html = rep.to_html()
    assert "data:image/png;base64" in html and "FAIC" in html


def test_study_bad_inputs():
    inp = _inputs(20)
    with pytest.raises(ValueError, match="budget"):
        run_study(inp, budgets=[1.2], repeats=2)
    with pytest.raises(ValueError, match="repeats"):
        run_study(inp, budgets=[0.2], repeats=0)
    with pytest.raises(ValueError, match="expert_prob has length"):
        StudyInputs(inp.labels, inp.probe_prob, inp.expert_prob[:-1], inp.dv_score)


def test_faic_without_achievable_improvement_is_said_not_shown_as_zero():
    import math

    from ctd_stats.reports.study import NO_IMPROVEMENT, _faic_cell, _faic_sentence

    assert _faic_cell(math.nan) == NO_IMPROVEMENT and _faic_cell(0.25) == 0.25
    assert NO_IMPROVEMENT in _faic_sentence({"ctd": math.nan, "unc_calibrated": math.nan})
    assert _faic_sentence({"ctd": 0.5, "unc_calibrated": 0.25}) == (
        "FAIC (AUROC) CTD 0.50 vs calibrated uncertainty 0.25"
    )

"""Paired differences and diagnostics of the ``ctd run`` study (issue 12 part 3)."""

import json
from html import escape as html_escape

import numpy as np
import pytest

from ctd_stats.reports.study import build_study_report, expert_summary
from ctd_stats.reports.study_diagnostics import delta_sentence
from ctd_stats.stats.metrics import auroc_rows
from ctd_stats.study import METHODS, StudyInputs, run_study
from ctd_stats.study import diagnostics as dg


def _world(n, seed, dv_noise):
    """Labels y ~ Bernoulli((p + b)/2) so that the ceiling (p + b − 1)(b − p) is E[v | p, b]; the DV
    is x-measurable (the ceiling plus noise)."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.05, 0.95, n)
    b = rng.uniform(0.05, 0.95, n)
    y = rng.random(n) < (p + b) / 2
    d = dg.ceiling_score(p, b) + rng.normal(0, dv_noise, n)
    return StudyInputs(y, p, b, d, expert="w")


def _heterogeneous(n, seed):
    """The expert is sharp on half of the inputs and says ~0.5 on the rest: its value varies with x
    beyond what p shows. d = v + noise, an informative DV."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.5
    s = 2 * y - 1
    p = np.clip(0.5 + s * rng.normal(0.1, 0.25, n), 0.01, 0.99)
    sharp = rng.random(n) < 0.5
    b = np.clip(
        np.where(sharp, 0.5 + s * rng.normal(0.35, 0.1, n), 0.5 + rng.normal(0, 0.05, n)),
        0.01,
        0.99,
    )
    d = s * (b - p) + rng.normal(0, 0.2, n)
    return StudyInputs(y, p, b, d, expert="h")


def test_paired_interval_is_mean_and_split_quantiles():
    diffs = np.arange(201, dtype=float)[:, None] / 100 - 1  # −1 … +1 over 201 splits
    mean, lo, hi = dg.paired_interval(np.hstack([diffs, diffs + 2]))
    assert (
        np.allclose(mean, [0, 2])
        and np.allclose(lo, [-0.95, 1.05])
        and np.allclose(hi, [0.95, 2.95])
    )
    assert [dg.verdict(-0.1, 0.2), dg.verdict(0.01, 0.2), dg.verdict(-0.3, -0.01)] == [
        "a tie",
        "better",
        "worse",
    ]


def test_known_gap_gives_an_interval_above_zero():
    """An informative DV (the expected gain plus little noise) against uncertainty: CTD's paired AUROC
    interval at 0.3 lies above 0, and study.json carries it per method and budget."""
    s = run_study(_heterogeneous(1500, 0), budgets=[0.1, 0.3], repeats=30, seed=2, split="none")
    mean, lo, _ = s.paired_delta("auroc")
    i = METHODS.index("ctd")
    assert lo[i, 1] > 0 and mean[i, 1] > 0.01
    assert np.all(mean[METHODS.index("unc_calibrated")] == 0)  # the reference against itself
    d = s.to_dict()
    row = d["auroc_delta"]["ctd"][1]
    assert set(row) == {"mean", "ci95"} and row["ci95"][0] == pytest.approx(lo[i, 1])
    assert set(d["auroc_delta"]) == set(METHODS) == set(d["accuracy_delta"])
    assert all(len(v) == 2 for v in d["accuracy_delta"].values())
    assert "better" in delta_sentence(s) and "95% CI" in expert_summary(s)
    json.dumps(d, allow_nan=True)


def test_no_gap_when_the_expert_equals_the_probe():
    """Every cascade is the probe: all paired differences and their intervals are exactly 0, a tie."""
    w = _world(600, 1, 0.1)
    s = run_study(
        StudyInputs(w.labels, w.probe_prob, w.probe_prob, w.dv_score), budgets=[0.3], repeats=10
    )
    mean, lo, hi = s.paired_delta("accuracy")
    assert np.all(mean == 0) and np.all(lo == 0) and np.all(hi == 0)
    assert "a tie" in delta_sentence(s)


def test_ceiling_beats_every_dv_ranking_on_the_same_rows():
    s = run_study(_world(3000, 3, 0.3), budgets=[0.1, 0.2, 0.3, 0.4], repeats=15, seed=4)
    d = s.diagnostics
    rm = d.ranking_mean("auroc")
    ceiling = rm[dg.RANKINGS.index("ceiling")]
    for name in ("dv", "uncertainty"):
        assert np.all(ceiling >= rm[dg.RANKINGS.index(name)] - 1e-3), name
    _, glo, _ = d.ranking_gap("auroc")
    assert np.all(glo[0][:3] > 0)  # ceiling − uncertainty, paired over splits (budgets ≤ 0.3)


def test_ranking_masks_delegate_exactly_the_top_ceil_alpha_n():
    scores = np.array([[0.1, 0.9, 0.5, 0.5, 0.3], [5, 4, 3, 2, 1]], dtype=float)
    m = dg.ranking_masks(scores, np.array([0.2, 0.3, 0.6]))
    assert m.shape == (2, 3, 5)
    assert m.sum(axis=2).tolist() == [[1, 2, 3], [1, 2, 3]]
    assert m[0, 1].tolist() == [False, True, True, False, False]  # ties: the earlier row
    assert m[1, 2].tolist() == [True, True, True, False, False]


def test_pool_diagnostics_and_batch_sizes():
    p = np.array([0.2, 0.8, 0.6, 0.4])
    b = np.array([0.1, 0.9, 0.3, 0.7])
    y = np.array([0, 1, 1, 0], bool)
    v = (2 * y - 1) * (b - p)
    pool = dg.pool_diagnostics(p, b, v, v)  # d = v: a perfect DV for v > 0
    assert pool.p_v_positive == 0.5 and pool.dv_auroc_v_positive == 1.0
    assert pool.corr_pb == pytest.approx(np.corrcoef(p, b)[0, 1])
    assert pool.uncertainty_auroc_v_positive == pytest.approx(
        auroc_rows(-np.abs(p - 0.5)[None], v > 0)[0]
    )
    bm = dg.batch_masks(np.linspace(0, 1, 256), np.linspace(1, 0, 256), np.array([0.25]))
    assert bm.shape == (2, 3, 1, 256)
    assert bm.sum(axis=-1)[:, :, 0].tolist() == [[64, 64, 64], [64, 64, 64]]
    assert (
        bm[1, 0, 0, :8].all() and not bm[1, 0, 0, 8:32].any()
    )  # dv top-8 of the first batch of 32


def test_report_section_shows_the_diagnostics():
    s = run_study(_world(800, 5, 0.1), budgets=[0.2, 0.3], repeats=8, seed=6)
    rep = build_study_report([s], title="t")
    md, html = rep.to_markdown(), rep.to_html()
    for text in (
        "Paired differences against calibrated uncertainty",
        "P(v > 0)",
        "corr(p, b)",
        "x-measurable ceiling",
        "B=32",
        "budget-only arm violations",
        "mean v deleg. CTD",
    ):
        assert text in md and html_escape(text, quote=False) in html, text
    d = s.to_dict()["diagnostics"]
    assert set(d["batch_topk"]["auroc"]["dv_topk"]) == {"32", "64", "128"}
    assert set(d["ranking_only"]["auroc"]) == set(dg.RANKINGS)
    assert len(d["budget_only_guarantee_check"]["violations"]) == 2

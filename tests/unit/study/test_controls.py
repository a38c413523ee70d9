"""Each control of the study on synthetic pools with known answers (tests/unit/study/synthetic.py)."""

from __future__ import annotations

import numpy as np
import pytest

from ctd_stats.stats.metrics import auroc
from ctd_stats.study.control_inputs import ControlColumns, DevRows
from ctd_stats.study.controls import compute_controls, route_rule
from ctd_stats.study.runner import METHODS, run_study
from ctd_stats.study.verdict import expert_verdict, overall_verdict
from tests.unit.study.synthetic import pool

BUDGETS = [0.1, 0.2, 0.3]
KW = dict(budgets=BUDGETS, delta=0.1, repeats=30, seed=3, split="none", null_draws=60)


@pytest.fixture(scope="module")
def planted():
    inputs, cols = pool(seed=1)
    return inputs, cols, compute_controls(inputs, cols, **KW)


def test_headline_and_oracle_are_the_studys_own_numbers(planted):
    """Same splits as run_study: the CTD, calibrated-uncertainty and oracle AUROCs agree exactly."""
    inputs, _, c = planted
    s = run_study(inputs, budgets=BUDGETS, delta=0.1, repeats=30, seed=3, split="none")
    for arm, meth in (("ctd", "ctd"), ("unc", "unc_calibrated"), ("oracle", "oracle")):
        np.testing.assert_array_equal(c.auroc[arm], s.auroc[:, METHODS.index(meth), :])
    np.testing.assert_array_equal(c.auroc["probe"], s.probe_auroc)
    frac = c.ratio(("ctd", "unc"), ("oracle", "unc"))
    m = s.auroc.mean(axis=0)
    ci, iu, io = (METHODS.index(k) for k in ("ctd", "unc_calibrated", "oracle"))
    np.testing.assert_allclose(frac, (m[ci] - m[iu]) / (m[io] - m[iu]), rtol=1e-12)


def test_planted_gain_shows_in_the_right_group(planted):
    """The gain is in group A; in B and C the expert copies the probe, so Δ there is exactly 0."""
    _, _, c = planted
    j = 2
    assert c.headline.lo[j] > 0.02
    assert c.by_group["A"].lo[j] > 0
    for g in ("B", "C"):
        assert (
            c.by_group[g].mean[j] == 0.0
            and c.by_group[g].lo[j] == 0.0
            and c.by_group[g].hi[j] == 0.0
        )


def test_both_protocols_and_intervals(planted):
    _, _, c = planted
    assert set(c.protocols) == {"none", "opt_ht"}
    np.testing.assert_array_equal(c.protocols["none"].mean, c.headline.mean)
    assert not np.array_equal(c.protocols["opt_ht"].mean, c.headline.mean)
    assert c.protocols["opt_ht"].lo[2] > 0
    assert c.pool_bootstrap is not None and c.pool_bootstrap.lo[2] > 0
    assert c.dv_refit is None and "dv_refit_interval" in c.missing


def test_expert_copy_gives_zero_everywhere():
    """An expert identical to the probe: every Δ (splits, pool bootstrap, null) is exactly 0."""
    inputs, cols = pool(seed=2)
    same = type(inputs)(
        labels=inputs.labels,
        probe_prob=inputs.probe_prob,
        expert_prob=inputs.probe_prob,
        dv_score=inputs.dv_score,
        group=inputs.group,
        expert="copy",
    )
    c = compute_controls(same, cols, **{**KW, "null_draws": 10})
    for iv in (c.headline, c.pool_bootstrap):
        assert iv is not None
        assert np.all(iv.mean == 0) and np.all(iv.lo == 0) and np.all(iv.hi == 0)


def test_labels_to_probe_known_answers():
    """Refit columns equal to the table's own: the refit arms equal CTD / uncertainty / probe exactly.
    A perfect refit probe: AUROC 1, and the verdict says the labels are better spent on the probe."""
    inputs, cols = pool(seed=4)
    same = ControlColumns(probe_refit=inputs.probe_prob, dv_refit=inputs.dv_score, dev=cols.dev)
    c = compute_controls(inputs, same, **{**KW, "null_draws": 10})
    np.testing.assert_array_equal(c.auroc["refit_ctd"], c.auroc["ctd"])
    np.testing.assert_array_equal(c.auroc["refit_unc"], c.auroc["unc"])
    np.testing.assert_array_equal(c.auroc["refit_probe"], c.auroc["probe"])
    perfect = np.where(inputs.labels, 0.9, 0.1)
    good = ControlColumns(probe_refit=perfect, dv_refit=inputs.dv_score, dev=cols.dev)
    c2 = compute_controls(inputs, good, **{**KW, "null_draws": 10})
    assert np.all(c2.auroc["refit_probe"] == 1.0)
    v = expert_verdict(c2)
    assert (
        not v.ctd_pays
        and v.reason == "simpler_alternative_better"
        and v.best_alternative == "refit_probe"
    )
    assert "CTD does not pay here" in v.text and "better spent on the probe" in v.text


def test_route_rule_learned_on_dev():
    """Dev mean v > 0 only in group A (share s_A): at α = s_A exactly group A is routed; below, the
    most uncertain A rows; groups with mean v ≤ 0 never."""
    rng = np.random.default_rng(0)
    g = np.repeat(np.array(["A", "B", "C"]), [200, 300, 500])
    y = rng.random(1000) < 0.5
    p = rng.random(1000)
    b = np.where(
        g == "A", y.astype(float), np.where(g == "B", 1 - y.astype(float), p)
    )  # A helps, B hurts
    dev = DevRows(labels=y, probe_prob=p, expert_prob=b, group=g)
    rule, masks = route_rule(dev, np.array([0.1, 0.2, 0.5]), g, p)
    assert rule.order == ("A",)
    np.testing.assert_array_equal(masks[1], g == "A")
    np.testing.assert_array_equal(masks[2], g == "A")  # B and C are never routed
    part = masks[0]
    assert not part[g != "A"].any() and abs(part.sum() - 100) <= 1
    u = np.abs(p - 0.5)
    assert u[part].max() <= u[(g == "A") & ~part].min()


def test_route_recovers_the_gain_when_the_gain_is_a_group(planted):
    """The expert helps only in A: routing A whole recovers (nearly) all of CTD's gain at α ≈ s_A."""
    _, _, c = planted
    frac = c.ratio(("route", "unc"), ("ctd", "unc"))
    assert c.route is not None and c.route.order[0] == "A"
    assert frac[1] > 0.8
    assert c.route_rate is not None and abs(c.route_rate[1] - 0.2) < 0.03


def test_no_shift_and_dv_refits_from_columns():
    """No-shift / bootstrap columns equal to the table's: their Δ equals the headline exactly."""
    inputs, cols = pool(seed=5)
    same = ControlColumns(
        probe_noshift=inputs.probe_prob,
        dv_noshift=inputs.dv_score,
        dv_boot=np.stack([inputs.dv_score] * 3),
        dev=cols.dev,
        noshift_caveat="c",
    )
    c = compute_controls(inputs, same, **{**KW, "null_draws": 10})
    np.testing.assert_array_equal(c.diff("noshift_ctd", "noshift_unc").mean, c.headline.mean)
    assert c.dv_refit is not None
    np.testing.assert_array_equal(c.dv_refit.lo, c.headline.lo)
    noisy = ControlColumns(
        dv_boot=np.random.default_rng(0).normal(size=(3, inputs.n)), dev=cols.dev
    )
    c2 = compute_controls(inputs, noisy, **{**KW, "null_draws": 10})
    assert (
        c2.dv_refit is not None and c2.dv_refit.mean[2] < c.headline.mean[2] - 0.02
    )  # noise DVs lose the gain
    d = c.to_dict()
    assert d["no_shift"]["caveat"] == "c" and "no_shift" not in c.missing


def test_missing_columns_are_reported_not_silent():
    inputs, _ = pool(seed=6)
    bare = type(inputs)(
        labels=inputs.labels,
        probe_prob=inputs.probe_prob,
        expert_prob=inputs.expert_prob,
        dv_score=inputs.dv_score,
        group=None,
        expert="x",
    )
    c = compute_controls(bare, ControlColumns(), **{**KW, "null_draws": 10})
    assert set(c.missing) == {
        "by_group",
        "leave_one_group_out",
        "route_by_group",
        "labels_to_probe",
        "no_shift",
        "dv_refit_interval",
        "null",
    }
    d = c.to_dict()
    assert (
        d["null"] is None
        and "labels_to_probe" not in d
        and d["not_run"]["no_shift"].startswith("the table declares")
    )
    from ctd_stats.reports.study_controls import controls_blocks

    v = expert_verdict(c)
    text = str(controls_blocks([c], [v], overall_verdict([v])))
    assert "not run: the table has no 'group' column" in text


def test_verdict_pays_and_does_not_pay(planted):
    """Gain = group A whole: routing A ties CTD, so CTD does not pay over that simpler rule. Gain on
    the half of A the DV score knows (the expert hurts on the other half): CTD pays. A noise DV: CTD
    does not beat uncertainty."""
    _, _, c = planted
    v = expert_verdict(c)
    assert not v.ctd_pays and v.best_alternative == "route"
    inputs, cols = pool(seed=1, hurt_half=True)
    c1 = compute_controls(inputs, cols, **{**KW, "null_draws": 20})
    v1 = expert_verdict(c1)
    assert v1.ctd_pays and "CTD pays here" in v1.text and "route-by-group" in v1.text, v1.text
    inputs, cols = pool(seed=1, planted=False)
    c0 = compute_controls(inputs, cols, **{**KW, "null_draws": 20})
    v0 = expert_verdict(c0)
    assert not v0.ctd_pays and v0.reason == "no_gain_over_uncertainty"
    assert "CTD does not pay here: it does not beat calibrated-uncertainty delegation" in v0.text
    assert overall_verdict([v0]).startswith("CTD does not pay here for any expert")


def test_probe_auroc_is_the_evaluation_rows_auroc(planted):
    inputs, _, c = planted
    from ctd_stats.study.runner import split_rng

    perm = split_rng(3, 0).permutation(inputs.n)
    ev = perm[round(0.5 * inputs.n) :]
    assert c.auroc["probe"][0] == pytest.approx(
        auroc(inputs.labels[ev], inputs.probe_prob[ev]), abs=1e-15
    )


def _table_file(tmp_path, suffix: str, bad: bool = False):
    import pandas as pd

    from ctd_stats.table.score_table import read_score_table

    rng = np.random.default_rng(0)
    n = 40
    split = np.where(np.arange(n) < 10, "dev", "")
    frame = pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(n)],
            "split": split,
            "group": rng.choice(["a", "b"], n),
            "label": rng.integers(0, 2, n),
            "probe_prob": rng.random(n),
            "expert_prob__e": rng.random(n),
            "dv_score__e": rng.normal(size=n),
            "probe_prob_refit": rng.random(n),
            "dv_score_refit__e": rng.normal(size=n),
            "dv_score_boot1__e": rng.normal(size=n),
            "dv_score_boot0__e": rng.normal(size=n),
            "dv_score_boot0__other": rng.normal(size=n),
        }
    )
    if bad:
        frame.loc[20, "dv_score_refit__e"] = np.nan
    path = tmp_path / f"t.{suffix}"
    frame.to_parquet(path) if suffix == "parquet" else frame.to_csv(path, index=False)
    return frame, read_score_table(path)


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_read_control_columns(tmp_path, suffix):
    from ctd_stats.study.control_inputs import read_control_columns

    frame, table = _table_file(tmp_path, suffix)
    cols = read_control_columns(table, "e")
    pool_rows = frame["split"] != "dev"
    np.testing.assert_allclose(cols.probe_refit, frame["probe_prob_refit"][pool_rows])
    assert cols.dv_boot is not None and cols.dv_boot.shape == (
        2,
        30,
    )  # boot0, boot1 of 'e' only, in k order
    np.testing.assert_allclose(cols.dv_boot[0], frame["dv_score_boot0__e"][pool_rows])
    assert cols.probe_noshift is None and cols.dev is not None and cols.dev.n == 10


def test_read_control_columns_names_a_bad_cell(tmp_path):
    from ctd_stats.errors import CTDInputError
    from ctd_stats.study.control_inputs import read_control_columns

    _, table = _table_file(tmp_path, "parquet", bad=True)
    with pytest.raises(CTDInputError, match=r"column 'dv_score_refit__e'.*row 20 \(id r20\)"):
        read_control_columns(table, "e")

"""Leave one group out (ctd_stats/study/control_logo.py): the headline without each group in turn.

(a) The whole gain sits in one group (tests/unit/study/synthetic.py: group A): without A the
interval contains 0 and the verdict names A. (b) The same rows with the groups dealt at random, so
the gain is spread over every group: no group carries it, and the verdict says nothing about it.
(c) Exactness: the control for a group is the headline (of the controls and of ``run_study``)
computed on the pool with that group's rows deleted, with the same seeds.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ctd_stats.study.control_arms import ControlSettings
from ctd_stats.study.control_inputs import ControlColumns
from ctd_stats.study.control_logo import MAX_SPLITS, leave_one_group_out
from ctd_stats.study.controls import compute_controls
from ctd_stats.study.runner import METHODS, StudyInputs, run_study
from ctd_stats.study.verdict import _iv, expert_verdict
from tests.unit.study.synthetic import pool

BUDGETS = [0.1, 0.2, 0.3]
J = 2  # the headline budget 0.3
KW = dict(budgets=BUDGETS, delta=0.1, repeats=30, seed=3, split="none", null_draws=5)


def _regroup(inputs: StudyInputs, group: np.ndarray | None) -> StudyInputs:
    return dataclasses.replace(inputs, group=group)


def _without(inputs: StudyInputs, group: str) -> StudyInputs:
    """The pool as a table with ``group``'s rows deleted would give it."""
    assert inputs.group is not None
    keep = inputs.group != group
    rows = ("labels", "probe_prob", "expert_prob", "dv_score", "group")
    return dataclasses.replace(inputs, **{k: getattr(inputs, k)[keep] for k in rows})


@pytest.fixture(scope="module")
def one_group():
    inputs, cols = pool(seed=1)
    return inputs, compute_controls(inputs, cols, **KW)


@pytest.fixture(scope="module")
def spread():
    inputs, cols = pool(seed=1)
    dealt = np.random.default_rng(11).choice(np.array(["g0", "g1", "g2", "g3"]), inputs.n)
    spread_inputs = _regroup(inputs, dealt)
    return spread_inputs, compute_controls(spread_inputs, cols, **KW)


def test_gain_in_one_group_rests_on_it_and_the_verdict_names_it(one_group):
    _, c = one_group
    logo = c.leave_one_out
    assert logo is not None and logo.groups == ("A", "B", "C") and logo.budget == 0.3
    assert c.headline.lo[J] > 0.02
    m, lo, hi = logo.interval("A")
    assert lo <= 0 <= hi  # without A the expert is a copy of the probe: Δ = 0
    for g in ("B", "C"):
        assert logo.interval(g)[1] > 0.02  # without B or C the gain is still there
    assert logo.rests_on(c.headline.lo[J], c.headline.hi[J]) == ["A"]
    text = expert_verdict(c).text
    assert f"The gain rests on A: without it Δ = {_iv(m, lo, hi)} (30 splits)." in text, text
    assert text.count("rests on") == 1
    d = c.to_dict()["leave_one_group_out"]
    assert d["budget"] == 0.3 and d["splits"] == 30 and d["skipped"] == {}
    assert d["groups"]["A"]["n_removed"] == int((c_group := one_group[0].group == "A").sum())
    assert d["groups"]["A"]["n_pool_left"] == int((~c_group).sum())
    assert d["groups"]["A"]["delta"] == {"mean": m, "ci95": [lo, hi]}
    assert d["rests_on"] == ["A"]
    h = c.headline
    assert d["headline_same_splits"] == {"mean": h.mean[J], "ci95": [h.lo[J], h.hi[J]]}
    assert "leave_one_group_out" not in c.missing


def test_gain_spread_over_groups_rests_on_none(spread):
    _, c = spread
    logo = c.leave_one_out
    assert logo is not None and logo.groups == ("g0", "g1", "g2", "g3")
    assert c.headline.lo[J] > 0.02
    for g in logo.groups:
        assert logo.interval(g)[1] > 0  # every group left out: the interval still excludes 0
    assert logo.rests_on(c.headline.lo[J], c.headline.hi[J]) == []
    assert "rests on" not in expert_verdict(c).text
    assert c.to_dict()["leave_one_group_out"]["rests_on"] == []


@pytest.mark.parametrize("split", ["none", "opt_ht"])
def test_the_control_is_the_headline_of_the_table_without_the_group(spread, split):
    """Bit for bit: compute_controls and run_study on the pool with the group's rows deleted (same
    seed, budgets, δ, split protocol, fractions) give the control's mean and interval."""
    inputs, _ = spread
    kw = {**KW, "split": split, "cal_fraction": 0.5, "opt_fraction": 0.3}
    c = compute_controls(inputs, ControlColumns(), **kw)
    logo = c.leave_one_out
    assert logo is not None
    for g in logo.groups:
        sub = _without(inputs, g)
        ref = compute_controls(sub, ControlColumns(), **kw)
        assert logo.interval(g) == ref.headline.at(J)
        st = run_study(sub, budgets=BUDGETS, delta=0.1, repeats=30, seed=3, split=split)
        m, lo, hi = st.paired_delta()
        i = METHODS.index("ctd")
        assert logo.interval(g) == (m[i, J], lo[i, J], hi[i, J])
        assert logo.n_left[logo.groups.index(g)] == sub.n
    assert any(n % 2 for n in logo.n_left)  # an odd pool left: round(0.5 n′) rounds a half


def test_fewer_splits_are_the_studys_first_splits(spread):
    inputs, _ = spread
    s = ControlSettings.for_pool(
        inputs.n,
        budgets=BUDGETS,
        delta=0.1,
        repeats=30,
        cal_fraction=0.5,
        opt_fraction=0.3,
        seed=3,
        split="none",
        null_draws=None,
    )
    logo = leave_one_group_out(
        inputs, s, budget_index=J, cal_fraction=0.5, opt_fraction=0.3, splits=12
    )
    ref = compute_controls(_without(inputs, "g2"), ControlColumns(), **{**KW, "repeats": 12})
    assert logo.splits == 12 and logo.interval("g2") == ref.headline.at(J)
    assert MAX_SPLITS >= 1 and compute_controls(
        inputs, ControlColumns(), **{**KW, "repeats": 4}
    ).leave_one_out.splits == min(4, MAX_SPLITS)


def test_one_class_left_is_skipped():
    """Groups that are the pool's classes: leaving either out leaves one class (AUROC undefined)."""
    inputs, _ = pool(seed=2, n=400)
    g = np.where(np.arange(inputs.n) < 100, "pos", "neg")
    c = compute_controls(
        dataclasses.replace(inputs, labels=g == "pos", group=g, expert="x"),
        ControlColumns(),
        **{**KW, "repeats": 3},
    )
    logo = c.leave_one_out
    assert logo is not None and logo.groups == () and set(logo.skipped) == {"neg", "pos"}
    why = c.missing["leave_one_group_out"]
    assert (
        "group 'pos' not left out: removing its 100 rows leaves 300 pool rows of one class only"
        in why
    )
    assert "group 'neg' not left out" in why
    assert c.to_dict()["leave_one_group_out"]["groups"] == {}


def test_too_few_rows_left_is_skipped():
    inputs, _ = pool(seed=2, n=200)
    g = np.where(np.arange(inputs.n) < 195, "big", "small")
    c = compute_controls(_regroup(inputs, g), ControlColumns(), **{**KW, "repeats": 3})
    logo = c.leave_one_out
    assert logo is not None and logo.groups == ("small",) and set(logo.skipped) == {"big"}
    assert (
        "group 'big' not left out: removing its 195 rows leaves 5 pool rows (2 calibration, "
        "3 evaluation)" in c.missing["leave_one_group_out"]
    )


def test_no_groups_or_one_group_is_not_run():
    inputs, _ = pool(seed=2, n=200)
    c = compute_controls(_regroup(inputs, None), ControlColumns(), **{**KW, "repeats": 3})
    assert c.leave_one_out is None and c.to_dict()["leave_one_group_out"] is None
    assert c.missing["leave_one_group_out"] == "the table has no 'group' column"
    c1 = compute_controls(
        _regroup(inputs, np.full(inputs.n, "only")), ControlColumns(), **{**KW, "repeats": 3}
    )
    assert c1.leave_one_out is None and "one group ('only')" in c1.missing["leave_one_group_out"]


def test_report_block_lists_every_group(one_group):
    from ctd_stats.reports.study_controls import controls_blocks
    from ctd_stats.study.verdict import overall_verdict

    _, c = one_group
    v = expert_verdict(c)
    blocks = controls_blocks([c], [v], overall_verdict([v]))
    table = next(b for b in blocks if getattr(b, "columns", [""])[0] == "group left out")
    names = [r[0] for r in table.rows]
    assert names == ["none (the headline)", "none (the headline, first 30 splits)", "A", "B", "C"]
    assert [r[4] for r in table.rows] == ["", "", "the headline rests on it", "", ""]
    assert "first 30 splits" in table.caption


def test_ctd_run_path_gives_the_deleted_tables_headline(tmp_path):
    """Through ``controls_for_table`` (what ``ctd run`` calls): the pool has 1,401 rows and the
    group 234, so the 1,167 rows left split as round(0.5 · 1167) = 584 calibration rows, as
    ``run_study`` splits a table without the group (700/1401 · 1167 would give 583)."""
    from types import SimpleNamespace

    import pandas as pd

    from ctd_stats.study.inputs import study_inputs
    from ctd_stats.study.run_controls import controls_for_table
    from ctd_stats.table.score_table import read_score_table

    inputs, _ = pool(seed=4, n=1401)
    group = np.where(np.arange(inputs.n) < 234, "cut", "rest")
    path = tmp_path / "t.parquet"
    pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(inputs.n)],
            "split": "",
            "group": group,
            "label": inputs.labels.astype(int),
            "probe_prob": inputs.probe_prob,
            "expert_prob__x": inputs.expert_prob,
            "dv_score__x": inputs.dv_score,
        }
    ).to_parquet(path)
    table = read_score_table(path)
    kw = dict(budgets=BUDGETS, delta=0.1, repeats=6, opt_fraction=0.3, seed=3, split="opt_ht")
    study = run_study(study_inputs(table, "x"), **kw)
    spec = SimpleNamespace(
        calibration=SimpleNamespace(opt_fraction=0.3), splits=SimpleNamespace(seed=3)
    )
    logo = controls_for_table(spec, table, [study]).experts[0].leave_one_out
    assert logo is not None and logo.n_left == (1167, 234)
    m, lo, hi = run_study(_without(_regroup(inputs, group), "cut"), **kw).paired_delta()
    i = METHODS.index("ctd")
    assert logo.interval("cut") == (m[i, J], lo[i, J], hi[i, J])


def test_rows_without_a_group_are_named_in_the_verdict_and_report():
    """Rows whose group cell is empty (the table reads a missing group as "") are left out together
    and named "(no group)": the verdict said "The gain rests on : without it …" and the report had
    blank group cells (red-team, 2026-12-03)."""
    from ctd_stats.reports.study_controls import controls_blocks
    from ctd_stats.study.verdict import NO_GROUP, overall_verdict

    inputs, cols = pool(seed=1)
    assert inputs.group is not None
    c = compute_controls(
        _regroup(inputs, np.where(inputs.group == "A", "", inputs.group)), cols, **KW
    )
    logo = c.leave_one_out
    assert logo is not None and logo.groups == ("", "B", "C")
    text = expert_verdict(c).text
    m, lo, hi = logo.interval("")
    assert f"The gain rests on {NO_GROUP}: without it Δ = {_iv(m, lo, hi)} (30 splits)." in text
    assert f"CTD beats uncertainty on {NO_GROUP} +" in text
    assert "on  " not in text and "rests on :" not in text
    assert c.to_dict()["leave_one_group_out"]["rests_on"] == [""]  # study.json keeps the key ""
    v = expert_verdict(c)
    tables = [b for b in controls_blocks([c], [v], overall_verdict([v])) if hasattr(b, "rows")]
    for t in tables:
        if t.columns[0] in ("group", "group left out"):
            assert NO_GROUP in [r[0] for r in t.rows] and "" not in [r[0] for r in t.rows]


def test_several_groups_each_carrying_the_gain_are_all_named(one_group):
    """When leaving out any of several groups makes the interval include 0, the sentence names each
    one once, in the control's order, with its own interval."""
    import dataclasses

    from ctd_stats.study.control_arms import IntervalArray

    _, c = one_group
    logo = c.leave_one_out
    assert logo is not None
    wide = np.tile(np.linspace(-0.01, 0.02, 30)[:, None], (1, 3))  # every group: 0 inside
    both = dataclasses.replace(logo, delta=IntervalArray.of(wide))
    text = expert_verdict(dataclasses.replace(c, leave_one_out=both)).text
    said = "; it also rests on ".join(
        f"{g}: without it Δ = {_iv(*both.interval(g))} (30 splits)" for g in "ABC"
    )
    assert f"The gain rests on {said}." in text and text.count("rests on") == 3


def test_more_groups_than_the_cap_are_not_left_out_and_the_reason_says_so():
    """Over MAX_GROUPS groups the control is not run, and its own reason says so (it read
    "per-group intervals skipped", the by-group control's reason; red-team, 2026-12-03)."""
    from ctd_stats.study.controls import MAX_GROUPS

    inputs, _ = pool(seed=2, n=400)
    many = np.array([f"g{i}" for i in range(MAX_GROUPS + 1)])[
        np.arange(inputs.n) % (MAX_GROUPS + 1)
    ]
    c = compute_controls(_regroup(inputs, many), ControlColumns(), **{**KW, "repeats": 3})
    assert c.leave_one_out is None and c.to_dict()["leave_one_group_out"] is None
    why = c.missing["leave_one_group_out"]
    assert why == f"{MAX_GROUPS + 1} groups (more than {MAX_GROUPS}): no group left out in turn"
    assert "per-group intervals" in c.missing["by_group"]


def test_a_group_whose_removal_turns_the_gain_into_a_loss_is_named(one_group):
    """Without the group the interval lies below 0 (the gain turns into a significant loss): the
    headline rests on it at least as much as when the interval merely includes 0. rests_on counted
    only intervals that include 0, so the verdict said nothing (red-team, 2026-12-03)."""
    import dataclasses

    from ctd_stats.study.control_arms import IntervalArray

    _, c = one_group
    logo = c.leave_one_out
    assert logo is not None and logo.groups == ("A", "B", "C")
    h_lo, h_hi = c.headline.lo[J], c.headline.hi[J]
    assert h_lo > 0
    below = np.linspace(-0.05, -0.01, 30)[:, None]  # without A: Δ in [-0.05, -0.01]
    above = np.linspace(0.02, 0.06, 30)[:, None]
    flip = dataclasses.replace(logo, delta=IntervalArray.of(np.hstack([below, above, above])))
    assert flip.delta.hi[0] < 0 and flip.rests_on(h_lo, h_hi) == ["A"]
    c2 = dataclasses.replace(c, leave_one_out=flip)
    assert f"The gain rests on A: without it Δ = {_iv(*flip.interval('A'))} (30 splits)." in (
        expert_verdict(c2).text
    )
    assert c2.to_dict()["leave_one_group_out"]["rests_on"] == ["A"]
    # a loss (headline below 0) that turns into a gain without the group: named the same way
    assert flip.rests_on(-0.03, -0.01) == ["B", "C"]
    nan = dataclasses.replace(
        logo, delta=IntervalArray.of(np.hstack([np.full((30, 1), np.nan), below, above]))
    )
    assert nan.rests_on(h_lo, h_hi) == ["B"]  # an undefined Δ is not counted

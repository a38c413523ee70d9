"""Declared row roles (probes/roles.py): disjoint, stratified, seeded, and partial builds keep the fits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctd_stats.errors import CTDInputError
from probes.roles import ROLE_SPLIT, RolesSpec, plan_roles


def _rows(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for g, n in (("synth", 400), ("req", 120), ("new_a", 90), ("new_b", 60)):
        y = (rng.random(n) < 0.4).astype(int)
        frames.append(
            pd.DataFrame({"text": [f"{g} text {i}" for i in range(n)], "label": y, "group": g})
        )
    return pd.concat(frames, ignore_index=True)


def _spec(**kw) -> RolesSpec:
    base = dict(
        seed=3,
        probe_train=[{"groups": ["req"], "rows": 40}, {"groups": ["synth"], "rows": 100}],
        stream_rows=400,
        stream_fill="synth",
        expert_train=0.2,
        dev=0.3,
    )
    base.update(kw)
    return RolesSpec.model_validate(base)


def test_roles_are_disjoint_and_the_probe_sees_only_the_declared_groups():
    plan = plan_roles(_rows(), _spec())
    assert plan["id"].is_unique
    pt = plan[plan["role"] == "probe_train"]
    assert set(pt["group"]) == {"req", "synth"}
    assert len(pt) == 140
    stream = plan[plan["role"] != "probe_train"]
    assert len(stream) == 400  # synth subsampled to fill the stream
    assert set(stream["role"]) == {"expert_train", "dev", "pool"}
    # probe_train rows have no build position; the stream's positions are 0..n-1
    assert (pt["order"] == -1).all()
    assert sorted(stream["order"]) == list(range(400))
    assert set(ROLE_SPLIT) == {"probe_train", "expert_train", "dev", "pool"}


def test_each_group_and_label_stratum_is_split_by_the_declared_shares():
    plan = plan_roles(_rows(), _spec())
    stream = plan[plan["role"] != "probe_train"]
    for (_, _), sub in stream.groupby(["group", "label"]):
        m = len(sub)
        n_et = int((sub["role"] == "expert_train").sum())
        n_dev = int((sub["role"] == "dev").sum())
        # r_k = (k + 1/2) / m < share: exactly the count of k with k < share * m - 1/2
        assert n_et == int(np.ceil(0.2 * m - 0.5))
        assert n_et + n_dev == int(np.ceil(0.5 * m - 0.5))


def test_plan_is_a_pure_function_of_rows_and_seed():
    a, b = plan_roles(_rows(), _spec()), plan_roles(_rows(), _spec())
    pd.testing.assert_frame_equal(a, b)
    c = plan_roles(_rows(), _spec(seed=4)).set_index("id")["role"]
    common = a.set_index("id")["role"].align(c, join="inner")
    assert len(common[0]) > 100 and not common[0].equals(common[1])


def test_pool_limit_is_a_prefix_of_the_pool_and_changes_no_other_role():
    full = plan_roles(_rows(), _spec()).set_index("id")
    part = plan_roles(_rows(), _spec(pool_limit=3)).set_index("id")
    assert (part["role"] == full.loc[part.index, "role"]).all()
    assert (full["role"] != "pool").sum() == (part["role"] != "pool").sum()
    pool = part[part["role"] == "pool"]
    assert pool.groupby("group").size().max() == 3
    # the kept pool rows are each group's first in build order
    for g, sub in pool.groupby("group"):
        first = full[(full["role"] == "pool") & (full["group"] == g)].sort_values("order").index[:3]
        assert sorted(sub.index) == sorted(first)


def test_duplicate_texts_are_dropped_first_kept():
    rows = _rows()
    dup = rows.iloc[[0]].assign(group="new_a")
    plan = plan_roles(
        pd.concat([rows, dup], ignore_index=True), _spec(stream_rows=None, stream_fill=None)
    )
    assert plan["text"].is_unique
    assert plan.loc[plan["text"] == rows["text"].iloc[0], "group"].item() == "synth"


def test_bad_roles_are_refused_with_the_field_named():
    with pytest.raises(ValueError, match="expert_train \\+ dev must be < 1"):
        _spec(expert_train=0.6, dev=0.4)
    with pytest.raises(ValueError, match="stream_rows and stream_fill"):
        _spec(stream_fill=None)
    with pytest.raises(CTDInputError, match="unknown group"):
        plan_roles(_rows(), _spec(probe_train=[{"groups": ["nope"], "rows": 5}]))
    with pytest.raises(CTDInputError, match="probe_train rows are 2"):
        plan_roles(_rows(), _spec(probe_train=[{"groups": ["req"], "rows": 2}]))

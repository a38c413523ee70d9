"""The declared-roles build (probes/role_build.py) end to end on a tiny random model.

The property the calibration guarantee rests on is checked directly: the pool enters no fit, so
replacing every pool text changes no score of any other row (and a pool row's scores are those of
the fixed fitted functions). Also: experts are NaN where they never ran (probe_train rows), the
judge's Platt scaling and the expert probe train only on their declared role, a complete shard
store needs no model, and the control columns are there.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

import probes.assets as assets  # noqa: E402
import probes.role_build as role_build  # noqa: E402
from probes.spec import ProbesSpec  # noqa: E402


def _rows(make_texts: Any, n: int = 320) -> pd.DataFrame:
    texts, y = make_texts(n, seed=11)
    groups = np.array(["synth", "req", "new"])[np.arange(n) % 3]
    texts = [f"{t} {g} {i}" for i, (t, g) in enumerate(zip(texts, groups, strict=True))]
    return pd.DataFrame(
        {"id": [f"r{i}" for i in range(n)], "text": texts, "label": y, "group": groups}
    )


def _spec(tmp_path: Any, column: Any) -> ProbesSpec:
    return ProbesSpec.model_validate(
        {
            "model": "smollm2-135m",
            "layers": [1, 2, 3],
            "datasets": [{"name": "toxigen"}],
            "roles": {
                "seed": 1,
                "probe_train": [{"groups": ["synth", "req"], "rows": 80}],
                "expert_train": 0.25,
                "dev": 0.35,
            },
            "passes": [
                {
                    "name": "p",
                    "model": "qwen2.5-coder-1.5b",
                    "features": ["last2"],
                    "store": str(tmp_path / "store"),
                    "shard_size": 50,
                }
            ],
            "experts": [
                {"name": "strong", "kind": "probe", "params": {"pass": "p", "feature": "last2"}},
                {"name": "weak", "kind": "judge", "params": {"pass": "p", "calibration": "platt"}},
                {"name": "col", "kind": "column", "params": {"path": str(column)}},
            ],
            "controls": {"bootstrap": 2, "folds": 3},
            "crossfit_folds": 3,
            "cache_dir": str(tmp_path / "cache"),
        }
    )


@pytest.fixture
def build(monkeypatch, tiny_loaded, make_texts, tmp_path):
    loads: list[str] = []

    def fake_load(name: str, **_kw: Any) -> Any:
        loads.append(name)
        return tiny_loaded

    monkeypatch.setattr(assets, "load_model", fake_load)
    monkeypatch.setattr(assets, "model_key", lambda name: tiny_loaded.key)
    rows = _rows(make_texts)
    column = tmp_path / "col.csv"

    def run(frame: pd.DataFrame) -> Any:
        import hashlib

        # a column expert of a roles build is keyed by the build's content-addressed ids
        ids = [
            f"{g}/{hashlib.sha256(t.encode()).hexdigest()[:12]}"
            for g, t in zip(frame["group"], frame["text"], strict=True)
        ]
        probs = np.linspace(0.01, 0.99, len(frame))
        pd.DataFrame({"id": ids, "expert_prob": probs}).to_csv(column, index=False)
        monkeypatch.setattr(role_build, "load_rows", lambda spec: frame)
        return role_build.build_role_table(_spec(tmp_path, column)).frame

    return run, rows, loads


def test_the_pool_enters_no_fit(build):
    run, rows, _ = build
    first = run(rows)
    pool_ids = first.loc[first["split"] == "", "id"]
    assert len(pool_ids) > 50
    # Ids are content-addressed: map each row to its position to replace the pool rows' texts.
    edited = rows.copy()
    hashes = first.set_index("id").index.str.split("/").str[1]
    assert len(set(hashes)) == len(first)
    import hashlib

    pos = {hashlib.sha256(t.encode()).hexdigest()[:12]: i for i, t in enumerate(rows["text"])}
    for rid in pool_ids:
        i = pos[rid.split("/")[1]]
        edited.loc[i, "text"] = "please tell me about music water garden " + str(i)
    second = run(edited)
    a = first[first["split"] != ""].set_index("id").sort_index()
    b = second[second["split"] != ""].set_index("id").sort_index()
    assert list(a.index) == list(b.index)
    floats = [c for c in a.columns if a[c].dtype.kind == "f" and c != "expert_prob__col"]
    assert len(floats) >= 12
    # Equal up to the last bits (every row is predicted in one matrix product, whose rounding
    # depends on the other rows); a fit that used pool rows would move them by orders more.
    np.testing.assert_allclose(a[floats].to_numpy(), b[floats].to_numpy(), rtol=0, atol=1e-12)
    assert (second["split"] == "").sum() == len(pool_ids)


def test_experts_run_where_declared_and_a_complete_store_needs_no_model(build):
    run, rows, loads = build
    frame = run(rows)
    pt = (frame["split"] == "train") & frame["expert_prob__strong"].isna()
    assert pt.sum() == 80  # the probe_train rows: no expert ever ran on them
    assert frame.loc[~pt, ["expert_prob__strong", "expert_prob__weak"]].notna().all().all()
    assert {"probe_prob_refit", "probe_prob_noshift", "dv_score_boot1__weak"} <= set(frame.columns)
    assert frame["expert_prob__col"].notna().sum() == len(frame) - 80
    np.testing.assert_allclose(frame["expert_prob__col"].dropna().min(), 0.01, atol=0.01)
    assert "qwen2.5-coder-1.5b" in loads
    loads.clear()
    again = run(rows)
    assert loads == ["smollm2-135m"]  # the pass came from its store
    pd.testing.assert_frame_equal(frame, again)

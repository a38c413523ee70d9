from __future__ import annotations

import json
import textwrap

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from ctd_stats.errors import CTDInputError
from probes import assets
from probes.pipeline import assign_splits, build_score_table, write_score_table
from probes.spec import ProbesSpec


def test_assign_splits_stratified_and_seeded():
    groups = np.repeat(["a", "b"], [100, 60])
    labels = np.tile([0, 1], 80)
    s = assign_splits(groups, labels, 0.3, 0.2, seed=3)
    for g in ("a", "b"):
        for y in (0, 1):
            m = (groups == g) & (labels == y)
            assert (s[m] == "train").sum() == round(m.sum() * 0.3)
            assert (s[m] == "dev").sum() == round(m.sum() * 0.2)
    assert (assign_splits(groups, labels, 0.3, 0.2, seed=3) == s).all()
    assert not (assign_splits(groups, labels, 0.3, 0.2, seed=4) == s).all()


@pytest.fixture
def patched(monkeypatch, tiny_loaded, make_texts):
    """Registered names resolve to the tiny model and synthetic datasets."""

    def fake_dataset(name, *, limit=None, seed=0):
        texts, y = make_texts(120 if name == "toxigen" else 80, seed=len(name))
        df = pd.DataFrame({"id": [f"{name}/{i:05d}" for i in range(len(texts))], "text": texts, "label": y.astype(np.int8), "group": name})
        return assets.subsample(df, limit, seed) if limit else df

    monkeypatch.setattr(assets, "load_model", lambda name, **kw: tiny_loaded)
    monkeypatch.setattr(assets, "load_dataset", fake_dataset)


def make_spec(tmp_path, **extra):
    column = pd.DataFrame({"id": [f"{n}/{i:05d}" for n, k in (("toxigen", 120), ("pyrit_harm", 80)) for i in range(k)]})
    column["expert_prob"] = np.linspace(0.01, 0.99, len(column))
    column.to_parquet(tmp_path / "col.parquet")
    data = {
        "model": "smollm2-135m", "layers": [1, 2, 3], "max_length": 32,
        "datasets": [{"name": "toxigen"}, {"name": "pyrit_harm"}],
        "experts": [
            {"name": "strong", "kind": "probe", "params": {"model": "qwen2.5-coder-1.5b", "layers": [2, 3]}},
            {"name": "weak", "kind": "judge", "params": {"model": "smollm2-135m", "max_text_tokens": 16}},
            {"name": "col", "kind": "column", "params": {"path": str(tmp_path / "col.parquet")}},
        ],
        "cache_dir": str(tmp_path / "cache"),
    }
    data.update(extra)
    return ProbesSpec.model_validate(data)


def test_pipeline_builds_the_documented_table(patched, tmp_path):
    spec = make_spec(tmp_path)
    result = build_score_table(spec)
    f = result.frame
    expected = ["id", "split", "group", "label", "probe_prob"]
    for name in ("strong", "weak", "col"):
        expected += [f"expert_prob__{name}", f"dv_score__{name}"]
    assert list(f.columns) == expected and len(f) == 200 and f["id"].is_unique
    assert set(f["split"]) == {"train", "dev", ""}
    assert (f["split"] == "train").sum() == 60 and (f["split"] == "dev").sum() == 40
    train = f["split"] == "train"
    for name in ("strong", "weak", "col"):
        assert f.loc[train, f"expert_prob__{name}"].isna().all()
        b = f.loc[~train, f"expert_prob__{name}"]
        assert b.between(0, 1).all()
        assert np.isfinite(f[f"dv_score__{name}"]).all()
    assert f["probe_prob"].between(0, 1).all()
    assert result.summary.probe_auroc_pool > 0.8
    assert set(result.experts_meta) == {"strong", "weak", "col"}
    assert result.experts_meta["strong"]["seconds_per_call"] > 0

    out = write_score_table(result, tmp_path / "out" / "scores.parquet")
    meta = pq.read_schema(out).metadata
    costs = json.loads(meta[b"ctd.experts"])
    assert set(costs["weak"]) == {"seconds_per_call", "tokens_per_call", "description"}
    assert json.loads(meta[b"ctd.probes"])["n_rows"] == 200
    pd.testing.assert_frame_equal(pd.read_parquet(out), f, check_dtype=False)

    # Second run: activations and judge scores come from the cache, results are identical.
    again = build_score_table(spec)
    pd.testing.assert_frame_equal(again.frame, f)
    assert again.experts_meta["weak"]["seconds_per_call"] == pytest.approx(result.experts_meta["weak"]["seconds_per_call"])


def test_pipeline_rejects_a_split_without_both_classes(patched, tmp_path):
    spec = make_spec(tmp_path, experts=[], datasets=[{"name": "toxigen", "limit": 12}], train_fraction=0.1)
    with pytest.raises(CTDInputError, match="train split"):
        build_score_table(spec)


def test_ctd_scores_command(patched, tmp_path, capsys):
    from ctd_stats.cli import main

    spec = make_spec(tmp_path, experts=[])
    body = {"probes": spec.model_dump(exclude_none=True), "data": {"table": "scores.csv"}}
    import yaml

    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(body))
    assert main(["scores", str(tmp_path / "spec.yaml"), "--quiet"]) == 0
    assert "wrote" in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "scores.csv", keep_default_na=False)
    assert len(table) == 200 and "probe_prob" in table
    assert main(["scores", str(tmp_path / "spec.yaml"), "--out", str(tmp_path / "x.parquet"), "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["n_rows"] == 200
    (tmp_path / "bad.yaml").write_text(textwrap.dedent("""
        data: {table: t.parquet}
        probes: {datasets: [{name: toxigen}], model: gpt-99}
    """))
    assert main(["scores", str(tmp_path / "bad.yaml")]) == 2
    assert "gpt-99" in capsys.readouterr().err


def test_bad_expert_params_are_input_errors(patched, tmp_path):
    spec = make_spec(tmp_path, experts=[{"name": "s", "kind": "probe", "params": {"model": "qwen2.5-coder-1.5b", "layers": [2], "colour": "red"}}])
    with pytest.raises(CTDInputError, match=r"probes.experts\[s\].*colour"):
        build_score_table(spec)
    spec = make_spec(tmp_path, experts=[{"name": "c", "kind": "column", "params": {"path": str(tmp_path / "missing.parquet")}}])
    with pytest.raises(CTDInputError, match="no such file"):
        build_score_table(spec)

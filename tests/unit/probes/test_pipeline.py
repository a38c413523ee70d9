from __future__ import annotations

import json
import textwrap

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from ctd_stats.errors import CTDInputError
from probes import assets
from probes.pipeline import build_score_table, training_splits
from probes.spec import ProbesSpec


def test_training_splits_stratified_and_seeded():
    groups = np.repeat(["a", "b"], [100, 60])
    labels = np.tile([0, 1], 80)
    s = training_splits(groups, labels, 0.3, 0.2, seed=3)
    for g in ("a", "b"):
        for y in (0, 1):
            m = (groups == g) & (labels == y)
            assert (s[m] == "train").sum() == round(m.sum() * 0.3)
            assert (s[m] == "dev").sum() == round(m.sum() * 0.2)
    assert (training_splits(groups, labels, 0.3, 0.2, seed=3) == s).all()
    assert not (training_splits(groups, labels, 0.3, 0.2, seed=4) == s).all()


@pytest.fixture
def patched(monkeypatch, tiny_loaded, make_texts):
    """Registered names resolve to the tiny model and synthetic datasets."""

    def fake_dataset(name, *, limit=None, seed=0):
        texts, y = make_texts(120 if name == "toxigen" else 80, seed=len(name))
        df = pd.DataFrame(
            {
                "id": [f"{name}/{i:05d}" for i in range(len(texts))],
                "text": texts,
                "label": y.astype(np.int8),
                "group": name,
            }
        )
        return assets.subsample(df, limit, seed) if limit else df

    monkeypatch.setattr(assets, "load_model", lambda name, **kw: tiny_loaded)
    monkeypatch.setattr(assets, "load_dataset", fake_dataset)


def make_spec(tmp_path, **extra):
    column = pd.DataFrame(
        {
            "id": [
                f"{n}/{i:05d}" for n, k in (("toxigen", 120), ("pyrit_harm", 80)) for i in range(k)
            ]
        }
    )
    column["expert_prob"] = np.linspace(0.01, 0.99, len(column))
    column.to_parquet(tmp_path / "col.parquet")
    data = {
        "model": "smollm2-135m",
        "layers": [1, 2, 3],
        "max_length": 32,
        "datasets": [{"name": "toxigen"}, {"name": "pyrit_harm"}],
        "experts": [
            {
                "name": "strong",
                "kind": "probe",
                "params": {"model": "qwen2.5-coder-1.5b", "layers": [2, 3]},
            },
            {
                "name": "weak",
                "kind": "judge",
                "params": {"model": "smollm2-135m", "max_text_tokens": 16},
            },
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

    out = result.write(tmp_path / "out" / "scores.parquet")
    meta = pq.read_schema(out).metadata
    costs = json.loads(meta[b"ctd.experts"])
    assert set(costs["weak"]) == {"seconds_per_call", "tokens_per_call", "description"}
    assert json.loads(meta[b"ctd.probes"])["n_rows"] == 200
    pd.testing.assert_frame_equal(pd.read_parquet(out), f, check_dtype=False)

    # Second run: activations and judge scores come from the cache, results are identical.
    again = build_score_table(spec)
    pd.testing.assert_frame_equal(again.frame, f)
    assert again.experts_meta["weak"]["seconds_per_call"] == pytest.approx(
        result.experts_meta["weak"]["seconds_per_call"]
    )


def test_pipeline_rejects_a_split_without_both_classes(patched, tmp_path):
    spec = make_spec(
        tmp_path, experts=[], datasets=[{"name": "toxigen", "limit": 12}], train_fraction=0.1
    )
    with pytest.raises(CTDInputError, match="train split"):
        build_score_table(spec)


def test_ctd_scores_command(patched, tmp_path, capsys):
    from ctd_stats.cli.entry import main

    spec = make_spec(tmp_path, experts=[])
    body = {"probes": spec.model_dump(exclude_none=True), "data": {"table": "scores.csv"}}
    import yaml

    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(body))
    assert main(["scores", str(tmp_path / "spec.yaml"), "--quiet"]) == 0
    assert "wrote" in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "scores.csv", keep_default_na=False)
    assert len(table) == 200 and "probe_prob" in table
    assert (
        main(
            [
                "scores",
                str(tmp_path / "spec.yaml"),
                "--out",
                str(tmp_path / "x.parquet"),
                "--json",
                "--quiet",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["summary"]["n_rows"] == 200
    (tmp_path / "bad.yaml").write_text(
        textwrap.dedent("""
        data: {table: t.parquet}
        probes: {datasets: [{name: toxigen}], model: gpt-99}
    """)
    )
    assert main(["scores", str(tmp_path / "bad.yaml")]) == 2
    assert "gpt-99" in capsys.readouterr().err


def test_bad_expert_params_are_input_errors(patched, tmp_path):
    spec = make_spec(
        tmp_path,
        experts=[
            {
                "name": "s",
                "kind": "probe",
                "params": {"model": "qwen2.5-coder-1.5b", "layers": [2], "colour": "red"},
            }
        ],
    )
    with pytest.raises(CTDInputError, match=r"probes.experts\[s\].*colour"):
        build_score_table(spec)
    spec = make_spec(
        tmp_path,
        experts=[
            {"name": "c", "kind": "column", "params": {"path": str(tmp_path / "missing.parquet")}}
        ],
    )
    with pytest.raises(CTDInputError, match="no such file"):
        build_score_table(spec)


# ----------------------------------------------------------------------------- cross-fitting


def test_crossfit_fills_train_rows_out_of_fold(patched, tmp_path):
    assert ProbesSpec.model_validate({"datasets": [{"name": "toxigen"}]}).dv_training == "dev"
    old = build_score_table(make_spec(tmp_path)).frame
    new_result = build_score_table(make_spec(tmp_path, dv_training="train+dev_crossfit"))
    new = new_result.frame
    assert list(new.columns) == list(old.columns)
    train = (new["split"] == "train").to_numpy()
    assert (old["split"] == new["split"]).all()
    # Dev and pool rows: the probes fitted on all train rows, exactly as before.
    for col in ("probe_prob", "expert_prob__strong", "expert_prob__weak", "expert_prob__col"):
        np.testing.assert_array_equal(new.loc[~train, col], old.loc[~train, col])
    # Train rows: out-of-fold probabilities, which differ from the in-sample ones.
    assert new.loc[train, "probe_prob"].between(0, 1).all()
    assert not np.allclose(new.loc[train, "probe_prob"], old.loc[train, "probe_prob"])
    for name in ("strong", "weak", "col"):
        assert new.loc[train, f"expert_prob__{name}"].between(0, 1).all()
        assert np.isfinite(new[f"dv_score__{name}"]).all()
    # The DV probes see more rows, so the scores change.
    assert not np.allclose(new["dv_score__strong"], old["dv_score__strong"])
    s = new_result.summary
    assert s.dv_training == "train+dev_crossfit" and s.crossfit_folds == 5
    assert s.probe_auroc_train_oof is not None
    assert {e.dv_rows for e in s.experts} == {100}


def test_probe_expert_out_of_fold_scores_differ_from_in_sample(patched, tmp_path):
    spec = make_spec(tmp_path, dv_training="train+dev_crossfit")
    f = build_score_table(spec).frame
    train = (f["split"] == "train").to_numpy()
    from probes.assets import cache_dir
    from probes.experts.probe import ProbeExpert

    pe = ProbeExpert(
        "qwen2.5-coder-1.5b",
        name="strong",
        layers=[2, 3],
        cache=cache_dir(spec.cache_dir),
        seed=spec.seed,
    )
    rows = pd.concat([assets.load_dataset(n) for n in ("toxigen", "pyrit_harm")], ignore_index=True)
    texts = rows["text"].to_numpy()[train].tolist()
    pe.fit(texts, rows["label"].to_numpy()[train])
    in_sample = pe.score(texts)
    oof = f.loc[train, "expert_prob__strong"].to_numpy()
    assert not np.allclose(oof, in_sample)
    # Being honest, the OOF scores fit the labels less well (lower log-likelihood) than in-sample ones.
    yt = rows["label"].to_numpy()[train]

    def ll(q):
        return float(np.mean(yt * np.log(q) + (1 - yt) * np.log(1 - q)))

    assert ll(oof) < ll(in_sample)


@pytest.mark.parametrize("mode", ["dev", "train+dev_crossfit"])
def test_pool_rows_enter_no_fit(patched, monkeypatch, tmp_path, tiny_loaded, make_texts, mode):
    """Perturbing the pool's labels and texts leaves every score of every row unchanged."""
    import probes.pipeline as pl

    base = build_score_table(make_spec(tmp_path, dv_training=mode)).frame
    pool_ids = set(base.loc[base["split"] == "", "id"])
    fixed = dict(zip(base["id"], base["split"], strict=True))
    # Keep the split fixed (it is stratified by label) and scramble the pool rows.
    monkeypatch.setattr(
        pl,
        "training_splits",
        lambda *a, **k: np.array([fixed[i] for i in current_ids], dtype=object),
    )
    current_ids: list[str] = []

    def scrambled(name, *, limit=None, seed=0):
        texts, y = make_texts(120 if name == "toxigen" else 80, seed=len(name))
        other, _ = make_texts(len(texts), seed=99)
        ids = [f"{name}/{i:05d}" for i in range(len(texts))]
        in_pool = np.array([i in pool_ids for i in ids])
        y = np.where(in_pool, 1 - y, y)
        texts = [o if m else t for t, o, m in zip(texts, other, in_pool, strict=True)]
        current_ids.extend(ids)
        return pd.DataFrame({"id": ids, "text": texts, "label": y.astype(np.int8), "group": name})

    monkeypatch.setattr(assets, "load_dataset", scrambled)
    pert = build_score_table(make_spec(tmp_path, dv_training=mode)).frame
    assert (pert["split"] == base["split"]).all()
    pool = (base["split"] == "").to_numpy()
    assert (pert.loc[pool, "label"] != base.loc[pool, "label"]).all()
    score_cols = [
        c for c in base.columns if c.startswith(("probe_prob", "expert_prob__", "dv_score__"))
    ]
    # Rows outside the pool: identical (nothing learnt from the pool).
    pd.testing.assert_frame_equal(pert.loc[~pool, score_cols], base.loc[~pool, score_cols])
    # Pool rows: the same fixed functions applied to the new texts, so recomputable without refitting.
    assert not np.allclose(pert.loc[pool, "probe_prob"], base.loc[pool, "probe_prob"])


def test_out_of_fold_proba_matches_per_fold_fits():
    from probes.linear import SafetyProbe, out_of_fold_proba, stratified_folds

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 80)
    x = rng.normal(size=(80, 2, 6)) + y[:, None, None] * np.array([0.0, 1.0])[None, :, None]
    strata = np.where(np.arange(80) < 40, "a", "b")
    oof = out_of_fold_proba(
        x, y, [4, 7], folds=4, seed=3, strata=np.char.add(strata, y.astype(str)), c=0.1
    )
    key = np.unique(np.char.add(strata, y.astype(str)), return_inverse=True)[1]
    fold = stratified_folds(key, 4, 3)
    import torch

    xt = torch.as_tensor(x)
    for f in range(4):
        probe = SafetyProbe(c=0.1, seed=3).fit(xt[torch.as_tensor(fold != f)], y[fold != f], [4, 7])
        np.testing.assert_allclose(
            oof[fold == f], probe.predict_proba(xt[torch.as_tensor(fold == f)])
        )
    in_sample = SafetyProbe(c=0.1, seed=3).fit(xt, y, [4, 7]).predict_proba(xt)
    assert not np.allclose(oof, in_sample)

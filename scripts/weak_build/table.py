"""Write the weak-expert score table from the shards and caches present (step 5 of ``build.py``).

Columns follow the demo table: ``id, split, group, label, probe_prob, expert_prob__{strong,weak},
dv_score__{strong,weak}``, plus control columns (``probe_prob_refit`` ...; see :func:`_controls`).
Only rows with every input present enter the table; a stratified prefix of dev/pool is allowed
(``build_summary.json`` says how many planned rows are missing).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

_SCRIPTS = Path(__file__).resolve().parents[1]
if str(_SCRIPTS) not in sys.path:
    sys.path.insert(0, str(_SCRIPTS))

__all__ = ["finalize"]


def _controls(
    frame: Any, xs: Any, rows: Any, experts: dict[str, np.ndarray], log: Callable[[str], None]
) -> dict[str, Any]:
    """Control columns of the issue-18 convention, added to ``frame``; returns what was done.

    With :mod:`probes.controls` present, :func:`probes.controls.control_columns` is called
    (refit probe and its DV, 20 bootstrap DV refits, no-shift probe trained on every ``train`` row:
    the synthetic probe_train rows plus all expert_train rows, 203 of them real). Otherwise only
    ``probe_prob_refit`` is computed with the same definition: ``SafetyProbe(c=0.05)`` (layer by
    inner CV) refit on the dev rows' labels, out of fold on dev (5 folds, strata source x label), the
    fit on all dev rows elsewhere.
    """
    import importlib.util

    from demo_build.smol import SMOL_LAYERS

    y = rows["label"].to_numpy().astype(int)
    g = rows["group"].to_numpy().astype(str)
    role = rows["role"].to_numpy()
    dev = role == "dev"
    if importlib.util.find_spec("probes.controls") is not None:
        from probes.controls import control_columns

        noshift = np.isin(role, ["probe_train", "expert_train"])
        cols = control_columns(
            xs,
            y,
            g,
            frame["probe_prob"].to_numpy(),
            experts,
            dev=dev,
            noshift_train=noshift,
            layers=list(SMOL_LAYERS),
            log=log,
        )
        for k, v in cols.items():
            frame[k] = v
        return {
            "module": "probes/controls.py (control_columns)",
            "columns": sorted(cols),
            "noshift_train_rows": int(noshift.sum()),
            "noshift_train_real_rows": int((noshift & rows["real"].to_numpy()).sum()),
        }
    import torch

    from probes.linear import SafetyProbe, out_of_fold_proba

    strata = np.char.add(np.char.add(g, "|"), y.astype(str))
    dt = torch.as_tensor(dev)
    refit = SafetyProbe(c=0.05, seed=0).fit(xs[dt], y[dev], list(SMOL_LAYERS))
    q = refit.predict_proba(xs)
    q[dev] = out_of_fold_proba(
        xs[dt], y[dev], list(SMOL_LAYERS), folds=5, seed=0, strata=strata[dev], c=0.05
    )
    frame["probe_prob_refit"] = q
    log(
        f"control probe_prob_refit: refit on {int(dev.sum())} dev rows, layer {refit.layer} (controls module absent)"
    )
    return {
        "module": None,
        "columns": ["probe_prob_refit"],
        "note": "scripts/demo_build/controls.py absent: probe_prob_refit only",
    }


def finalize(plan: Any, *, commit: bool, build_seconds: float, log: Callable[[str], None]) -> Path:
    """Fit probes and experts on their declared rows and write the table and the summary."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch
    from build_demo_table import _version as demo_qwen_version
    from demo_build import OUT_DIR as DEMO_DIR
    from demo_build.dv_step import fit_dv_with_diagnostics, mean_seconds_per_text
    from demo_build.metrics import (
        auroc,
        fit_logistic,
        oof_logistic,
        predict_logistic,
    )
    from demo_build.qwen import ShardStore, git_commit
    from demo_build.smol import SMOL_LAYERS, smol_features

    from probes.linear import SafetyProbe, out_of_fold_proba
    from weak_build import OUT_DIR, ROOT
    from weak_build.build import _store

    pre = json.loads((OUT_DIR / "precondition.json").read_text(encoding="utf-8"))
    model = pre["chosen"]
    jstore = _store(model)
    judged = jstore.load()
    cache = OUT_DIR / "smol_cache"
    from demo_build.smol import _load_cache

    featured = _load_cache(cache)
    qstore = ShardStore(DEMO_DIR / "qwen15", demo_qwen_version(), ["last18"])
    qwen = qstore.load()
    real_et = (plan["role"] == "expert_train") & plan["real"]
    need_judge = plan["role"].isin(["dev", "pool"]) | real_et
    ok = plan["hash"].isin(list(featured)) & (~need_judge | plan["hash"].isin(list(judged)))
    ok &= (plan["role"] == "probe_train") | plan["hash"].isin(list(qwen))
    planned = plan.groupby("role").size().to_dict()
    rows = plan[ok].reset_index(drop=True)
    built = rows.groupby("role").size().to_dict()
    missing = {k: int(planned[k] - built.get(k, 0)) for k in planned}
    log(f"table rows {len(rows)}: {built}; missing {missing}")
    role = rows["role"].to_numpy()
    y = rows["label"].to_numpy().astype(int)
    g = rows["group"].to_numpy().astype(str)
    strata = np.char.add(np.char.add(g, "|"), y.astype(str))
    xs = torch.from_numpy(smol_features(rows["text"].tolist(), rows["hash"].tolist(), cache))
    pt = role == "probe_train"
    probe = SafetyProbe(c=0.05, seed=0).fit(xs[torch.as_tensor(pt)], y[pt], list(SMOL_LAYERS))
    p = probe.predict_proba(xs)
    p[pt] = out_of_fold_proba(
        xs[torch.as_tensor(pt)],
        y[pt],
        list(SMOL_LAYERS),
        folds=5,
        seed=0,
        strata=strata[pt],
        c=0.05,
    )
    log(f"safety probe: layer {probe.layer}")

    # strong expert: the demo's Qwen-1.5B probe (same rows, same fit), from the committed demo shards
    st = ~pt
    # fitted on every planned expert_train row (features from the demo shards, whether or not the
    # row has SmolLM2 features and so a table row)
    ep = plan[plan["role"] == "expert_train"]
    yep = ep["label"].to_numpy().astype(int)
    sep = np.char.add(np.char.add(ep["group"].to_numpy().astype(str), "|"), yep.astype(str))
    qe = torch.from_numpy(np.stack([qwen[h][1] for h in ep["hash"]]))
    qprobe = SafetyProbe(c=0.05, seed=0).fit(qe, yep)
    oof = dict(
        zip(
            ep["hash"],
            out_of_fold_proba(qe, yep, None, folds=5, seed=0, strata=sep, c=0.05),
            strict=True,
        )
    )
    qf = np.zeros((len(rows), 1, 1536), dtype=np.float32)
    for i in np.flatnonzero(st):
        qf[i] = qwen[rows["hash"].iat[i]][1]
    et = role == "expert_train"
    b_s = np.full(len(rows), np.nan)
    b_s[st] = qprobe.predict_proba(torch.from_numpy(qf[st]))
    b_s[et] = [oof[h] for h in rows["hash"][et]]
    # weak expert: the judge, Platt-scaled on the real expert_train rows (out of fold there)
    hasj = rows["hash"].isin(list(judged)).to_numpy()
    lg = np.array([judged[h][0] if h in judged else np.nan for h in rows["hash"]])
    ret = et & hasj
    w = fit_logistic(lg[ret], y[ret])
    b_w = np.where(hasj, predict_logistic(w, np.nan_to_num(lg)), np.nan)
    b_w[ret] = oof_logistic(lg[ret], y[ret], strata[ret], seed=1)
    log(f"weak expert ({model}) Platt weights {w.round(4).tolist()} on {int(ret.sum())} rows")

    split = np.where(
        np.isin(role, ["probe_train", "expert_train"]), "train", np.where(role == "dev", "dev", "")
    )
    frame = pd.DataFrame(
        {"id": rows["id"], "split": split, "group": g, "label": y.astype(np.int8), "probe_prob": p}
    )
    dev, pool = role == "dev", role == "pool"
    extra = np.c_[p, np.abs(p - 0.5)]
    summary: dict[str, Any] = {
        "setting": "docs/concepts.md, 'Pre-registered: the weak-expert setting'",
        "rows": len(rows),
        "n_by_role": built,
        "planned_by_role": planned,
        "missing_by_role": missing,
        "partial": bool(sum(missing.values())),
        "precondition": pre,
        "weak_judge": model,
        "probe_layer": probe.layer,
        "probe_auroc_pool": auroc(y[pool], p[pool]),
        "probe_auroc_pool_by_group": {
            k: auroc(y[pool & (g == k)], p[pool & (g == k)]) for k in sorted(set(g[pool]))
        },
        "build_seconds": round(build_seconds, 1),
        "experts": {},
    }
    demo_tab = DEMO_DIR / "demo_scores.parquet"
    if demo_tab.exists():
        d0 = pd.read_parquet(demo_tab, columns=["id", "expert_prob__strong"]).set_index("id")[
            "expert_prob__strong"
        ]
        m = frame["id"].isin(d0.index).to_numpy() & (dev | pool)
        diff = np.abs(b_s[m] - d0.loc[frame["id"][m]].to_numpy())
        summary["strong_vs_demo_max_abs_diff"] = float(diff.max()) if diff.size else None
    descs = {
        "strong": "Qwen2.5-Coder-1.5B-Instruct layer-18 last-token states (judge-prompt pass, demo shards) + logistic probe on the demo's 398 expert_train rows",
        "weak": f"{model} zero-shot yes/no judge (the probed model itself when smollm2-135m), Platt-scaled on the 203 real-source expert_train rows",
    }
    spc = {"strong": mean_seconds_per_text(qstore), "weak": mean_seconds_per_text(jstore)}
    meta_experts = {}
    for name, b in (("strong", b_s), ("weak", b_w)):
        d, diag = fit_dv_with_diagnostics(xs, y, p, b, g, dev, pool, extra, list(SMOL_LAYERS))
        frame[f"expert_prob__{name}"] = b
        frame[f"dv_score__{name}"] = d
        diag.update(description=descs[name], seconds_per_call=spc[name])
        summary["experts"][name] = diag
        meta_experts[name] = {
            "seconds_per_call": spc[name],
            "tokens_per_call": None,
            "description": descs[name],
        }
        log(
            f"{name}: pool AUROC {diag['auroc_expert']:.3f} (probe {diag['auroc_probe']:.3f}), P(v>0) {diag['p_v_pos']:.3f}, "
            f"DV Spearman {diag['dv_spearman_pool']:.3f}"
        )
    summary["controls"] = _controls(frame, xs, rows, {"strong": b_s, "weak": b_w}, log)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    md = dict(table.schema.metadata or {})
    md[b"ctd.experts"] = json.dumps(meta_experts).encode()
    md[b"ctd.probes"] = json.dumps(
        {
            "model": "smollm2-135m",
            "pooling": "last",
            "probe_layer": probe.layer,
            "probe_train": "neuralchemy_v1 + rho_refusal (synthetic/templated)",
            "n_rows": len(frame),
            "build": "scripts/weak_build/build.py",
        }
    ).encode()
    out = OUT_DIR / "weak_scores.parquet"
    tmp = out.with_suffix(".tmp.parquet")
    pq.write_table(table.replace_schema_metadata(md), tmp)
    os.replace(tmp, out)
    summ = OUT_DIR / "build_summary.json"
    tmps = summ.with_suffix(".tmp")
    tmps.write_text(json.dumps(summary, indent=2, allow_nan=True) + "\n", encoding="utf-8")
    os.replace(tmps, summ)
    log(f"wrote {out} ({len(frame)} rows) and {summ}")
    if commit:
        for path in (out, summ):
            git_commit(
                path,
                "Weak build: score table" + (" (stratified prefix)" if summary["partial"] else ""),
                ROOT,
                log=log,
            )
    return out

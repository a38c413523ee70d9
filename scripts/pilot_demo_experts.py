"""Go/no-go pilot for the demo table of issue 12: does delegation value vary across inputs?

About 100 rows per stream source (the first rows of the build order, so the full build reuses them)
are scored by

* the shifted safety probe: SmolLM2-135M last-token activations + the repository's logistic probe
  (:class:`probes.linear.SafetyProbe`), trained on the ``probe_train`` rows only (neuralchemy:
  synthetic injection prompts + JBB/WildGuard requests), never on a pilot row;
* the weak expert: Qwen2.5-Coder-1.5B-Instruct as a zero-shot yes/no judge (raw sigmoid of the
  logit margin, and Platt-scaled out of fold);
* the strong expert candidates: a logistic probe on Qwen-1.5B hidden states taken from the *same*
  forward pass as the judge (out-of-fold over the pilot rows, and leave-one-source-out), and a
  stacked judge + Qwen probe (out of fold).

For each expert it reports per-source AUROCs, P(v > 0), corr(p, b) and, at delegation fraction
alpha = 0.3, the AUROC of the cascade that delegates the top 30 % by the oracle
``(p + b - 1)(b - p)`` (the x-measurable ceiling) against the top 30 % by ``-|p - 1/2|``. GO iff a
strong-expert configuration has ceiling - uncertainty >= 0.02. It also compares Qwen-probe
features from the judge prompt with those from the plain chat prompt on a subset.

Usage (repository root; about 20 min on 2 CPU cores when nothing is cached)::

    .nox/tests/bin/python scripts/pilot_demo_experts.py [--per-group 100] [--plain-per-group 30]

Writes ``data/demo_build/pilot.json`` and ``data/demo_build/PILOT.md``; Qwen outputs go to the
local caches ``data/demo_build/qwen15_wide/`` (judge prompt, 6 feature slots) and
``data/demo_build/qwen15_plain/`` (plain prompt), which the full build reuses.
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

WIDE_LAST = (10, 14, 18, 22)
WIDE_MEAN = (14, 18)
ALPHA = 0.3
GO_GAP = 0.02


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _logit(q: np.ndarray) -> np.ndarray:
    q = np.clip(q, 1e-6, 1 - 1e-6)
    return np.log(q / (1 - q))


def qwen_outputs(
    texts: list[str], hashes: list[str], prompt: str
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Judge logits and wide features for the texts (computed where missing, cached in shards)."""
    from demo_build import OUT_DIR

    from probes.assets import load_model, model_key
    from probes.prompted_pass import PromptedPass, pass_version
    from probes.shards import ShardStore, fill_store

    folder = OUT_DIR / ("qwen15_wide" if prompt == "judge" else "qwen15_plain")
    model = "qwen2.5-coder-1.5b"
    version = pass_version(model_key(model), prompt, 256)  # type: ignore[arg-type]
    names = [f"last{i}" for i in WIDE_LAST] + [f"mean{i}" for i in WIDE_MEAN]
    store = ShardStore(folder, version, names)
    fill_store(
        store,
        texts,
        hashes,
        lambda: PromptedPass(load_model(model, device="cpu"), names, prompt=prompt, batch_size=4),  # type: ignore[arg-type]
        shard_size=35,
        log=_log,
    )
    have = store.load()
    logits = np.array([have[h][0] for h in hashes])
    feats = np.stack([have[h][1] for h in hashes])
    return logits, feats, names


def main(argv: list[str] | None = None) -> int:
    """Run the pilot; returns 0 (GO) or 1 (NO-GO)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-group", type=int, default=100)
    ap.add_argument("--plain-per-group", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch

    torch.set_num_threads(2)
    from demo_build import OUT_DIR
    from demo_build.data import GROUPS, build_plan
    from demo_build.metrics import auroc, expert_diagnostics, oof_logistic
    from demo_build.smol import SMOL_LAYERS, smol_features

    from probes.linear import SafetyProbe, out_of_fold_proba

    plan = build_plan(seed=args.seed, pilot_per_group=args.per_group)
    pil = plan[plan["pilot"]].sort_values("order").reset_index(drop=True)
    trn = plan[plan["role"] == "probe_train"].reset_index(drop=True)
    y = pil["label"].to_numpy().astype(int)
    g = pil["group"].to_numpy().astype(str)
    strata = np.char.add(np.char.add(g, "|"), y.astype(str))
    _log(
        f"pilot rows {len(pil)} ({dict(pil['group'].value_counts())}); probe_train rows {len(trn)}"
    )

    # shifted safety probe
    xs_tr = smol_features(trn["text"].tolist(), trn["hash"].tolist(), OUT_DIR / "smol_cache")
    xs_p = smol_features(pil["text"].tolist(), pil["hash"].tolist(), OUT_DIR / "smol_cache")
    probe = SafetyProbe(c=0.05, seed=args.seed).fit(
        torch.from_numpy(xs_tr), trn["label"].to_numpy(), list(SMOL_LAYERS)
    )
    p = probe.predict_proba(torch.from_numpy(xs_p))
    _log(f"safety probe layer {probe.layer}; pilot AUROC {auroc(y, p):.3f}")

    # Qwen: judge + features from one pass
    logit, qf, names = qwen_outputs(pil["text"].tolist(), pil["hash"].tolist(), "judge")
    b_judge = 1 / (1 + np.exp(-logit))
    b_platt = oof_logistic(logit, y, strata, seed=args.seed)
    slot_auc: dict[str, float] = {}
    oof_by_slot: dict[str, np.ndarray] = {}
    for k, name in enumerate(names):
        o = out_of_fold_proba(
            torch.from_numpy(qf[:, [k]]), y, None, folds=5, seed=args.seed, strata=strata, c=0.05
        )
        oof_by_slot[name] = o
        slot_auc[name] = auroc(y, o)
    best = max(slot_auc, key=lambda s: slot_auc[s])
    _log(
        "Qwen-probe OOF AUROC by slot: "
        + ", ".join(f"{k} {v:.3f}" for k, v in slot_auc.items())
        + f" -> {best}"
    )
    bi = names.index(best)
    b_q = oof_by_slot[best]
    # leave-one-source-out: the expert never saw the source it scores
    b_loso = np.full(len(y), np.nan)
    for grp in GROUPS:
        held = g == grp
        if held.any() and len(np.unique(y[~held])) == 2:
            m = SafetyProbe(c=0.05, seed=args.seed).fit(
                torch.from_numpy(qf[~held][:, [bi]]), y[~held]
            )
            b_loso[held] = m.predict_proba(torch.from_numpy(qf[held][:, [bi]]))
    b_combo = oof_logistic(np.c_[logit, _logit(b_q)], y, strata, seed=args.seed + 1)

    experts = {
        "judge_raw": b_judge,
        "judge_platt": b_platt,
        "qprobe_oof": b_q,
        "qprobe_loso": b_loso,
        "judge+qprobe_oof": b_combo,
    }
    diag = {k: expert_diagnostics(y, p, b, g) for k, b in experts.items()}
    per_source = {
        grp: {
            "n": int((g == grp).sum()),
            "probe": auroc(y[g == grp], p[g == grp]),
            **{k: auroc(y[g == grp], b[g == grp]) for k, b in experts.items()},
        }
        for grp in GROUPS
    }
    per_source["all"] = {
        "n": len(y),
        "probe": auroc(y, p),
        **{k: auroc(y, b) for k, b in experts.items()},
    }

    # judge-prompt vs plain-prompt features for the Qwen probe (subset)
    sub = pil.groupby("group", sort=False).head(args.plain_per_group).index.to_numpy()
    plain_cmp: dict[str, Any] = {"n": len(sub)}
    if args.plain_per_group > 0:
        _, qf_plain, _ = qwen_outputs(
            pil.loc[sub, "text"].tolist(), pil.loc[sub, "hash"].tolist(), "plain"
        )
        for k, name in enumerate(names):
            res = {}
            for tag, feats in (("judge_prompt", qf[sub]), ("plain_prompt", qf_plain)):
                o = out_of_fold_proba(
                    torch.from_numpy(feats[:, [k]]),
                    y[sub],
                    None,
                    folds=5,
                    seed=args.seed,
                    strata=strata[sub],
                    c=0.05,
                )
                res[tag] = auroc(y[sub], o)
            plain_cmp[name] = res
        _log("judge vs plain prompt features: " + json.dumps(plain_cmp))

    a = f"{ALPHA:g}"
    strong = {k: diag[k]["cascade"][a]["gap"] for k in ("qprobe_oof", "judge+qprobe_oof")}
    strong_pick = max(strong, key=lambda k: diag[k]["auroc_expert"])
    go = max(strong.values()) >= GO_GAP
    weak_pick = (
        "judge_platt"
        if diag["judge_platt"]["cascade"][a]["ceiling"]
        >= diag["judge_raw"]["cascade"][a]["ceiling"]
        else "judge_raw"
    )
    result = {
        "rows": len(y),
        "per_group": args.per_group,
        "probe_layer": probe.layer,
        "probe_train_rows": len(trn),
        "qwen_slot_oof_auroc": slot_auc,
        "chosen_slot": best,
        "per_source_auroc": per_source,
        "experts": diag,
        "plain_vs_judge_prompt_features": plain_cmp,
        "go": bool(go),
        "decision": {"strong": strong_pick, "weak": weak_pick, "slot": best, "gap_at_0.3": strong},
    }
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "pilot.json").write_text(
        json.dumps(result, indent=2, allow_nan=True) + "\n", encoding="utf-8"
    )
    (OUT_DIR / "PILOT.md").write_text(_markdown(result), encoding="utf-8")
    _log(f"{'GO' if go else 'NO-GO'}: gaps at alpha 0.3 {strong}; wrote {OUT_DIR / 'pilot.json'}")
    print(_markdown(result))
    return 0 if go else 1


def _f(v: Any) -> str:
    return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.3f}"


def _markdown(r: dict[str, Any]) -> str:
    ex = list(r["experts"])
    lines = [
        "# Demo-table pilot (issue 12, part 1)",
        "",
        f"Generated by `scripts/pilot_demo_experts.py`: {r['rows']} pilot rows (≤ {r['per_group']} per source), "
        f"SmolLM2 safety probe trained on {r['probe_train_rows']} neuralchemy rows only (layer {r['probe_layer']}); "
        "Qwen probes are out of fold (5-fold, strata source × label) or leave-one-source-out (`loso`).",
        "",
        "## Per-source AUROC",
        "",
        "| source | n | probe | " + " | ".join(ex) + " |",
        "|---|---|---|" + "---|" * len(ex),
    ]
    for grp, row in r["per_source_auroc"].items():
        lines.append(
            f"| {grp} | {row['n']} | {_f(row['probe'])} | "
            + " | ".join(_f(row[k]) for k in ex)
            + " |"
        )
    lines += [
        "",
        "## Delegation structure and the x-measurable ceiling",
        "",
        "Cascade AUROC when the top α of rows is delegated by the oracle `(p + b − 1)(b − p)` (ceiling) "
        "or by `−|p − ½|` (uncertainty).",
        "",
        "| expert | AUROC | P(v>0) | corr(p,b) | mean v | ceiling α=0.3 | uncertainty α=0.3 | gap α=0.3 | gap α=0.1 | gap α=0.5 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for k, d in r["experts"].items():
        c = d["cascade"]
        lines.append(
            f"| {k} | {_f(d['auroc_expert'])} | {_f(d['p_v_pos'])} | {_f(d['corr_p_b'])} | {_f(d['mean_v'])} | "
            f"{_f(c['0.3']['ceiling'])} | {_f(c['0.3']['uncertainty'])} | {c['0.3']['gap']:+.3f} | "
            f"{c['0.1']['gap']:+.3f} | {c['0.5']['gap']:+.3f} |"
        )
    lines += ["", "## Qwen-probe feature slot (OOF AUROC, judge-prompt pass)", ""]
    lines.append(
        ", ".join(f"{k}: {_f(v)}" for k, v in r["qwen_slot_oof_auroc"].items())
        + f"; chosen: **{r['chosen_slot']}**"
    )
    pc = r["plain_vs_judge_prompt_features"]
    if len(pc) > 1:
        lines += [
            "",
            f"## Judge-prompt vs plain-prompt features ({pc['n']} rows, OOF AUROC)",
            "",
            "| slot | judge prompt | plain prompt |",
            "|---|---|---|",
        ]
        for k, v in pc.items():
            if k != "n":
                lines.append(f"| {k} | {_f(v['judge_prompt'])} | {_f(v['plain_prompt'])} |")
    d = r["decision"]
    lines += [
        "",
        f"## Decision: **{'GO' if r['go'] else 'NO-GO'}**",
        "",
        f"Strong-expert gaps (ceiling − uncertainty) at α = 0.3: {json.dumps({k: round(v, 4) for k, v in d['gap_at_0.3'].items()})} "
        f"(condition ≥ {GO_GAP}). Full build: strong expert `{d['strong']}` (feature slot `{d['slot']}`), weak expert `{d['weak']}`.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

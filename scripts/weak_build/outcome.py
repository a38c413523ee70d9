"""The weak-expert study against its pre-registered criteria (docs/concepts.md).

Runs ``ctd run`` on ``specs/weak-expert.yaml`` (paper protocol, ``split: opt_ht``) and
``specs/weak-expert-none.yaml`` (``split: none``), then prints and writes
``data/weak_build/outcome.json``: Δ = CTD − calibrated uncertainty (AUROC, mean and 95% interval
over the 200 splits) at budgets 0.1 and 0.3 per expert and protocol, criteria C1–C3, per-source
delegation rates, and AUROCs on the pool per source (probe, experts, refit-probe control).

Command (repository root)::

    .nox/tests/bin/python scripts/weak_build/outcome.py
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SPECS = {
    "opt_ht": ROOT / "specs" / "weak-expert.yaml",
    "none": ROOT / "specs" / "weak-expert-none.yaml",
}
TABLE = ROOT / "data" / "weak_build" / "weak_scores.parquet"
HEADLINE = (0.1, 0.3)


def binomial_tolerance(trials: int, delta: float, false_alarm: float = 0.001) -> int:
    """Smallest k with P(Bin(trials, δ) > k) ≤ false_alarm (as ``tests/conftest.py``)."""
    from scipy import stats

    k = int(stats.binom.ppf(1.0 - false_alarm, trials, delta))
    while stats.binom.sf(k, trials, delta) > false_alarm:
        k += 1
    return k


def run_study(spec: Path, out: Path) -> dict[str, Any]:
    """``ctd run spec -o out``; the parsed ``study.json``."""
    from ctd_stats.cli.entry import main

    code = main(["run", str(spec), "-o", str(out)])
    if code not in (0, 1):
        raise RuntimeError(f"ctd run {spec} exited {code}")
    return json.loads((out / "study.json").read_text(encoding="utf-8"))


def summarise(study: dict[str, Any]) -> dict[str, Any]:
    """Headline numbers and criteria inputs of one study."""
    out: dict[str, Any] = {}
    for e in study["experts"]:
        bud = np.asarray(e["budgets"])
        at = {a: int(np.argmin(np.abs(bud - a))) for a in HEADLINE}
        g = e["groups"]
        k = binomial_tolerance(e["guarantee_check"]["trials"], e["delta"])
        out[e["expert"]] = {
            "probe_auroc": e["probe_only"]["auroc"],
            "expert_auroc": e["expert_only"]["auroc"],
            "dv_spearman": e.get("dv_spearman"),
            **{
                f"{a:g}": {
                    "ctd": e["auroc"]["ctd"][i],
                    "unc_calibrated": e["auroc"]["unc_calibrated"][i],
                    "oracle": e["auroc"]["oracle"][i],
                    "delta": e["auroc_delta"]["ctd"][i]["mean"],
                    "ci95": e["auroc_delta"]["ctd"][i]["ci95"],
                    "rate_ctd": e["rate"]["ctd"][i],
                    "rate_unc": e["rate"]["unc_calibrated"][i],
                    "group_rate_ctd": dict(zip(g["names"], g["rate"]["ctd"][i], strict=True)),
                    "group_rate_unc": dict(
                        zip(g["names"], g["rate"]["unc_calibrated"][i], strict=True)
                    ),
                }
                for a, i in at.items()
            },
            "group_mean_v": dict(zip(g["names"], g["mean_v"], strict=True)),
            "group_sizes": dict(zip(g["names"], g["sizes"] or [], strict=False)),
            "violations": e["guarantee_check"]["violations"],
            "violation_tolerance": k,
        }
    return out


def criteria(s: dict[str, Any]) -> dict[str, Any]:
    """C1–C3 of the pre-registration on one protocol's summary."""
    w, st = s["weak"], s["strong"]
    c1 = w["0.3"]["delta"] > st["0.3"]["delta"]
    hurt = [k for k, v in w["group_mean_v"].items() if v < 0]
    c2i = w["0.3"]["rate_ctd"] < 0.3
    per = {k: (w["0.3"]["group_rate_ctd"][k], w["0.3"]["group_rate_unc"][k]) for k in hurt}
    c2ii = all(c < 0.3 and c < u for c, u in per.values()) if hurt else None
    c3 = all(max(x["violations"]) <= x["violation_tolerance"] for x in (w, st))
    return {
        "C1": {
            "pass": bool(c1),
            "delta_weak": w["0.3"]["delta"],
            "delta_strong": st["0.3"]["delta"],
            "at_0.1": {"delta_weak": w["0.1"]["delta"], "delta_strong": st["0.1"]["delta"]},
        },
        "C2": {
            "pass": bool(c2i and (c2ii is not False)),
            "overall_rate": w["0.3"]["rate_ctd"],
            "hurting_sources": hurt,
            "rates_ctd_unc": per,
            "testable": bool(hurt),
        },
        "C3": {
            "pass": bool(c3),
            "max_violations": {k: max(s[k]["violations"]) for k in ("strong", "weak")},
            "tolerance": w["violation_tolerance"],
        },
    }


def pool_aurocs() -> dict[str, Any]:
    """AUROC on the pool rows, overall and per source, of every probability column."""
    import pandas as pd

    sys.path.insert(0, str(ROOT / "scripts"))
    from demo_build.metrics import auroc

    t = pd.read_parquet(TABLE)
    pool = t[t["split"] == ""]
    cols = [
        c
        for c in (
            "probe_prob",
            "expert_prob__strong",
            "expert_prob__weak",
            "probe_prob_refit",
            "probe_prob_noshift",
        )
        if c in t
    ]
    res: dict[str, Any] = {
        "n": len(pool),
        "n_by_group": {
            "all": len(pool),
            **{str(k): int(v) for k, v in pool.groupby("group").size().items()},
        },
    }
    for c in cols:
        res[c] = {
            "all": auroc(pool["label"], pool[c]),
            **{g: auroc(d["label"], d[c]) for g, d in pool.groupby("group")},
        }
    return res


def _f(x: float, sign: bool = False) -> str:
    return f"{x:+.3f}" if sign else f"{x:.3f}"


def markdown(result: dict[str, Any]) -> str:
    """The three machine-readable tables of the docs' Outcome section (checked by the tests)."""
    out = [
        "<!-- weak-expert-outcome: begin -->",
        "| protocol | expert | budget | CTD | calibrated uncertainty | Δ | 95% interval | CTD rate |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for proto in ("opt_ht", "none"):
        s = result["protocols"][proto]["summary"]
        for expert in ("strong", "weak"):
            for a in ("0.1", "0.3"):
                r = s[expert][a]
                out.append(
                    f"| {proto} | {expert} | {a} | {_f(r['ctd'])} | {_f(r['unc_calibrated'])} | {_f(r['delta'], True)} "
                    f"| [{_f(r['ci95'][0], True)}, {_f(r['ci95'][1], True)}] | {_f(r['rate_ctd'])} |"
                )
    out += [
        "<!-- weak-expert-outcome: end -->",
        "",
        "<!-- weak-expert-groups: begin -->",
        "| source | pool rows | mean v (weak) | CTD rate (weak) | uncertainty rate (weak) | mean v (strong) | CTD rate (strong) | uncertainty rate (strong) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    s = result["protocols"]["opt_ht"]["summary"]
    for g in sorted(s["weak"]["group_mean_v"]):
        w, st = s["weak"], s["strong"]
        out.append(
            f"| {g} | {w['group_sizes'][g]} | {_f(w['group_mean_v'][g], True)} | {_f(w['0.3']['group_rate_ctd'][g])} "
            f"| {_f(w['0.3']['group_rate_unc'][g])} | {_f(st['group_mean_v'][g], True)} | {_f(st['0.3']['group_rate_ctd'][g])} "
            f"| {_f(st['0.3']['group_rate_unc'][g])} |"
        )
    out += [
        "<!-- weak-expert-groups: end -->",
        "",
        "<!-- weak-expert-auroc: begin -->",
        "| source | pool rows | probe | strong expert | weak judge | refit probe (control) |",
        "|---|---|---|---|---|---|",
    ]
    pa = result["pool_auroc"]
    for g in ["all", *sorted(k for k in pa["probe_prob"] if k != "all")]:
        cols = [
            pa[c][g]
            for c in ("probe_prob", "expert_prob__strong", "expert_prob__weak", "probe_prob_refit")
        ]
        out.append(f"| {g} | {pa['n_by_group'][g]} | " + " | ".join(_f(c) for c in cols) + " |")
    out.append("<!-- weak-expert-auroc: end -->")
    return "\n".join(out)


def main() -> int:
    """Run both studies, print the criteria, write outcome.json."""
    os.chdir(ROOT)
    result: dict[str, Any] = {"pool_auroc": pool_aurocs(), "protocols": {}}
    for name, spec in SPECS.items():
        study = run_study(spec, ROOT / "out" / f"weak-expert-{name}")
        s = summarise(study)
        result["protocols"][name] = {
            "summary": s,
            "criteria": criteria(s),
            "controls": study.get("controls"),
            "verdict": (study.get("verdict") or {}).get("text"),
        }
    path = ROOT / "data" / "weak_build" / "outcome.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    print(json.dumps({k: v["criteria"] for k, v in result["protocols"].items()}, indent=1))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

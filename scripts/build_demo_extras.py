"""Two products of the demo build that need the activations (issue 12, parts 3 and 4).

1. **DV learning curve.** For each expert of the demo table, DV probes (:class:`probes.dv_probe.DVProbe`,
   SmolLM2 activations + p, |p − ½|) are refitted on 250, 500 and 1,000 dev rows (or all dev rows if
   fewer; 3 random subsets each, seeds 0–2) and scored on the pool: Spearman(d, v) and the cascade
   AUROC when the top 30% of pool rows by d are delegated, beside uncertainty's and the
   x-measurable ceiling's. Written to ``data/demo_build/dv_learning_curve.json`` and into the demo
   table's metadata (``ctd.dv_learning_curve``), where the study report shows it.

2. **Semi-synthetic table** (``ctd_stats/data/semi_synthetic_scores.parquet``, read by
   ``specs/semi-synthetic.yaml``): the demo table's real rows, labels, sources and safety-probe
   scores, with *synthetic* experts and DV probes trained on the real activations to predict the
   synthetic delegation value. A synthetic expert has a target AUROC A_g per source g: its score is
   z = μ_g (2y − 1) + ε, ε ~ N(0, 1), μ_g = Φ⁻¹(A_g)/√2 (so AUROC within g is A_g), and its
   probability b = sigmoid(2 μ_g z) (calibrated for balanced classes). Pre-registered scenarios,
   written here before any result was seen:

   * ``measured`` — A_g = the real judge's (weak expert's) pool AUROC on source g. Expected: CTD
     beats calibrated uncertainty (the value of delegating follows the source, which the activations
     reveal).
   * ``uniform`` (null) — every source at the judge's pooled AUROC. Expected: CTD ties calibrated
     uncertainty (value depends on x only through p).
   * ``no_better`` (null) — A_g = the safety probe's own pool AUROC on source g. Expected: no method
     gains much over the probe; CTD ties calibrated uncertainty.

   The seeds are fixed (expert draws: seed 20261202 + scenario index). These results are labelled
   semi-synthetic everywhere and never quoted as the demo's headline.

   Outcome (first run): ``measured`` as expected; the two "null" expectations **failed** — CTD beat
   calibrated uncertainty by +0.060 (``uniform``) and +0.041 (``no_better``) AUROC at budget 0.3,
   paired 95% intervals above 0. The premise was wrong, not the procedure: the safety probe is
   shifted, so its quality differs by source (pool AUROC 0.43–0.98), and an expert of uniform
   strength (or of the probe's own strength, with independent errors) is then still worth most
   where the probe is confidently wrong, which the activations reveal and |p − ½| does not. A
   uniform *expert* is not a uniform *value of delegating*. Added after that run, as the genuine
   null: ``probe_copy`` — the expert returns the probe's own probability (b = p, v ≡ 0: nothing to
   gain anywhere); CTD must tie exactly.

Command (repository root, after ``scripts/build_demo_table.py`` wrote the demo table; a few minutes,
the SmolLM2 activations come from the local cache)::

    .nox/tests/bin/python -W ignore scripts/build_demo_extras.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

SCENARIOS: tuple[str, ...] = ("measured", "uniform", "no_better", "probe_copy")
CURVE_ROWS: tuple[int, ...] = (250, 500, 1000)
CURVE_REPEATS = 3
CURVE_BUDGET = 0.3
SEED = 20261202


def _auroc(y: np.ndarray, s: np.ndarray) -> float:
    from demo_build.metrics import auroc

    return float(auroc(y, s))


def synthetic_expert(
    y: np.ndarray, groups: np.ndarray, target: dict[str, float], seed: int
) -> np.ndarray:
    """P(unsafe) of a synthetic expert with AUROC ``target[g]`` within each source g (module docstring)."""
    from scipy.special import expit
    from scipy.stats import norm

    rng = np.random.default_rng(seed)
    mu = np.array([norm.ppf(min(max(target[g], 0.5), 0.999)) / np.sqrt(2.0) for g in groups])
    z = mu * (2 * y - 1) + rng.normal(size=y.size)
    return np.asarray(expit(2.0 * mu * z), dtype=np.float64)


def learning_curve(x: Any, frame: Any, experts: list[str]) -> dict[str, Any]:
    """DV learning curve per expert (module docstring, part 1)."""
    from demo_build.metrics import cascade_auroc, ceiling_score, uncertainty_score
    from demo_build.smol import SMOL_LAYERS
    from scipy.stats import spearmanr

    from probes.linear import DVProbe

    y = frame["label"].to_numpy().astype(int)
    p = frame["probe_prob"].to_numpy()
    dev = np.flatnonzero((frame["split"] == "dev").to_numpy())
    pool = (frame["split"] == "").to_numpy()
    extra = np.c_[p, np.abs(p - 0.5)]
    out: dict[str, Any] = {
        "budget": CURVE_BUDGET,
        "repeats": CURVE_REPEATS,
        "n_dev": int(dev.size),
        "n_pool": int(pool.sum()),
        "experts": {},
    }
    for name in experts:
        b = frame[f"expert_prob__{name}"].to_numpy()
        v = (2 * y - 1) * (b - p)
        rows = []
        for m in sorted({min(r, dev.size) for r in CURVE_ROWS}):
            sp, au = [], []
            for rep in range(CURVE_REPEATS if m < dev.size else 1):
                idx = np.sort(np.random.default_rng(rep).permutation(dev)[:m])
                dvp = DVProbe().fit(x[idx], v[idx], list(SMOL_LAYERS), extra=extra[idx])
                d = dvp.predict(x[pool], extra=extra[pool])
                sp.append(float(spearmanr(d, v[pool]).statistic))
                au.append(cascade_auroc(y[pool], p[pool], b[pool], d, CURVE_BUDGET))
            rows.append(
                {
                    "dev_rows": int(m),
                    "spearman_pool": float(np.mean(sp)),
                    "cascade_auroc": float(np.mean(au)),
                    "subsets": len(sp),
                }
            )
        out["experts"][name] = {
            "curve": rows,
            "uncertainty_auroc": cascade_auroc(
                y[pool], p[pool], b[pool], uncertainty_score(p[pool]), CURVE_BUDGET
            ),
            "ceiling_auroc": cascade_auroc(
                y[pool], p[pool], b[pool], ceiling_score(p[pool], b[pool]), CURVE_BUDGET
            ),
        }
    return out


def semi_synthetic(x: Any, frame: Any) -> tuple[Any, dict[str, Any]]:
    """The semi-synthetic table and its description (module docstring, part 2)."""
    from demo_build.smol import SMOL_LAYERS

    from probes.linear import DVProbe

    y = frame["label"].to_numpy().astype(int)
    p = frame["probe_prob"].to_numpy()
    g = frame["group"].to_numpy().astype(str)
    pool = (frame["split"] == "").to_numpy()
    dev = (frame["split"] == "dev").to_numpy()
    judge = frame["expert_prob__weak"].to_numpy()
    sources = sorted(set(g[pool]))
    targets = {
        "measured": {s: _auroc(y[pool & (g == s)], judge[pool & (g == s)]) for s in sources},
        "uniform": dict.fromkeys(sources, _auroc(y[pool], judge[pool])),
        "no_better": {s: _auroc(y[pool & (g == s)], p[pool & (g == s)]) for s in sources},
    }
    targets["probe_copy"] = targets["no_better"]
    out = frame[["id", "split", "group", "label", "probe_prob"]].copy()
    extra = np.c_[p, np.abs(p - 0.5)]
    realised: dict[str, Any] = {}
    for k, name in enumerate(SCENARIOS):
        if name == "probe_copy":
            b = p.copy()
        else:
            b = synthetic_expert(y, g, {s: targets[name].get(s, 0.5) for s in set(g)}, SEED + k)
        v = (2 * y - 1) * (b - p)
        d = (
            DVProbe()
            .fit(x[dev], v[dev], list(SMOL_LAYERS), extra=extra[dev])
            .predict(x, extra=extra)
        )
        out[f"expert_prob__{name}"] = b
        out[f"dv_score__{name}"] = d
        realised[name] = {
            "target_auroc_by_source": targets[name],
            "realised_auroc_by_source": {
                s: _auroc(y[pool & (g == s)], b[pool & (g == s)]) for s in sources
            },
            "pool_auroc": _auroc(y[pool], b[pool]),
        }
    return out, {
        "scenarios": realised,
        "seed": SEED,
        "built_from": "ctd_stats/data/demo_scores.parquet",
        "note": "SEMI-SYNTHETIC: real labels, sources, probe scores and activations; synthetic experts",
    }


def _write_parquet(frame: Any, path: Path, metadata: dict[bytes, bytes]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    md = dict(table.schema.metadata or {})
    md.update(metadata)
    tmp = path.with_suffix(".tmp.parquet")
    pq.write_table(table.replace_schema_metadata(md), tmp)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    import pandas as pd
    import pyarrow.parquet as pq
    from demo_build import OUT_DIR, ROOT
    from demo_build.data import build_plan
    from demo_build.smol import smol_features

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", default=str(ROOT / "ctd_stats" / "data" / "demo_scores.parquet"))
    ap.add_argument(
        "--semi-out", default=str(ROOT / "ctd_stats" / "data" / "semi_synthetic_scores.parquet")
    )
    ap.add_argument("--curve-out", default=str(OUT_DIR / "dv_learning_curve.json"))
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    table_path = Path(args.table)
    frame = pd.read_parquet(table_path)
    plan = build_plan(seed=0).set_index("id")
    missing = set(frame["id"]) - set(plan.index)
    if missing:
        raise SystemExit(
            f"{len(missing)} table ids are not in the build plan (e.g. {sorted(missing)[:3]})"
        )
    texts = plan.loc[frame["id"], "text"].tolist()
    hashes = plan.loc[frame["id"], "hash"].tolist()
    x = np.asarray(smol_features(texts, hashes, OUT_DIR / "smol_cache"), dtype=np.float32)
    experts = [c.split("__", 1)[1] for c in frame.columns if c.startswith("dv_score__")]

    curve = learning_curve(x, frame, experts)
    Path(args.curve_out).write_text(json.dumps(curve, indent=2) + "\n", encoding="utf-8")
    md = dict(pq.read_schema(table_path).metadata or {})
    md[b"ctd.dv_learning_curve"] = json.dumps(curve).encode()
    _write_parquet(frame, table_path, md)
    for name, e in curve["experts"].items():
        pts = ", ".join(
            f"{r['dev_rows']}: ρ={r['spearman_pool']:.3f} AUROC={r['cascade_auroc']:.3f}"
            for r in e["curve"]
        )
        print(
            f"{name}: {pts}; uncertainty {e['uncertainty_auroc']:.3f}, ceiling {e['ceiling_auroc']:.3f}"
        )

    semi, info = semi_synthetic(x, frame)
    md_semi = {k: v for k, v in md.items() if k in (b"ctd.probes",)}
    md_semi[b"ctd.experts"] = json.dumps(
        {
            name: {
                "seconds_per_call": None,
                "tokens_per_call": None,
                "description": f"SEMI-SYNTHETIC expert, scenario '{name}' (scripts/build_demo_extras.py)",
            }
            for name in SCENARIOS
        }
    ).encode()
    md_semi[b"ctd.semi_synthetic"] = json.dumps(info).encode()
    _write_parquet(semi, Path(args.semi_out), md_semi)
    for name, r in info["scenarios"].items():
        print(
            f"semi-synthetic {name}: pool AUROC {r['pool_auroc']:.3f}; by source "
            + ", ".join(f"{s} {a:.2f}" for s, a in r["realised_auroc_by_source"].items())
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Compute the control columns for an existing demo table without refitting its probes and experts.

``scripts/build_demo_table.py``'s finalize computes the control columns
(:func:`demo_build.controls.control_columns`) after fitting everything else. This script runs the
same function on an already-built table: the row plan (``build_plan``) gives every row's text and
role, the SmolLM2 features come from the local cache (computed if absent), ``probe_prob`` and each
``expert_prob__<name>`` are read from the table, and the control columns are added to a copy written
to ``--out`` (the table's own columns and metadata unchanged, plus ``ctd.controls``). Then
``scripts/ship_demo_table.py --built OUT`` ships them after its reproduction check.

    nice -n 5 .nox/tests/bin/python -W ignore scripts/demo_build/add_controls.py --out /tmp/with_controls.parquet
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(1, str(HERE.parents[1]))


def _log(msg: str) -> None:
    print(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {msg}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Add the control columns; exit code 0."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch

    from ctd_stats.stats.metrics import auroc
    from demo_build import OUT_DIR, ROOT
    from demo_build.controls import N_BOOT, control_columns
    from demo_build.data import build_plan
    from demo_build.smol import SMOL_LAYERS, smol_features

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", default=str(ROOT / "ctd_stats" / "data" / "demo_scores.parquet"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    table = pq.read_table(args.table)
    frame = table.to_pandas()
    plan = build_plan(seed=args.seed).set_index("id")
    rows = plan.loc[frame["id"].to_numpy()]
    if not (rows["label"].to_numpy() == frame["label"].to_numpy()).all():
        raise SystemExit(
            "the row plan's labels differ from the table's: not the table of this plan"
        )
    role = rows["role"].to_numpy()
    y = frame["label"].to_numpy().astype(int)
    g = frame["group"].to_numpy().astype(str)
    p = frame["probe_prob"].to_numpy()
    experts = {
        c.split("__", 1)[1]: frame[c].to_numpy()
        for c in frame.columns
        if c.startswith("expert_prob__")
    }
    _log(f"{len(frame)} rows, experts {list(experts)}; features (cache {OUT_DIR / 'smol_cache'})")
    xs = torch.from_numpy(
        smol_features(rows["text"].tolist(), rows["hash"].tolist(), OUT_DIR / "smol_cache")
    )
    dev, pool, pt = role == "dev", role == "pool", role == "probe_train"
    cols = control_columns(
        xs,
        y,
        g,
        p,
        experts,
        dev=dev,
        noshift_train=np.isin(role, ["probe_train", "expert_train"]),
        layers=list(SMOL_LAYERS),
        n_boot=N_BOOT,
        seed=0,
        log=_log,
    )
    _log(
        f"pool AUROC: probe {auroc(y[pool], p[pool]):.3f}, refit {auroc(y[pool], cols['probe_prob_refit'][pool]):.3f}, "
        f"no-shift {auroc(y[pool], cols['probe_prob_noshift'][pool]):.3f}"
    )
    out = table
    for name, values in cols.items():
        out = out.append_column(name, pa.array(values, type=pa.float64()))
    md = {k: v for k, v in (table.schema.metadata or {}).items() if k != b"pandas"}
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
            "built_by": "scripts/demo_build/add_controls.py",
        }
    ).encode()
    path = Path(args.out)
    tmp = path.with_suffix(".tmp.parquet")
    pq.write_table(out.replace_schema_metadata(md), tmp)
    os.replace(tmp, path)
    _log(f"wrote {path} ({len(cols)} control columns)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Add the control columns of a rebuilt demo table to the shipped one, keeping every shipped column.

``scripts/build_demo_table.py`` writes ``data/demo_build/demo_scores.parquet`` with the table's
columns and the control columns (``scripts/demo_build/controls.py``). The shipped table
(``ctd_stats/data/demo_scores.parquet``) also carries metadata added later (the DV learning curve of
``scripts/build_demo_extras.py``). This script checks that the rebuild reproduces the shipped
columns (same ids, splits, groups and labels; every float column within ``--tol``; prints the
largest absolute difference per column), then writes the shipped table with its own columns and
metadata unchanged plus the rebuilt control columns and their ``ctd.controls`` metadata (atomic).

    .nox/tests/bin/python scripts/ship_demo_table.py
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CONTROL_KEY = b"ctd.controls"


def main(argv: list[str] | None = None) -> int:
    """Compare, then write; exit code 1 if a shipped column is not reproduced within ``--tol``."""
    import pyarrow.parquet as pq

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--built", default=str(ROOT / "data" / "demo_build" / "demo_scores.parquet"))
    ap.add_argument("--shipped", default=str(ROOT / "ctd_stats" / "data" / "demo_scores.parquet"))
    ap.add_argument(
        "--tol",
        type=float,
        default=1e-4,
        help="largest absolute difference allowed per float column",
    )
    ap.add_argument(
        "--check-only", action="store_true", help="compare the shipped columns only; write nothing"
    )
    args = ap.parse_args(argv)
    built, shipped = pq.read_table(args.built), pq.read_table(args.shipped)
    base = [
        c
        for c in shipped.column_names
        if not c.startswith(("probe_prob_", "dv_score_refit", "dv_score_boot", "dv_score_noshift"))
    ]
    ok = True
    for c in base:
        a = shipped.column(c).to_numpy(zero_copy_only=False)
        b = built.column(c).to_numpy(zero_copy_only=False)
        if a.dtype.kind == "f":
            both_nan = np.isnan(a) & np.isnan(b)
            diff = float(np.max(np.where(both_nan, 0.0, np.abs(a - b)))) if a.size else 0.0
            print(f"{c}: max |shipped − rebuilt| = {diff:.3g}")
            ok &= bool(np.isfinite(diff) and diff <= args.tol)
        else:
            same = bool(np.array_equal(a.astype(str), b.astype(str)))
            print(f"{c}: {'identical' if same else 'DIFFERENT'}")
            ok &= same
    if not ok:
        print(
            f"the rebuild does not reproduce the shipped columns within {args.tol:g}; nothing written"
        )
        return 1
    if args.check_only:
        print(f"the rebuild reproduces every shipped column within {args.tol:g}")
        return 0
    controls = [c for c in built.column_names if c not in base]
    out = shipped.select(base)
    for c in controls:
        out = out.append_column(c, built.column(c))
    md = {
        k: v for k, v in (shipped.schema.metadata or {}).items() if k != b"pandas"
    }  # stale column list
    md[CONTROL_KEY] = (built.schema.metadata or {})[CONTROL_KEY]
    path = Path(args.shipped)
    tmp = path.with_suffix(".tmp.parquet")
    pq.write_table(out.replace_schema_metadata(md), tmp)
    os.replace(tmp, path)
    print(f"wrote {path}: {len(base)} shipped columns unchanged + {len(controls)} control columns")
    return 0


if __name__ == "__main__":
    sys.exit(main())

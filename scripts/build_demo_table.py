"""Build the demo score table with the product, committing each expert shard as it is written.

The table is ``ctd scores specs/demo-full.yaml``: every step (the declared shift, the row roles,
the Qwen2.5-Coder-1.5B judge-prompt pass in resumable shards, the Qwen probe expert and the
Platt-scaled judge, the DV probes, the control columns) is declared in that spec and run by
:func:`probes.role_build.build_role_table`. This script only adds what a build inside this
repository does: each new shard of the expert pass (``data/demo_build/qwen15/shard-NNNNN.npz``) is
committed on its own (``git commit -- <shard>``) right after it is written, so an interrupted
multi-hour build loses at most one shard, and the table is written to
``data/demo_build/demo_scores.parquet`` with ``build_summary.json`` beside it.
``scripts/ship_demo_table.py --check-only`` then compares it with the shipped table.

Command (repository root; with the committed shards, minutes; from scratch, about 2.5 h on 2 free
CPU cores: 28 shards of 100 texts at about 290 s each)::

    nohup .nox/tests/bin/python -W ignore scripts/build_demo_table.py > data/demo_build/build.log 2>&1 &

Resume after an interruption: run the same command again.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _log(msg: str) -> None:
    print(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {msg}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the build; returns the exit code."""
    from demo_build import OUT_DIR, ROOT
    from demo_build.data import demo_probes_spec
    from demo_build.qwen import git_commit

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(OUT_DIR / "demo_scores.parquet"))
    ap.add_argument(
        "--no-commit", action="store_true", help="do not git-commit shards and the table"
    )
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from probes.role_build import build_role_table

    commit = not args.no_commit

    def on_shard(path: Path, n: int, secs: float) -> None:
        if commit:
            index = int(path.stem.split("-")[1])
            git_commit(path, f"Demo build: expert outputs shard {index}", ROOT, log=_log)

    built = build_role_table(demo_probes_spec(), log=_log, on_shard=on_shard)
    out = built.write(args.out)
    summary = out.parent / "build_summary.json"
    summary.write_text(
        json.dumps(built.summary.model_dump(), indent=2, allow_nan=True) + "\n", encoding="utf-8"
    )
    _log(f"wrote {out} ({len(built.frame)} rows) and {summary}")
    if commit:
        for path in (out, summary):
            git_commit(path, "Demo build: score table", ROOT, log=_log)
    return 0


if __name__ == "__main__":
    sys.exit(main())

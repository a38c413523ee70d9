"""Regenerate the demo score table shipped in ``ctd_stats/data/demo_scores.parquet``.

Runs the whole probes layer of ``specs/demo-full.yaml`` with the real offline models (SmolLM2-135M
probed; Qwen2.5-Coder-1.5B + probe as the strong expert; SmolLM2 prompted as the weak judge) and
writes the table (ids, splits, groups, labels, scores; no texts) with per-expert costs in its
Parquet metadata. Usage (from the repository root)::

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/build_demo_table.py \
        [--spec specs/demo-full.yaml] [--out ctd_stats/data/demo_scores.parquet]

About an hour on 2 CPU cores the first time (dominated by the 1.5B model); minutes when cached.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    """Build the table and print its summary; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default=str(ROOT / "specs" / "demo-full.yaml"))
    parser.add_argument("--out", default=str(ROOT / "ctd_stats" / "data" / "demo_scores.parquet"))
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

    import yaml

    from probes.pipeline import build_score_table
    from probes.spec import ProbesSpec

    raw = yaml.safe_load(Path(args.spec).read_text(encoding="utf-8"))
    spec = ProbesSpec.model_validate(raw["probes"])
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:7.1f} s] {msg}", flush=True)

    result = build_score_table(spec, log=log)
    path = result.write(args.out)
    log(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB, {len(result.frame)} rows)")
    print(result.summary.model_dump_json(indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

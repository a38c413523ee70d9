"""Building blocks of the weak-expert score table (issue 18 item 3; pre-registered in docs/concepts.md).

Reuses :mod:`demo_build` (sources, row plan, SmolLM2 features, the shard store, metrics) and adds
the row roles of the weak-expert setting (:mod:`weak_build.plan`) and a zero-shot judge runner for
any registered instruct model (:mod:`weak_build.judge`). The entry point is
``scripts/weak_build/build.py``.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT_DIR = ROOT / "data" / "weak_build"

__all__ = ["OUT_DIR", "ROOT"]

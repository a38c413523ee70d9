"""Helpers of the scripts that study the demo (pilot, extras, weak-expert build) around the product.

The demo table itself is built by the product (``ctd scores specs/demo-full.yaml``;
``scripts/build_demo_table.py`` is a thin caller that commits shards). Here: the row plan read from
that spec (:mod:`demo_build.data`), shard commits (:mod:`demo_build.qwen`), the SmolLM2 feature
cache of the weak-expert build (:mod:`demo_build.smol`), cascade metrics and the shared DV step.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT_DIR = ROOT / "data" / "demo_build"

__all__ = ["OUT_DIR", "ROOT"]

"""Building blocks of the demo score table (issue 12): sources, row plan, Qwen shards, metrics.

Used by ``scripts/pilot_demo_experts.py`` (go/no-go pilot) and ``scripts/build_demo_table.py``
(the full, resumable build). Self-contained apart from :mod:`probes.assets` (offline models and
datasets) and :mod:`probes.linear` (the repository's logistic and ridge probes).
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT_DIR = ROOT / "data" / "demo_build"

__all__ = ["OUT_DIR", "ROOT"]

"""Row roles of the pre-registered weak-expert setting (docs/concepts.md), derived from the demo plan.

The demo plan (:func:`demo_build.data.build_plan`) fixes every text's demo role and build order; this
module re-assigns roles by source so that the safety probe sees only synthetic/templated prompts and
is deployed on real ones:

``probe_train``
    neuralchemy_v1 and rho_refusal rows that are not demo expert_train rows. Pre-registered: all of
    them (1,218 + 258 = 1,476). Reduced before any outcome was computed (CPU contention: 400 short
    texts took 429 s): every rho_refusal row (258) and the first ``N_NEURALCHEMY_PROBE`` = 400
    neuralchemy_v1 rows in the demo plan's order (its 300 probe_train rows, then its stratified build
    order); 658 rows.
``expert_train``
    the demo's expert_train rows (398; the strong Qwen probe expert trains on all of them, the weak
    judge's Platt scaling on the 203 real-source ones, which also carry the precondition check).
``dev`` / ``pool``
    the demo's dev / pool rows of the five real sources (511 / 715).

The demo's probe_train rows of the real sources (300 HarmBench/WildGuard requests) have no strong
expert outputs and are left out. ``judge_order`` is the order in which the judge runs: the real
expert_train rows first (the precondition is decided on them before any dev or pool row is scored),
then dev and pool rows in the demo's build order, so every prefix is stratified by source.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

_SCRIPTS = Path(__file__).resolve().parents[1]
if str(_SCRIPTS) not in sys.path:
    sys.path.insert(0, str(_SCRIPTS))

from demo_build.data import build_plan  # noqa: E402

__all__ = ["N_NEURALCHEMY_PROBE", "REAL", "SYNTHETIC", "weak_plan"]

#: neuralchemy_v1 rows kept for safety-probe training (first in id order); see the module docstring.
N_NEURALCHEMY_PROBE = 400

#: Sources written from templates (safety-probe training only).
SYNTHETIC: tuple[str, ...] = ("neuralchemy_v1", "rho_refusal")
#: Collected, real sources (the deployment stream).
REAL: tuple[str, ...] = ("harmbench", "wildguard", "strongreject_edgy", "toxigen", "pyrit_harm")


def weak_plan(seed: int = 0) -> pd.DataFrame:
    """The weak-expert row plan.

    Parameters
    ----------
    seed : int
        Seed of the demo plan it is derived from.

    Returns
    -------
    pandas.DataFrame
        ``id, text, label, group, hash, role, demo_role, real, order, judge_order`` where ``order``
        is the demo build order (-1 for demo probe_train rows) and ``judge_order`` the 0-based
        position in the judge build (-1 for rows the judge does not score).
    """
    demo = build_plan(seed=seed)
    syn = demo["group"].isin(SYNTHETIC).to_numpy()
    dr = demo["role"].to_numpy()
    role = np.where(
        syn,
        np.where(dr == "expert_train", "expert_train", "probe_train"),
        np.where(dr == "probe_train", "unused", dr),
    )
    df = demo.assign(demo_role=dr, role=role, real=~syn)
    nc = df.index[(df["role"] == "probe_train") & (df["group"] == "neuralchemy_v1")]
    drop = nc[N_NEURALCHEMY_PROBE:]  # df keeps the demo plan's order (order, id)
    df.loc[drop, "role"] = "unused"
    df = df[df["role"] != "unused"].copy()
    first = df["real"] & (df["role"] == "expert_train")
    rest = df["real"] & df["role"].isin(["dev", "pool"])
    a = df[first].sort_values("order", kind="stable").index.tolist()
    b = df[rest].sort_values("order", kind="stable").index.tolist()
    df["judge_order"] = -1
    df.loc[a + b, "judge_order"] = np.arange(len(a) + len(b))
    cols = [
        "id",
        "text",
        "label",
        "group",
        "hash",
        "role",
        "demo_role",
        "real",
        "order",
        "judge_order",
    ]
    return df[cols].reset_index(drop=True)

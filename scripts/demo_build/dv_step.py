"""One step both table builds share: fit an expert's DV probe on the dev rows and diagnose it on the pool.

Used by ``scripts/build_demo_table.py`` (the demo table) and ``scripts/weak_build/table.py`` (the
pre-registered weak-expert table), so the two tables' DV scores and build summaries are computed the
same way.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

__all__ = ["fit_dv_with_diagnostics", "mean_seconds_per_text"]


def fit_dv_with_diagnostics(
    xs: Any,
    y: np.ndarray,
    p: np.ndarray,
    b: np.ndarray,
    groups: np.ndarray,
    dev: np.ndarray,
    pool: np.ndarray,
    extra: np.ndarray,
    layers: list[int],
) -> tuple[np.ndarray, dict[str, Any]]:
    """DV scores ``d`` for every row and the pool diagnostics of the expert ``b``.

    The DV probe (:class:`probes.linear.DVProbe`) regresses ``v = (2y - 1)(b - p)`` on the dev rows'
    activations ``xs`` (plus ``extra`` columns); nothing is fitted on the pool.
    """
    import torch
    from scipy.stats import spearmanr

    from demo_build.metrics import cascade_auroc, expert_diagnostics, uncertainty_score
    from probes.linear import DVProbe

    v = (2 * y - 1) * (b - p)
    dvp = DVProbe().fit(xs[torch.as_tensor(dev)], v[dev], layers, extra=extra[dev])
    d = dvp.predict(xs, extra=extra)
    yp, pp, bp, dp = y[pool], p[pool], b[pool], d[pool]
    diag = expert_diagnostics(yp, pp, bp, groups[pool])
    diag["dv_vs_uncertainty"] = {
        f"{a:g}": {
            "dv": cascade_auroc(yp, pp, bp, dp, a),
            "uncertainty": cascade_auroc(yp, pp, bp, uncertainty_score(pp), a),
        }
        for a in (0.1, 0.2, 0.3, 0.5)
    }
    diag.update(
        dv_layer=dvp.layer,
        dv_alpha=None if not np.isfinite(dvp.alpha or 0) else dvp.alpha,
        dv_spearman_pool=float(spearmanr(dp, v[pool]).statistic),
        dv_rows=int(dev.sum()),
    )
    return d, diag


def mean_seconds_per_text(store: Any, default: float = float("nan")) -> float:
    """Mean measured model seconds per text over a shard store's shards (``default`` if none timed)."""
    secs = []
    for path in store.shards():
        with np.load(path, allow_pickle=False) as zf:
            meta = json.loads(str(zf["meta"]))
        if meta.get("seconds", 0) > 0:
            secs.append(meta["seconds"] / meta["n"])
    return float(np.mean(secs)) if secs else default

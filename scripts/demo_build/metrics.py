"""Cascade diagnostics for the pilot and the build: AUROC, ranking-only cascades, the x-measurable ceiling.

Conventions: ``y`` labels (unsafe = 1), ``p`` the safety probe's P(unsafe), ``b`` the expert's.
A cascade at delegation fraction ``alpha`` delegates the top ``ceil(alpha * n)`` rows of a score
and outputs ``b`` there, ``p`` elsewhere; its AUROC is that of the output against ``y``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from probes.platt import fit_logistic, oof_logistic

__all__ = [
    "auroc",
    "cascade_auroc",
    "ceiling_score",
    "expert_diagnostics",
    "fit_logistic",
    "oof_logistic",
    "uncertainty_score",
]


def auroc(y: Any, s: Any) -> float:
    """Mann-Whitney AUROC (ties half); NaN when a class is absent."""
    from scipy.stats import rankdata

    yb = np.asarray(y).astype(bool)
    n1, n0 = int(yb.sum()), int((~yb).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    r = rankdata(np.asarray(s, dtype=np.float64))
    return float((r[yb].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def ceiling_score(p: Any, b: Any) -> np.ndarray:
    """The (non-deployable) x-measurable oracle ``(p + b - 1)(b - p)`` that knows the expert's output."""
    p, b = np.asarray(p, float), np.asarray(b, float)
    return (p + b - 1.0) * (b - p)


def uncertainty_score(p: Any) -> np.ndarray:
    """Calibrated-uncertainty delegation score ``-|p - 1/2|``."""
    return -np.abs(np.asarray(p, float) - 0.5)


def cascade_auroc(y: Any, p: Any, b: Any, score: Any, alpha: float) -> float:
    """AUROC of the cascade that delegates the top ``ceil(alpha n)`` rows of ``score`` (stable ties)."""
    p, b, s = np.asarray(p, float), np.asarray(b, float), np.asarray(score, float)
    k = math.ceil(alpha * len(p) - 1e-9)
    top = np.argsort(-s, kind="stable")[:k]
    out = p.copy()
    out[top] = b[top]
    return auroc(y, out)


def expert_diagnostics(
    y: Any, p: Any, b: Any, groups: Any, alphas: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5)
) -> dict[str, Any]:
    """P(v > 0), corr(p, b), AUROCs and ceiling vs uncertainty cascades for one expert.

    ``v = (2y - 1)(b - p)``. Returns plain floats (JSON-ready).
    """
    y, p, b = np.asarray(y, int), np.asarray(p, float), np.asarray(b, float)
    g = np.asarray(groups).astype(str)
    v = (2 * y - 1) * (b - p)
    out: dict[str, Any] = {
        "n": len(y),
        "auroc_expert": auroc(y, b),
        "auroc_probe": auroc(y, p),
        "p_v_pos": float((v > 0).mean()),
        "corr_p_b": float(np.corrcoef(p, b)[0, 1]),
        "mean_v": float(v.mean()),
        "mean_v_by_group": {k: float(v[g == k].mean()) for k in sorted(set(g))},
        "auroc_expert_by_group": {k: auroc(y[g == k], b[g == k]) for k in sorted(set(g))},
        "cascade": {},
    }
    for a in alphas:
        ceil_a = cascade_auroc(y, p, b, ceiling_score(p, b), a)
        unc_a = cascade_auroc(y, p, b, uncertainty_score(p), a)
        out["cascade"][f"{a:g}"] = {"ceiling": ceil_a, "uncertainty": unc_a, "gap": ceil_a - unc_a}
    return out

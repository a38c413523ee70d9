"""Cascade metrics, vectorised over many score vectors that share one label vector."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from ctd_stats.errors import CTDInputError


def auroc_rows(scores: NDArray[np.float64], labels: NDArray[np.bool_]) -> NDArray[np.float64]:
    """AUROC of each row of ``scores`` (shape (m, n)) against one boolean label vector (length n).

    Mann–Whitney form with average ranks for ties: (R₊ − n₊(n₊+1)/2) / (n₊ n₋). NaN where a class
    is absent.
    """
    S = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    y = np.asarray(labels, dtype=bool)
    if S.shape[1] != y.size:
        raise CTDInputError(f"scores have {S.shape[1]} columns but labels have length {y.size}")
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        return np.full(S.shape[0], np.nan)
    ranks = stats.rankdata(S, axis=1, method="average")
    return np.asarray((ranks[:, y].sum(axis=1) - n1 * (n1 + 1) / 2) / (n1 * n0), dtype=np.float64)


def auroc(labels: NDArray[np.bool_] | NDArray[np.int64], scores: NDArray[np.float64]) -> float:
    """AUROC of one score vector (the one-row case of :func:`auroc_rows`); NaN when a class is absent."""
    y = np.asarray(labels).astype(bool)
    return float(auroc_rows(np.asarray(scores, dtype=np.float64)[None, :], y)[0])


def faic(
    budgets: NDArray[np.float64],
    method: NDArray[np.float64],
    probe: float,
    oracle: NDArray[np.float64],
) -> float:
    """Fraction of Achievable Improvement Captured.

    FAIC = ∫₀^{α_cap} (M_method(α) − M_probe) dα / ∫₀^{α_cap} (M_oracle(α) − M_probe) dα, by the
    trapezoid rule on the budget grid with the point α = 0 (no delegation: every method equals the
    probe) prepended; α_cap is the last budget at which the oracle still beats the probe. Clipped
    below at 0; NaN if the oracle never beats the probe.
    """
    a = np.concatenate([[0.0], np.asarray(budgets, dtype=np.float64)])
    m = np.concatenate([[probe], np.asarray(method, dtype=np.float64)]) - probe
    o = np.concatenate([[probe], np.asarray(oracle, dtype=np.float64)]) - probe
    better = np.flatnonzero(o > 0)
    if better.size == 0:
        return float("nan")
    cap = int(better[-1]) + 1
    denom = float(np.trapezoid(o[:cap], a[:cap]))
    if denom <= 0:
        return float("nan")
    return max(0.0, float(np.trapezoid(m[:cap], a[:cap])) / denom)

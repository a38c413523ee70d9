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


def cascade_auroc_rows(
    masks: NDArray[np.bool_],
    p: NDArray[np.float64],
    b: NDArray[np.float64],
    labels: NDArray[np.bool_],
) -> NDArray[np.float64]:
    """AUROC of each cascade score ``where(mask, b, p)`` (masks shape (m, n)); equals
    ``auroc_rows(np.where(masks, b, p), labels)`` without sorting each row.

    Every cascade score takes, per row i, one of two values known in advance (p_i or b_i). The 2n
    candidate values are sorted once; a mask then selects n of them, and the average rank of the
    selected values in a tie group is (#selected below the group) + (#selected in it + 1)/2, so the
    positives' rank sum comes from two cumulative counts over the sorted candidates, read at the
    group boundaries.
    Cost O(n log n + m n), no per-row sort. The rank sums are half-integers, exact in float64.
    """
    M = np.atleast_2d(np.asarray(masks, dtype=bool))
    y = np.asarray(labels, dtype=bool)
    n = y.size
    if M.shape[1] != n or p.size != n or b.size != n:
        raise CTDInputError(f"masks have {M.shape[1]} columns; p, b and labels need that length")
    n1 = int(y.sum())
    n0 = n - n1
    if n1 == 0 or n0 == 0:
        return np.full(M.shape[0], np.nan)
    values = np.concatenate([p, b])
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    starts = np.flatnonzero(np.concatenate([[True], sorted_values[1:] != sorted_values[:-1]]))
    ends = np.append(starts[1:], 2 * n)
    # chosen[r, k]: the k-th smallest candidate is row (order[k] mod n)'s score in mask r.
    chosen = M[:, order % n] ^ (order < n)[None, :]
    positive = np.concatenate([y, y])[order]
    cum = np.zeros((M.shape[0], 2 * n + 1), dtype=np.int64)
    np.cumsum(chosen, axis=1, out=cum[:, 1:])
    chosen_pos = chosen & positive[None, :]
    if starts.size == 2 * n:  # no ties among the candidates: a selected value's rank is its count
        rank_sum = np.einsum("ij,ij->i", cum[:, 1:], chosen_pos, dtype=np.float64)
        return np.asarray((rank_sum - n1 * (n1 + 1) / 2) / (n1 * n0), dtype=np.float64)
    cum_pos = np.zeros_like(cum)
    np.cumsum(chosen_pos, axis=1, out=cum_pos[:, 1:])
    below = cum[:, starts]
    count = cum[:, ends] - below
    count_pos = cum_pos[:, ends] - cum_pos[:, starts]
    rank_sum = (count_pos * (below + (count + 1) / 2.0)).sum(axis=1)
    return np.asarray((rank_sum - n1 * (n1 + 1) / 2) / (n1 * n0), dtype=np.float64)


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

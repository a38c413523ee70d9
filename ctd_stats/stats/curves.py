"""Risk curves over many thresholds in O((n + L) log n) time and O(n + L) memory.

Delegation happens iff d(x) > τ. For L candidate thresholds and n scores:

* delegation counts K(τ) = #{i : d_i > τ} come from one sort and ``searchsorted``;
* cascade error counts E(τ) = #{probe wrong, not delegated} + #{expert wrong, delegated}
  = P + Σ_{i: d_i > τ} (e_i − p_i), where P = Σ p_i, come from a cumulative sum of (e_i − p_i)
  in descending score order, indexed by K(τ) (ties in d fall on the same side of τ, so the top-K
  prefix is exactly the delegated set).

No n × L matrix is ever formed. All counts are exact integers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray


@dataclass(frozen=True)
class SortedScores:
    """Scores sorted once, descending, with an optional per-row payload in the same order."""

    descending: NDArray[np.float64]
    order: NDArray[np.int64]

    @classmethod
    def from_scores(cls, scores: ArrayLike, *, keep_order: bool = True) -> SortedScores:
        """Sort once, descending. ``keep_order=False`` skips the permutation (``np.sort`` instead of
        ``argsort``, several times faster) when no per-row payload will be needed; ``order`` is then
        empty and :func:`cascade_error_counts` refuses it."""
        s = np.asarray(scores, dtype=np.float64)
        if not keep_order:
            return cls(descending=np.sort(s)[::-1], order=np.empty(0, dtype=np.int64))
        order = np.argsort(-s, kind="stable").astype(np.int64, copy=False)
        return cls(descending=s[order], order=order)

    @property
    def n(self) -> int:
        return int(self.descending.size)

    def delegation_counts(self, thresholds: ArrayLike) -> NDArray[np.int64]:
        """K(τ) = #{d > τ} for each threshold (vectorised)."""
        t = np.asarray(thresholds, dtype=np.float64)
        # In ascending order, #{d > τ} = n − #{d ≤ τ}; ascending view of the descending array:
        ascending = self.descending[::-1]
        return (self.n - np.searchsorted(ascending, t, side="right")).astype(np.int64, copy=False)

    def distinct_values(self) -> NDArray[np.float64]:
        """Distinct scores in descending order (no second sort)."""
        d = self.descending
        if d.size == 0:
            return d.copy()
        keep = np.empty(d.size, dtype=bool)
        keep[0] = True
        np.not_equal(d[1:], d[:-1], out=keep[1:])
        return d[keep]


def delegation_counts(scores: ArrayLike, thresholds: ArrayLike) -> NDArray[np.int64]:
    """K(τ) = #{i : scores_i > τ} for every τ in ``thresholds``."""
    return SortedScores.from_scores(scores, keep_order=False).delegation_counts(thresholds)


def cascade_error_counts(
    sorted_scores: SortedScores,
    probe_wrong: NDArray[np.bool_],
    expert_wrong: NDArray[np.bool_],
    counts: NDArray[np.int64],
) -> NDArray[np.int64]:
    """Cascade error counts E(τ) given the delegation counts K(τ) (from the same sorted scores).

    ``probe_wrong``/``expert_wrong`` are in the original row order.
    """
    if sorted_scores.order.size != sorted_scores.n:
        raise ValueError("cascade_error_counts needs SortedScores built with keep_order=True")
    order = sorted_scores.order
    pw = probe_wrong[order]
    if pw.dtype != np.bool_:
        pw = pw.astype(np.int64)
    gain = np.empty(order.size + 1, dtype=np.int64)  # gain[k] = Σ (e_i − p_i) over the top k rows
    gain[0] = 0
    step = gain[1:]
    step[:] = expert_wrong[order]
    step -= pw
    np.cumsum(step, out=step)
    out = gain[np.asarray(counts)]
    out += int(pw.sum())
    return out

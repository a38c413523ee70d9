"""A whole budget grid at once: certified thresholds and baseline masks of one split for J budgets.

The repeated-split study (:mod:`ctd_stats.study`) needs, for every split, each method's decision at
every budget of a grid. Each function here returns exactly what its one-budget counterpart returns
when called once per budget (the tests compare them value for value); only the work that does not
depend on the budget is shared. No new guarantee is claimed: the thresholds *are* the counterparts'.

* :func:`cascade_thresholds` — :func:`~ctd_stats.stats.pareto.calibrate_cascade` without an error level
  (fixed-sequence along the front). The front depends on opt only. Along it (descending τ) the ht
  count K(τ) = #{d_i > τ} is non-decreasing and every count-based p-value is non-decreasing in K, so
  the chain at budget α rejects exactly the prefix with K ≤ k*(α) (:func:`~ctd_stats.stats.ltt.certified_count`)
  — one ``searchsorted`` per budget — and the choice (lowest opt error in the prefix, ties to the
  largest τ) is a running arg-minimum. Cost O(n log n + J log n) instead of J × O(n log n).
* :func:`budget_thresholds` — :func:`~ctd_stats.stats.ltt.budget_threshold` per budget: one sort, then
  τ̂(α) = the (k*(α) + 1)-th largest score. O(n log n + J log n).
* :func:`batch_topk_masks`, :func:`batch_median_window_masks` — the batch baselines of
  :mod:`ctd_stats.stats.baselines` (stream = input order, ties by position) for many k: within-batch
  ranks are computed once (O(n log B)), then each k is one comparison (O(J n)).
* :func:`global_oracle_masks` — :func:`~ctd_stats.stats.baselines.global_oracle_delegate` per budget: one
  stable ranking, then one comparison per budget.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ctd_stats.errors import CTDInputError
from ctd_stats.stats.baselines import PartialBatch, check_batch_args, partial_k
from ctd_stats.stats.curves import SortedScores
from ctd_stats.stats.inputs import as_finite_1d, check_open_unit
from ctd_stats.stats.ltt import certified_count
from ctd_stats.stats.pareto import CascadeData, calibration_parts, opt_candidates

__all__ = [
    "batch_median_window_masks",
    "batch_topk_masks",
    "budget_thresholds",
    "cascade_thresholds",
    "global_oracle_masks",
]


def _budgets(budgets: ArrayLike) -> NDArray[np.float64]:
    a = np.atleast_1d(np.asarray(budgets, dtype=np.float64))
    if a.ndim != 1 or a.size == 0:
        raise CTDInputError("budgets must be a non-empty 1-D sequence")
    return np.asarray([check_open_unit(f"budgets[{i}]", float(x)) for i, x in enumerate(a)])


def _k_star(
    n: int, budget_grid: NDArray[np.float64], delta: float, pvalue: str
) -> NDArray[np.int64]:
    return np.asarray(
        [certified_count(n, float(a), delta, pvalue) for a in budget_grid], dtype=np.int64
    )


def cascade_thresholds(
    data: CascadeData | None = None,
    *,
    opt: CascadeData | None = None,
    ht: CascadeData | None = None,
    budgets: ArrayLike,
    delta: float,
    opt_fraction: float = 0.3,
    seed: int = 0,
    pvalue: str = "binomial",
    split: str = "opt_ht",
    thresholds: ArrayLike | None = None,
) -> NDArray[np.float64]:
    """τ̂ of ``calibrate_cascade(data, opt=opt, ht=ht, budget=α, delta=delta, ...)`` for every α.

    Parameters
    ----------
    data, opt, ht, opt_fraction, seed, split
        The calibration rows, exactly as in :func:`~ctd_stats.stats.pareto.calibrate_cascade`: ``data``
        split at random with ``seed``, or pre-split ``opt`` and ``ht``; with ``split="none"`` all rows
        (``data``, or opt ∪ ht) do everything.
    budgets : array_like of float in (0, 1), shape (J,)
    delta : float in (0, 1)
    pvalue, thresholds
        As in :func:`~ctd_stats.stats.pareto.calibrate_cascade` (budget-only, fixed-sequence).

    Returns
    -------
    ndarray of float, shape (J,)
        The certified threshold per budget, ``inf`` where nothing is certified (fail closed). Each
        carries :func:`~ctd_stats.stats.pareto.calibrate_cascade`'s budget guarantee at its own budget.
    """
    budget_grid = _budgets(budgets)
    dl = check_open_unit("delta", delta)
    opt, ht = calibration_parts(data, opt, ht, split, None, opt_fraction, seed)
    s_opt, grid, _, e_opt, front = opt_candidates(opt, thresholds)
    f_tau, f_err = grid[front], e_opt[front]
    s_ht = s_opt if split == "none" else SortedScores.from_scores(ht.dv_score, keep_order=False)
    k_ht = s_ht.delegation_counts(f_tau)  # non-decreasing along the front
    length = np.searchsorted(k_ht, _k_star(ht.n, budget_grid, dl, pvalue), side="right")
    out = np.full(budget_grid.size, math.inf)
    if f_tau.size:
        pos = np.arange(f_tau.size)
        running_min = np.minimum.accumulate(f_err)
        new_min = np.ones(f_tau.size, dtype=bool)
        new_min[1:] = f_err[1:] < running_min[:-1]  # first index of each new minimum
        best_in_prefix = np.maximum.accumulate(np.where(new_min, pos, 0))
        ok = length > 0
        out[ok] = f_tau[best_in_prefix[length[ok] - 1]]
    return out


def budget_thresholds(
    scores: ArrayLike, budgets: ArrayLike, delta: float, *, pvalue: str = "binomial"
) -> NDArray[np.float64]:
    """τ̂ of :func:`~ctd_stats.stats.ltt.budget_threshold` (full grid, fixed-sequence) for every budget.

    ``scores`` of shape (n,) gives an array of shape (J,); shape (trials, n) (one calibration set
    per row, as :func:`~ctd_stats.stats.ltt.calibrate_budget_batch`) gives (trials, J). ``inf`` where
    nothing is certified; each τ̂ carries :func:`~ctd_stats.stats.ltt.budget_threshold`'s guarantee at its
    own budget. One sort per row, then an index per budget.
    """
    raw = np.asarray(scores, dtype=np.float64)
    if raw.ndim == 2:
        if raw.shape[1] == 0 or not np.isfinite(raw).all():
            raise CTDInputError("scores must have shape (trials, n) with n ≥ 1 and finite values")
        S = raw
    else:
        S = as_finite_1d("scores", raw)[None, :]
    budget_grid = _budgets(budgets)
    dl = check_open_unit("delta", delta)
    n = int(S.shape[1])
    kstar = _k_star(n, budget_grid, dl, pvalue)
    desc = -np.sort(-S, axis=1)
    out = np.full((S.shape[0], budget_grid.size), math.inf)
    ok = kstar >= 0
    out[:, ok] = desc[:, np.minimum(kstar[ok], n - 1)]
    return out if raw.ndim == 2 else out[0]


def _check_ks(ks: ArrayLike, batch_size: int, partial: str) -> tuple[NDArray[np.int64], int]:
    arr = np.atleast_1d(np.asarray(ks))
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"ks: expected a 1-D array of integers, got {arr.dtype} {arr.shape}")
    bs = batch_size
    for k in arr.tolist():
        _, bs = check_batch_args(int(k), batch_size, partial)
    return arr.astype(np.int64), bs


def _within_batch_ranks(
    keys: NDArray[np.float64], batch_size: int
) -> tuple[NDArray[np.int64], int]:
    """Ascending rank of each item within its batch (ties by position) and the full-batch length."""
    n = keys.size
    n_full = (n // batch_size) * batch_size
    ranks = np.empty(n, dtype=np.int64)
    for lo, hi, b in ((0, n_full, batch_size), (n_full, n, n - n_full)):
        if hi > lo:
            rows = keys[lo:hi].reshape(-1, b)
            order = np.argsort(rows, axis=1, kind="stable")
            rank_of = np.empty_like(order)
            np.put_along_axis(rank_of, order, np.broadcast_to(np.arange(b), rows.shape), axis=1)
            ranks[lo:hi] = rank_of.ravel()
    return ranks, n_full


def _window_masks(
    keys: NDArray[np.float64], ks: NDArray[np.int64], batch_size: int, partial: str, centred: bool
) -> NDArray[np.bool_]:
    """Masks [J, n]: per batch of size b delegating k_b items, ranks in [start(b, k_b), start + k_b)."""
    n = keys.size
    ranks, n_full = _within_batch_ranks(keys, batch_size)
    r = n - n_full
    k_tail = np.asarray([partial_k(int(k), r, batch_size, partial) for k in ks], dtype=np.int64)
    in_tail = np.arange(n) >= n_full
    k_item = np.where(in_tail[None, :], k_tail[:, None], ks[:, None])  # [J, n]
    if centred:
        b_item = np.where(in_tail, r, batch_size)[None, :]
        start = (b_item - k_item) // 2
        return np.asarray((ranks >= start) & (ranks < start + k_item), dtype=bool)
    return np.asarray(ranks[None, :] < k_item, dtype=bool)


def _vector(values: ArrayLike, name: str) -> NDArray[np.float64]:
    """A 1-D float array without NaN (±inf allowed, as in :mod:`ctd_stats.stats.baselines`)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or np.isnan(arr).any():
        raise ValueError(f"{name}: expected a 1-D array without NaN")
    return arr


def batch_topk_masks(
    scores: ArrayLike, ks: ArrayLike, batch_size: int, *, partial: PartialBatch = "floor"
) -> NDArray[np.bool_]:
    """``batch_topk_delegate(scores, k, batch_size, partial=partial)`` for every k: shape [J, n]."""
    k_arr, bs = _check_ks(ks, batch_size, partial)
    return _window_masks(-_vector(scores, "scores"), k_arr, bs, partial, centred=False)


def batch_median_window_masks(
    p: ArrayLike, ks: ArrayLike, batch_size: int, *, partial: PartialBatch = "floor"
) -> NDArray[np.bool_]:
    """``batch_median_window_delegate(p, k, batch_size, partial=partial)`` for every k: [J, n]."""
    k_arr, bs = _check_ks(ks, batch_size, partial)
    return _window_masks(_vector(p, "p"), k_arr, bs, partial, centred=True)


def global_oracle_masks(v: ArrayLike, budgets: ArrayLike) -> NDArray[np.bool_]:
    """``global_oracle_delegate(v, α)`` for every α (in [0, 1]): shape [J, n]."""
    arr = _vector(v, "v")
    a = np.atleast_1d(np.asarray(budgets, dtype=np.float64))
    if np.any((a < 0) | (a > 1)) or np.isnan(a).any():
        raise ValueError(f"budgets: must lie in [0, 1], got {a.tolist()}")
    n = arr.size
    m = np.asarray(
        [math.ceil(round(float(x) * n, 9)) for x in a], dtype=np.int64
    )  # as the counterpart
    take = np.minimum(m, int(np.count_nonzero(arr > 0)))
    order = np.argsort(-arr, kind="stable")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    return np.asarray(rank[None, :] < take[:, None], dtype=bool)

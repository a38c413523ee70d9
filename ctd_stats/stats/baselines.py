"""Uncertainty and top-k delegation baselines (pure numpy; this module never imports torch).

The baselines that Calibrate-Then-Delegate is compared with:

* :func:`uncertainty_score` -- the raw uncertainty ``u(x) = -|p(x) - 1/2|`` of a probe probability;
  for a binary classifier, entropy and margin induce the same ranking.
* :func:`calibrated_uncertainty` -- ``u(x) = -|F_ref(p(x)) - 1/2|`` where ``F_ref`` is the empirical
  CDF of reference (calibration) probe scores: the distance of the normalised rank to the median.
  A threshold on it is what the "Unc. calibrated" baseline certifies.
* :func:`batch_topk_delegate` -- within each consecutive batch of a stream, delegate the ``k``
  highest-scoring items ("DV top-k" on the DV score, "Oracle top-k" on the true delegation value).
* :func:`batch_median_window_delegate` -- McKenzie-style "Unc. top-k": within each batch, delegate
  the ``k`` items whose probe-score rank is nearest the batch median rank.
* :func:`global_oracle_delegate` -- the global oracle used for FAIC: the top ``ceil(budget * n)``
  items by true delegation value, never delegating an item with ``v <= 0``.

Every batch function is vectorised over batches and, optionally, over many trials at once: a 2-D
input of shape ``(trials, n)`` is ``trials`` independent streams, and ``order`` may carry one
permutation per trial (the lead's repeated random-split evaluation).

Conventions shared by the batch functions
-----------------------------------------
* The stream is cut into consecutive batches of ``batch_size`` items; the last batch may be
  partial, with ``r = n mod batch_size`` items.
* **Partial last batch.** It delegates ``floor(k * r / batch_size)`` items with the default
  ``partial="floor"``: the delegated fraction of every stream is then at most ``k / batch_size``,
  so the top-k budget is never exceeded. ``partial="nearest"`` rounds ``k * r / batch_size`` half
  up instead (closer to the nominal rate on short streams, but it may exceed it by less than
  ``1 / n``), and ``partial="drop"`` never delegates from the partial batch.
* **Ties.** Without ``rng``, equal scores are ordered by their position in the stream (earlier
  first, i.e. the earlier item is treated as the larger). With ``rng``, ties are broken uniformly at
  random, independently per trial and batch.
* The result is a boolean mask indexed like the *input* (not like the stream): with ``order``,
  ``mask[..., i]`` says whether item ``i`` was delegated when the stream visited the items in the
  order ``order[t]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "PartialBatch",
    "batch_median_window_delegate",
    "batch_topk_delegate",
    "calibrated_uncertainty",
    "global_oracle_delegate",
    "paper_k_grid",
    "uncertainty_score",
]

PartialBatch = Literal["floor", "nearest", "drop"]
_PARTIAL_CHOICES: tuple[str, ...] = ("floor", "nearest", "drop")


# ----------------------------------------------------------------------------- validation helpers
def _as_float_array(x: ArrayLike, name: str, *, max_ndim: int = 1) -> NDArray[np.float64]:
    """Convert ``x`` to a float64 array of at most ``max_ndim`` dimensions with no NaN."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected an array of numbers ({exc})") from exc
    if arr.ndim == 0 or arr.ndim > max_ndim:
        allowed = "1-D" if max_ndim == 1 else f"1-D or {max_ndim}-D"
        raise ValueError(f"{name}: expected a {allowed} array, got shape {arr.shape}")
    if np.isnan(arr).any():
        bad = np.flatnonzero(np.isnan(arr.reshape(-1)))[0]
        raise ValueError(f"{name}: contains NaN (first at flat index {int(bad)})")
    return arr


def _check_probabilities(arr: NDArray[np.float64], name: str) -> None:
    """Raise ``ValueError`` naming ``name`` unless every value lies in [0, 1]."""
    outside = (arr < 0.0) | (arr > 1.0)
    if outside.any():
        bad = int(np.flatnonzero(outside.reshape(-1))[0])
        raise ValueError(
            f"{name}: probabilities must lie in [0, 1]; flat index {bad} is {arr.reshape(-1)[bad]!r}"
        )


def _check_int(value: object, name: str, *, minimum: int) -> int:
    """Return ``value`` as an int, raising ``ValueError`` naming ``name`` if it is not one >= minimum."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    ivalue = int(value)
    if ivalue < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {ivalue}")
    return ivalue


# ----------------------------------------------------------------------------- uncertainty scores
def uncertainty_score(p: ArrayLike) -> NDArray[np.float64]:
    """Uncertainty of probe probabilities, ``u = -|p - 1/2|`` (higher means more uncertain).

    Parameters
    ----------
    p : array_like of float, shape (n,) or (trials, n)
        Probe probabilities P(unsafe), each in [0, 1].

    Returns
    -------
    numpy.ndarray of float64, same shape as ``p``
        Values in [-1/2, 0]; 0 exactly at ``p = 1/2``.

    Raises
    ------
    ValueError
        If ``p`` contains NaN or a value outside [0, 1] (the message names ``p``).
    """
    arr = _as_float_array(p, "p", max_ndim=2)
    _check_probabilities(arr, "p")
    return -np.abs(arr - 0.5)


def calibrated_uncertainty(p: ArrayLike, reference_p: ArrayLike) -> NDArray[np.float64]:
    """Rank-calibrated uncertainty ``u = -|F_ref(p) - 1/2|``.

    ``F_ref(x) = #{j : reference_p[j] <= x} / m`` is the (right-continuous) empirical CDF of the
    ``m`` reference scores, evaluated with ``searchsorted`` in O((n + m) log m). The score is the
    distance of the normalised rank of ``p`` among the reference scores to the median rank, so the
    most uncertain items are those whose probe score sits at the reference median, whatever the
    probe's calibration. Unlike :func:`uncertainty_score` this only uses the order of the scores,
    so ``p`` and ``reference_p`` may be any real scores (probabilities, logits, ...).

    Parameters
    ----------
    p : array_like of float, shape (n,) or (trials, n)
        Scores to transform.
    reference_p : array_like of float, shape (m,)
        Reference (calibration) scores defining ``F_ref``; ``m >= 1``.

    Returns
    -------
    numpy.ndarray of float64, same shape as ``p``
        Values in [-1/2, 0].

    Raises
    ------
    ValueError
        If either input contains NaN, or ``reference_p`` is empty (the message names the argument).
    """
    arr = _as_float_array(p, "p", max_ndim=2)
    ref = _as_float_array(reference_p, "reference_p")
    if ref.size == 0:
        raise ValueError("reference_p: must contain at least one score")
    ref_sorted = np.sort(ref)
    cdf = np.searchsorted(ref_sorted, arr, side="right") / ref_sorted.size
    return -np.abs(cdf - 0.5)


# ----------------------------------------------------------------------------- batch machinery
def _prepare_stream(
    values: ArrayLike,
    order: ArrayLike | None,
    name: str,
) -> tuple[NDArray[np.float64], NDArray[np.intp] | None, bool]:
    """Return ``(stream, order2d, was_1d)``: values in stream order as a 2-D (trials, n) array."""
    arr = _as_float_array(values, name, max_ndim=2)
    was_1d = arr.ndim == 1
    arr2 = arr[None, :] if was_1d else arr
    if order is None:
        return arr2, None, was_1d
    ordr = np.asarray(order)
    if ordr.ndim not in (1, 2) or not np.issubdtype(ordr.dtype, np.integer):
        raise ValueError(
            f"order: expected a 1-D or 2-D integer array, got {ordr.dtype} {ordr.shape}"
        )
    n = arr2.shape[1]
    ord2 = ordr[None, :] if ordr.ndim == 1 else ordr
    if ord2.shape[1] != n:
        raise ValueError(
            f"order: rows must have length {n} (the length of {name}), got {ord2.shape[1]}"
        )
    if arr2.shape[0] != 1 and ord2.shape[0] not in (1, arr2.shape[0]):
        raise ValueError(
            f"order: {ord2.shape[0]} rows do not match the {arr2.shape[0]} trials of {name}"
        )
    if n:
        check = np.zeros(ord2.shape, dtype=bool)
        if ord2.min() < 0 or ord2.max() >= n:
            raise ValueError(f"order: each row must be a permutation of range({n})")
        np.put_along_axis(check, ord2.astype(np.intp, copy=False), True, axis=1)
        if not check.all():
            raise ValueError(f"order: each row must be a permutation of range({n})")
    trials = max(arr2.shape[0], ord2.shape[0])
    ord2 = np.broadcast_to(ord2.astype(np.intp, copy=False), (trials, n))
    src = np.broadcast_to(arr2, (trials, n))
    stream = np.take_along_axis(src, ord2, axis=1)
    was_1d = was_1d and ordr.ndim == 1
    return stream, ord2, was_1d


def partial_k(k: int, r: int, batch_size: int, partial: str) -> int:
    """Number of items delegated from a partial batch of ``r`` items (see the module docstring)."""
    if partial == "drop" or r == 0:
        return 0
    if partial == "floor":
        return (k * r) // batch_size
    return (2 * k * r + batch_size) // (2 * batch_size)  # round half up, in exact integers


def _rank_order(keys: NDArray[np.float64], rng: np.random.Generator | None) -> NDArray[np.intp]:
    """Indices sorting each row of ``keys`` ascending; ties by position, or at random with ``rng``."""
    if rng is None:
        return np.argsort(keys, axis=-1, kind="stable")
    shuffle = np.argsort(rng.random(keys.shape), axis=-1)
    shuffled = np.take_along_axis(keys, shuffle, axis=-1)
    inner = np.argsort(shuffled, axis=-1, kind="stable")
    return np.take_along_axis(shuffle, inner, axis=-1)


def _select_in_batches(
    stream: NDArray[np.float64],
    k: int,
    batch_size: int,
    partial: str,
    rng: np.random.Generator | None,
    start_of: Callable[[int, int], int],
) -> NDArray[np.bool_]:
    """Delegate, in each batch, the items whose ascending rank lies in [start, start + k_b).

    ``stream`` has shape (trials, n) and is sorted ascending within each batch by ``keys``; the
    window start for a batch of size ``b`` delegating ``k_b`` items is ``start_of(b, k_b)``.
    """
    trials, n = stream.shape
    mask = np.zeros((trials, n), dtype=bool)
    n_full = n // batch_size
    r = n - n_full * batch_size

    def fill(block: NDArray[np.float64], b: int, kb: int) -> NDArray[np.bool_]:
        rows = block.reshape(-1, b)
        out = np.zeros(rows.shape, dtype=bool)
        if kb > 0:
            ranked = _rank_order(rows, rng)
            s = start_of(b, kb)
            np.put_along_axis(out, ranked[:, s : s + kb], True, axis=1)
        return out.reshape(block.shape)

    if n_full:
        full = stream[:, : n_full * batch_size]
        mask[:, : n_full * batch_size] = fill(full, batch_size, k)
    if r:
        kr = partial_k(k, r, batch_size, partial)
        mask[:, n_full * batch_size :] = fill(stream[:, n_full * batch_size :], r, kr)
    return mask


def _finish(
    stream_mask: NDArray[np.bool_], order2d: NDArray[np.intp] | None, was_1d: bool
) -> NDArray[np.bool_]:
    """Map a stream-ordered mask back to input order and drop the trial axis for 1-D input."""
    if order2d is None:
        mask = stream_mask
    else:
        mask = np.zeros(stream_mask.shape, dtype=bool)
        np.put_along_axis(mask, order2d, stream_mask, axis=1)
    return mask[0] if was_1d else mask


def check_batch_args(k: object, batch_size: object, partial: str) -> tuple[int, int]:
    bs = _check_int(batch_size, "batch_size", minimum=1)
    kk = _check_int(k, "k", minimum=0)
    if kk > bs:
        raise ValueError(f"k: must be <= batch_size ({bs}), got {kk}")
    if partial not in _PARTIAL_CHOICES:
        raise ValueError(f"partial: must be one of {_PARTIAL_CHOICES}, got {partial!r}")
    return kk, bs


# ----------------------------------------------------------------------------- public delegators
def batch_topk_delegate(
    scores: ArrayLike,
    k: int,
    batch_size: int,
    *,
    order: ArrayLike | None = None,
    rng: np.random.Generator | None = None,
    partial: PartialBatch = "floor",
) -> NDArray[np.bool_]:
    """Within each consecutive batch of a stream, delegate the ``k`` highest-scoring items.

    This is the "DV top-k" baseline (``scores`` = DV-probe scores d(x)) and "Oracle top-k"
    (``scores`` = true delegation values v(x, y)). Every full batch delegates exactly ``k`` items;
    the partial last batch follows ``partial`` (module docstring). Cost: O(n log B) per trial.

    Parameters
    ----------
    scores : array_like of float, shape (n,) or (trials, n)
        Scores in input order; a 2-D array is one stream per row. ``+-inf`` are allowed.
    k : int
        Items delegated per full batch, ``0 <= k <= batch_size``.
    batch_size : int
        Batch size ``B >= 1``.
    order : array_like of int, shape (n,) or (trials, n), optional
        Stream order: trial ``t`` visits the items ``order[t, 0], order[t, 1], ...``. Each row
        must be a permutation of ``range(n)``. A 2-D ``order`` with 1-D ``scores`` evaluates many
        random streams of the same items at once. Default: the input order.
    rng : numpy.random.Generator, optional
        If given, ties are broken uniformly at random; otherwise the earlier stream item wins.
    partial : {"floor", "nearest", "drop"}
        Rule for the partial last batch (default ``"floor"``: never exceed the rate ``k / B``).

    Returns
    -------
    numpy.ndarray of bool, shape (n,) or (trials, n)
        ``True`` where the item is delegated, indexed like ``scores`` (input order).

    Raises
    ------
    ValueError
        On NaN scores, ``batch_size < 1``, ``k < 0``, ``k > batch_size``, an invalid ``order`` or
        ``partial``; the message names the argument.
    """
    kk, bs = check_batch_args(k, batch_size, partial)
    stream, order2d, was_1d = _prepare_stream(scores, order, "scores")
    # Ascending sort of -scores ranks the highest score first; ties keep stream order.
    mask = _select_in_batches(-stream, kk, bs, partial, rng, lambda b, kb: 0)
    return _finish(mask, order2d, was_1d)


def batch_median_window_delegate(
    p: ArrayLike,
    k: int,
    batch_size: int,
    *,
    order: ArrayLike | None = None,
    rng: np.random.Generator | None = None,
    partial: PartialBatch = "floor",
) -> NDArray[np.bool_]:
    """McKenzie-style "Unc. top-k": delegate the ``k`` items ranked nearest the batch median.

    Within a batch of ``b`` items, rank the probe scores ascending (ranks ``0 .. b-1``; ties as in
    the module docstring) and delegate the ``k_b`` consecutive ranks
    ``[(b - k_b) // 2, (b - k_b) // 2 + k_b)``: a window centred on the median rank
    ``(b - 1) / 2``. Equivalently, the ``k_b`` ranks with the smallest ``|rank - (b - 1) / 2|``,
    where a tie in that distance goes to the lower rank. Only the within-batch order of ``p``
    matters, so ``p`` need not be calibrated.

    Parameters
    ----------
    p : array_like of float, shape (n,) or (trials, n)
        Probe scores in input order; a 2-D array is one stream per row.
    k : int
        Items delegated per full batch, ``0 <= k <= batch_size``.
    batch_size : int
        Batch size ``B >= 1``.
    order : array_like of int, shape (n,) or (trials, n), optional
        Stream order, as in :func:`batch_topk_delegate`.
    rng : numpy.random.Generator, optional
        If given, ties in ``p`` are broken uniformly at random; otherwise by stream position.
    partial : {"floor", "nearest", "drop"}
        Rule for the partial last batch (default ``"floor"``).

    Returns
    -------
    numpy.ndarray of bool, shape (n,) or (trials, n)
        ``True`` where the item is delegated, indexed like ``p`` (input order).

    Raises
    ------
    ValueError
        On NaN in ``p``, ``batch_size < 1``, ``k < 0``, ``k > batch_size``, an invalid ``order`` or
        ``partial``; the message names the argument.
    """
    kk, bs = check_batch_args(k, batch_size, partial)
    stream, order2d, was_1d = _prepare_stream(p, order, "p")
    mask = _select_in_batches(stream, kk, bs, partial, rng, lambda b, kb: (b - kb) // 2)
    return _finish(mask, order2d, was_1d)


def global_oracle_delegate(v: ArrayLike, budget: float) -> NDArray[np.bool_]:
    """Global oracle: delegate the top ``ceil(budget * n)`` items by true value, only where ``v > 0``.

    The number delegated is ``min(ceil(budget * n), #{v > 0})`` (``budget * n`` is rounded to 9
    decimals before the ceiling, so e.g. ``0.3 * 10`` gives 3, not 4). Ties in ``v`` go to the
    lower index. A 2-D ``v`` is handled row by row (one independent set per row).

    Parameters
    ----------
    v : array_like of float, shape (n,) or (trials, n)
        True delegation values, e.g. ``(2y - 1)(b - p)``.
    budget : float
        Delegation budget in [0, 1].

    Returns
    -------
    numpy.ndarray of bool, same shape as ``v``
        ``True`` where the item is delegated.

    Raises
    ------
    ValueError
        On NaN in ``v`` or a budget outside [0, 1] (the message names the argument).
    """
    arr = _as_float_array(v, "v", max_ndim=2)
    if isinstance(budget, bool) or not isinstance(budget, int | float | np.integer | np.floating):
        raise ValueError(f"budget: expected a number in [0, 1], got {budget!r}")
    b = float(budget)
    if not (0.0 <= b <= 1.0):
        raise ValueError(f"budget: must lie in [0, 1], got {b!r}")
    was_1d = arr.ndim == 1
    arr2 = arr[None, :] if was_1d else arr
    n = arr2.shape[1]
    m = math.ceil(round(b * n, 9))
    positive = (arr2 > 0).sum(axis=1)
    take = np.minimum(m, positive)  # per row
    ranked = np.argsort(-arr2, axis=1, kind="stable")
    rank_of = np.empty_like(ranked)
    np.put_along_axis(rank_of, ranked, np.arange(n)[None, :], axis=1)
    mask = rank_of < take[:, None]
    return mask[0] if was_1d else mask


def paper_k_grid(batch_size: int, points: int = 21) -> NDArray[np.int64]:
    """The paper's sweep of per-batch delegation counts: ``unique(floor(linspace(0, B, points)))``.

    Parameters
    ----------
    batch_size : int
        Batch size ``B >= 1``.
    points : int
        Number of grid points before de-duplication (>= 2).

    Returns
    -------
    numpy.ndarray of int64
        Sorted distinct ``k`` values from 0 to ``B`` inclusive; ``k / B`` is the x-axis.
    """
    bs = _check_int(batch_size, "batch_size", minimum=1)
    pts = _check_int(points, "points", minimum=2)
    return np.unique(np.floor(np.linspace(0, bs, pts)).astype(np.int64))

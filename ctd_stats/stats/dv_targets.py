"""Delegation-value (DV) targets: how much better the expert is than the probe on a row.

With label ``y`` (unsafe = 1), probe probability ``p`` and expert probability ``b`` of "unsafe":

* continuous: ``v = P_expert(y | x) - P_probe(y | x) = (2y - 1)(b - p)``, in [-1, 1];
* binary: ``v = 1[probe wrong and expert right]``, a prediction being ``prob >= threshold`` (0.5).

A DV probe regresses ``v`` on the probed model's activations, so at deployment (no label, no expert
call) it predicts where delegating pays off.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ctd_stats.errors import CTDInputError

__all__ = [
    "UNSAFE_CUTOFF",
    "DVTarget",
    "binary_dv",
    "continuous_dv",
    "dv_targets",
    "predicts_unsafe",
]

DVTarget = Literal["continuous", "binary"]


#: A classifier predicts "unsafe" when its probability of unsafe is at least this (ties go to unsafe).
UNSAFE_CUTOFF = 0.5


def predicts_unsafe(prob: ArrayLike, cutoff: float = UNSAFE_CUTOFF) -> NDArray[np.bool_]:
    """The one definition of a prediction: unsafe iff ``prob >= cutoff`` (default 0.5).

    Used by the DV targets, the cascade data of Pareto testing, the study and its controls, so a
    probability of exactly the cutoff is counted the same way everywhere.
    """
    return np.asarray(np.asarray(prob, dtype=np.float64) >= cutoff, dtype=bool)


def _inputs(
    labels: ArrayLike, probe_prob: ArrayLike, expert_prob: ArrayLike
) -> tuple[NDArray[np.float64], ...]:
    y = np.asarray(labels, dtype=np.float64)
    p = np.asarray(probe_prob, dtype=np.float64)
    b = np.asarray(expert_prob, dtype=np.float64)
    if not (y.ndim == p.ndim == b.ndim == 1) or not (len(y) == len(p) == len(b)):
        raise CTDInputError(
            f"labels, probe_prob and expert_prob must be 1-D of equal length, got {y.shape}, {p.shape}, {b.shape}"
        )
    if not np.isin(y, (0.0, 1.0)).all():
        raise CTDInputError("labels must be 0 or 1 (unsafe = 1) with no missing values")
    for name, v in (("probe_prob", p), ("expert_prob", b)):
        if not (np.isfinite(v).all() and (v >= 0).all() and (v <= 1).all()):
            raise CTDInputError(f"{name} must be probabilities in [0, 1] with no missing values")
    return y, p, b


def continuous_dv(
    labels: ArrayLike, probe_prob: ArrayLike, expert_prob: ArrayLike
) -> NDArray[np.float64]:
    """``(2y - 1)(b - p)``: the expert's gain in probability of the true label over the probe's."""
    y, p, b = _inputs(labels, probe_prob, expert_prob)
    return (2.0 * y - 1.0) * (b - p)


def binary_dv(
    labels: ArrayLike,
    probe_prob: ArrayLike,
    expert_prob: ArrayLike,
    threshold: float = UNSAFE_CUTOFF,
) -> NDArray[np.float64]:
    """``1[probe wrong and expert right]`` (as 0.0/1.0); a classifier predicts unsafe iff its
    probability is ``>= threshold`` (:func:`predicts_unsafe`)."""
    y, p, b = _inputs(labels, probe_prob, expert_prob)
    yb = y.astype(bool)
    probe_right = predicts_unsafe(p, threshold) == yb
    expert_right = predicts_unsafe(b, threshold) == yb
    return (~probe_right & expert_right).astype(np.float64)


def dv_targets(
    kind: DVTarget, labels: ArrayLike, probe_prob: ArrayLike, expert_prob: ArrayLike
) -> NDArray[np.float64]:
    """Dispatch on ``kind`` (``"continuous"`` or ``"binary"``)."""
    if kind == "continuous":
        return continuous_dv(labels, probe_prob, expert_prob)
    if kind == "binary":
        return binary_dv(labels, probe_prob, expert_prob)
    raise CTDInputError(f"dv_target must be 'continuous' or 'binary', got {kind!r}")

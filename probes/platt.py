"""Logistic regression on a few features by Newton steps: Platt scaling of a judge's logit, stacking.

``fit_logistic`` minimises the L2-penalised log-loss (the intercept unpenalised, penalty
``l2 * n``) with Newton-Raphson; with one feature that is Platt scaling, P(y = 1 | s) =
sigmoid(a + b s). Convex, so the steps converge from zero; ``iters`` caps them and a step below
1e-8 stops early. Cost O(iters n k^2) for k features.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["fit_logistic", "oof_logistic", "predict_logistic"]


def _design(x: Any) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    return np.c_[np.ones(len(x)), x]


def fit_logistic(x: Any, y: Any, l2: float = 1e-3, iters: int = 50) -> np.ndarray:
    """Weights ``[1 + k]`` (intercept first) of an L2-penalised logistic regression of ``y`` on ``x``.

    Parameters
    ----------
    x : array ``[n]`` or ``[n, k]``
        Features, used as given (no standardisation).
    y : array ``[n]``
        Labels 0/1.
    l2 : float
        Penalty per row on the slopes.
    iters : int
        Most Newton steps.
    """
    xa = _design(x)
    yv = np.asarray(y, dtype=np.float64)
    w = np.zeros(xa.shape[1])
    pen = np.full(xa.shape[1], l2 * len(yv))
    pen[0] = 0.0
    for _ in range(iters):
        q = 1 / (1 + np.exp(-np.clip(xa @ w, -30, 30)))
        grad = xa.T @ (q - yv) + pen * w
        hess = (xa * (q * (1 - q))[:, None]).T @ xa + np.diag(pen) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def predict_logistic(w: np.ndarray, x: Any) -> np.ndarray:
    """P(y = 1) under weights from :func:`fit_logistic`."""
    return np.asarray(1 / (1 + np.exp(-np.clip(_design(x) @ w, -30, 30))), dtype=np.float64)


def oof_logistic(x: Any, y: Any, strata: Any, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Out-of-fold probabilities of :func:`fit_logistic` (folds stratified by ``strata``, seeded)."""
    xv = np.asarray(x, dtype=np.float64)
    yv = np.asarray(y, dtype=int)
    key = np.unique(np.asarray(strata).astype(str), return_inverse=True)[1]
    rng = np.random.default_rng(seed)
    fold = np.empty(len(yv), dtype=int)
    for c in np.unique(key):
        idx = rng.permutation(np.flatnonzero(key == c))
        fold[idx] = np.arange(len(idx)) % folds
    out = np.full(len(yv), np.nan)
    for f in range(folds):
        held = fold == f
        if held.any():
            out[held] = predict_logistic(fit_logistic(xv[~held], yv[~held]), xv[held])
    return out

"""Linear probes on pooled activations, in torch (CPU or GPU), saved without pickle.

* :class:`SafetyProbe` — L2-regularised logistic regression on standardised activations of one
  layer. The layer is chosen on the training data only, by stratified K-fold cross-validated AUROC;
  all (fold, layer) problems are solved together in one batched L-BFGS run.
* :func:`out_of_fold_proba` — honest (cross-fitted) safety-probe probabilities of the training rows:
  each row is scored by a probe fitted, layer choice included, on the other folds only.
* :class:`DVProbe` — ridge regression (closed form) of a delegation value on standardised
  activations; layer and penalty chosen by exact leave-one-out error (one eigen-decomposition per
  layer serves every penalty).

Both accept activations shaped ``[n, n_layers, d]`` (from :mod:`probes.activations`) or ``[n, d]``
(a single layer) and save to one ``.safetensors`` file whose metadata holds their settings as JSON.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ctd_stats.errors import CTDInputError
from ctd_stats.stats.metrics import auroc
from probes.dv_probe import DVProbe
from probes.probe_arrays import as_3d, check_xy, load_probe, save_probe

__all__ = ["DVProbe", "SafetyProbe", "auroc", "out_of_fold_proba", "stratified_folds"]


def stratified_folds(y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold index in ``0..k-1`` for each row, balanced within each label (seeded)."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    folds = np.empty(len(y), dtype=np.int64)
    for cls in np.unique(y):
        idx = np.flatnonzero(y == cls)
        idx = idx[rng.permutation(len(idx))]
        folds[idx] = np.arange(len(idx)) % k
    return folds


def _fit_logreg_batched(
    x: Any, y: Any, w_rows: Any, c: float, max_iter: int
) -> tuple[Any, Any, Any, Any]:
    """Solve P independent L2 logistic regressions sharing the rows of ``x``.

    Parameters
    ----------
    x : Tensor [n, L, d]
    y : Tensor [n] in {0, 1}
    w_rows : Tensor [F, n]
        Row weights (0/1 masks) of each of F training sets; problems are the F x L pairs.
    c : float
        Inverse penalty, as in scikit-learn: minimise sum of log-losses + ||w||^2 / (2c).

    Returns
    -------
    mean, scale : [F, L, d] standardisation fitted on each training set
    coef : [F, L, d] weights in standardised space; bias : [F, L]
    """
    import torch

    dtype = torch.float64 if x.device.type == "cpu" else torch.float32
    x = x.to(dtype)
    w_rows = w_rows.to(x.device, dtype)
    y = y.to(x.device, dtype)
    cnt = w_rows.sum(1)  # [F]
    mean = torch.einsum("fn,nld->fld", w_rows, x) / cnt[:, None, None]
    sq = torch.einsum("fn,nld->fld", w_rows, x * x) / cnt[:, None, None]
    scale = (sq - mean * mean).clamp_min(0).sqrt().clamp_min(1e-6)
    f, lay, d = mean.shape
    coef = torch.zeros((f, lay, d), dtype=dtype, device=x.device, requires_grad=True)
    bias = torch.zeros((f, lay), dtype=dtype, device=x.device, requires_grad=True)
    opt = torch.optim.LBFGS(
        [coef, bias],
        lr=1,
        max_iter=max_iter,
        tolerance_grad=1e-7,
        tolerance_change=1e-10,
        history_size=20,
        line_search_fn="strong_wolfe",
    )
    lam = 1.0 / (2.0 * c)

    def closure() -> Any:
        opt.zero_grad()
        ws = coef / scale
        logits = torch.einsum("nld,fld->fln", x, ws) + (bias - (mean * ws).sum(-1))[..., None]
        loss_rows = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, y.expand_as(logits), reduction="none"
        )
        # Scale by the total row count so the problem is well conditioned; per-problem optimum unchanged.
        loss = ((loss_rows * w_rows[:, None, :]).sum() + lam * (coef * coef).sum()) / x.shape[0]
        loss.backward()
        return loss

    opt.step(closure)
    return mean.detach(), scale.detach(), coef.detach(), bias.detach()


class SafetyProbe:
    """L2 logistic-regression probe P(unsafe | activations) with the layer chosen by inner CV.

    Parameters
    ----------
    c : float
        Inverse L2 penalty (scikit-learn convention: loss sum + ||w||^2 / (2c), on standardised data).
    folds : int
        Inner cross-validation folds used to pick the layer (only when several layers are given).
    seed : int
        Seed of the fold assignment.
    max_iter : int
        L-BFGS iterations.
    device : str, optional
        Torch device for fitting; default CUDA when available.

    Attributes (after ``fit``)
    --------------------------
    layer_position : int
        Index into the layer axis of the training activations.
    layer : int | None
        The hidden-state index at that position, when ``layers`` was given.
    cv_auroc : list of float
        Mean inner-CV AUROC of each candidate layer.
    """

    kind = "safety_probe"

    def __init__(
        self,
        c: float = 0.05,
        folds: int = 3,
        seed: int = 0,
        max_iter: int = 200,
        device: str | None = None,
    ) -> None:
        if c <= 0:
            raise CTDInputError(f"c must be positive, got {c}")
        if folds < 2:
            raise CTDInputError(f"folds must be at least 2, got {folds}")
        self.c, self.folds, self.seed, self.max_iter = (
            float(c),
            int(folds),
            int(seed),
            int(max_iter),
        )
        self.device = device
        self.layer_position: int | None = None
        self.layer: int | None = None
        self.layers: list[int] | None = None
        self.cv_auroc: list[float] = []
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None
        self.coef: np.ndarray | None = None
        self.bias: float = 0.0

    def _device(self) -> str:
        import torch

        return self.device or ("cuda" if torch.cuda.is_available() else "cpu")

    def fit(self, x: Any, y: Any, layers: Sequence[int] | None = None) -> SafetyProbe:
        """Fit on activations ``x`` and 0/1 labels ``y``; pick the layer by CV if ``x`` has several.

        Raises
        ------
        CTDInputError
            Shape mismatch, non-finite values, a single class, or too few rows.
        """
        import torch

        x, y = check_xy(x, y)
        yn = y.numpy().astype(np.int64)
        if set(np.unique(yn)) != {0, 1}:
            raise CTDInputError("labels must contain both classes 0 and 1 (and nothing else)")
        if layers is not None and len(layers) != x.shape[1]:
            raise CTDInputError(f"{len(layers)} layer ids given for {x.shape[1]} activation layers")
        dev = self._device()
        xd = x.to(dev)
        n_layers = x.shape[1]
        if n_layers > 1:
            k = min(self.folds, int(np.bincount(yn).min()))
            if k < 2:
                raise CTDInputError("need at least 2 rows of each class to choose a layer")
            fold = stratified_folds(yn, k, self.seed)
            train_mask = torch.as_tensor(
                fold[None, :] != np.arange(k)[:, None], dtype=torch.float64
            )
            mean, scale, coef, bias = _fit_logreg_batched(xd, y, train_mask, self.c, self.max_iter)
            ws = coef / scale
            logits = (
                torch.einsum("nld,fld->fln", xd.to(ws.dtype), ws)
                + (bias - (mean * ws).sum(-1))[..., None]
            )
            logits = logits.cpu().numpy()
            scores = np.array(
                [
                    [auroc(yn[fold == f], logits[f, layer, fold == f]) for f in range(k)]
                    for layer in range(n_layers)
                ]
            )
            self.cv_auroc = [float(v) for v in np.nanmean(scores, axis=1)]
            pos = int(np.nanargmax(self.cv_auroc))
        else:
            self.cv_auroc = []
            pos = 0
        ones = torch.ones((1, x.shape[0]), dtype=torch.float64)
        mean, scale, coef, bias = _fit_logreg_batched(
            xd[:, pos : pos + 1], y, ones, self.c, self.max_iter
        )
        self.layer_position = pos
        self.layers = list(layers) if layers is not None else None
        self.layer = int(layers[pos]) if layers is not None else None
        self.mean = mean[0, 0].cpu().numpy()
        self.scale = scale[0, 0].cpu().numpy()
        self.coef = coef[0, 0].cpu().numpy()
        self.bias = float(bias[0, 0])
        return self

    def _check_fitted(self) -> None:
        if self.coef is None:
            raise RuntimeError("the probe is not fitted; call fit() or load() first")

    def decision_function(self, x: Any) -> np.ndarray:
        """Logit of P(unsafe) for each row (``x`` shaped like the training activations)."""
        self._check_fitted()
        assert self.mean is not None and self.scale is not None and self.coef is not None
        x3 = as_3d(x)
        pos = self.layer_position if x3.shape[1] > 1 else 0
        xl = x3[:, pos].double().numpy()
        if xl.shape[1] != self.coef.shape[0]:
            raise CTDInputError(
                f"activations have width {xl.shape[1]}, the probe expects {self.coef.shape[0]}"
            )
        return ((xl - self.mean) / self.scale) @ self.coef + self.bias

    def predict_proba(self, x: Any) -> np.ndarray:
        """P(unsafe) for each row."""
        from scipy.special import expit

        return expit(self.decision_function(x))

    # ------------------------------------------------------------------ persistence

    def _meta(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "c": self.c,
            "folds": self.folds,
            "seed": self.seed,
            "layer_position": self.layer_position,
            "layer": self.layer,
            "layers": self.layers,
            "cv_auroc": self.cv_auroc,
            "bias": self.bias,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write weights and settings to one safetensors file (atomic; no pickle)."""
        self._check_fitted()
        return save_probe(
            path, {"mean": self.mean, "scale": self.scale, "coef": self.coef}, self._meta()
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SafetyProbe:
        """Read a probe written by :meth:`save`."""
        tensors, meta = load_probe(path, cls.kind)
        probe = cls(c=meta["c"], folds=meta["folds"], seed=meta["seed"])
        probe.layer_position, probe.layer, probe.layers = (
            meta["layer_position"],
            meta["layer"],
            meta["layers"],
        )
        probe.cv_auroc, probe.bias = meta["cv_auroc"], meta["bias"]
        probe.mean, probe.scale, probe.coef = tensors["mean"], tensors["scale"], tensors["coef"]
        return probe


def out_of_fold_proba(
    x: Any,
    y: Any,
    layers: Sequence[int] | None = None,
    *,
    folds: int = 5,
    seed: int = 0,
    strata: Any = None,
    c: float = 0.05,
    inner_folds: int = 3,
    device: str | None = None,
) -> np.ndarray:
    """Out-of-fold P(unsafe) of every training row (K-fold cross-fitting).

    The rows are split into ``folds`` stratified folds (by ``strata`` if given, e.g. group x label
    codes, else by ``y``; seeded); each fold is scored by a :class:`SafetyProbe` fitted — its layer
    chosen by its own inner CV — on the other folds only. Unlike in-sample predictions these are
    as honest as predictions on unseen rows (of a probe trained on ``(folds - 1) / folds`` of the
    data), so they can serve as features/targets of a downstream fit on the same rows.

    Raises
    ------
    CTDInputError
        Shape mismatch, or a training fold without both classes (too few rows).
    """
    import torch

    x = as_3d(x)
    yn = np.asarray(y).astype(np.int64)
    if yn.ndim != 1 or len(yn) != x.shape[0]:
        raise CTDInputError(
            f"labels must be 1-D with one entry per row ({x.shape[0]}), got {yn.shape}"
        )
    if folds < 2:
        raise CTDInputError(f"folds must be at least 2, got {folds}")
    key = yn if strata is None else np.unique(np.asarray(strata), return_inverse=True)[1]
    fold = stratified_folds(key, folds, seed)
    out = np.full(len(yn), np.nan)
    for f in range(folds):
        held = fold == f
        if not held.any():
            continue
        fit = ~held
        if len(np.unique(yn[fit])) < 2:
            raise CTDInputError(
                f"cross-fitting: fold {f} leaves a single class to train on; use more rows or fewer folds"
            )
        probe = SafetyProbe(c=c, folds=inner_folds, seed=seed, device=device)
        probe.fit(x[torch.as_tensor(fit)], yn[fit], layers)
        out[held] = probe.predict_proba(x[torch.as_tensor(held)])
    return out

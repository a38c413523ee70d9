"""The delegation-value (DV) probe: ridge regression of the DV target on activations.

Re-exported by :mod:`probes.linear`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ctd_stats.errors import CTDInputError
from probes.probe_arrays import as_3d, check_xy, load_probe, save_probe


class DVProbe:
    """Ridge regression of a delegation value on standardised activations (closed form).

    Optionally with a few unpenalised extra features (e.g. the safety probe's ``p`` and
    ``|p - 1/2|``, which are free at deployment): the model is ``v ~ c + E beta + Z w`` with the
    ridge penalty on ``w`` only. Layer and penalty are chosen by exact leave-one-out error; with
    extras, "no activations" (``w = 0``) is one of the candidates, so activations are used only when
    they help on held-out rows.

    Parameters
    ----------
    alphas : sequence of float
        Candidate ridge penalties (on the sum of squared errors of standardised features).
    layer_position : int, optional
        Fix the layer (index into the activations' layer axis); default: choose it with the penalty
        by exact leave-one-out mean squared error.
    """

    kind = "dv_probe"

    def __init__(
        self,
        alphas: Sequence[float] = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5),
        layer_position: int | None = None,
    ) -> None:
        if len(alphas) == 0 or min(alphas) <= 0:
            raise CTDInputError("alphas must be a non-empty list of positive penalties")
        self.alphas = [float(a) for a in alphas]
        self.fixed_position = layer_position
        self.layer_position: int | None = None
        self.layer: int | None = None
        self.alpha: float | None = None
        self.loo_mse: list[list[float]] = []
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None
        self.coef: np.ndarray | None = None
        self.intercept: float = 0.0
        self.n_extra = 0
        self.extra_mean: np.ndarray = np.zeros(0)
        self.extra_scale: np.ndarray = np.ones(0)
        self.extra_coef: np.ndarray = np.zeros(0)

    @staticmethod
    def _extra(extra: Any, n: int) -> np.ndarray:
        e = np.zeros((n, 0)) if extra is None else np.asarray(extra, dtype=np.float64)
        if e.ndim == 1:
            e = e[:, None]
        if e.ndim != 2 or e.shape[0] != n or not np.isfinite(e).all():
            raise CTDInputError(f"extra features must be finite, shaped [{n}, k]; got {e.shape}")
        return e

    def fit(
        self, x: Any, v: Any, layers: Sequence[int] | None = None, extra: Any = None
    ) -> DVProbe:
        """Fit to targets ``v`` (one float per row), with optional unpenalised ``extra`` [n, k].

        Raises
        ------
        CTDInputError
            Shape mismatch or non-finite values.
        """
        import torch

        x, vt = check_xy(x, v)
        if not torch.isfinite(vt).all():
            raise CTDInputError("delegation targets contain NaN or infinite values")
        n_layers = x.shape[1]
        positions = (
            [self.fixed_position] if self.fixed_position is not None else list(range(n_layers))
        )
        for p in positions:
            if not 0 <= p < n_layers:
                raise CTDInputError(f"layer_position {p} out of range for {n_layers} layers")
        n = x.shape[0]
        e = self._extra(extra, n)
        e_mean, e_scale = e.mean(0), np.maximum(e.std(0), 1e-12)
        base = torch.from_numpy(np.c_[np.ones(n), (e - e_mean) / e_scale])  # [n, 1 + k]
        q, _ = torch.linalg.qr(base)  # orthonormal basis of the unpenalised columns
        xs = x[:, positions].double().transpose(0, 1)  # [P, n, d]
        mean = xs.mean(1, keepdim=True)
        scale = xs.std(1, unbiased=False, keepdim=True).clamp_min(1e-6)
        z = (xs - mean) / scale
        # Frisch-Waugh: remove the unpenalised part from targets and features, ridge on the rest.
        v_perp = vt - q @ (q.T @ vt)
        zr = z - q @ (q.T @ z)
        h_base = (q * q).sum(1)
        # Eigen-decomposition of the smaller Gram matrix gives G = Z V (= U S) and the squared
        # singular values lam, so that for every penalty a at once:
        #   fitted = G diag(1 / (lam + a)) G^T v,   leverage_i = sum_r G_ir^2 / (lam_r + a).
        alphas = torch.tensor(self.alphas, dtype=torch.float64)
        d = z.shape[2]
        if n >= d:
            lam, vecs = _eigh(zr.transpose(1, 2) @ zr)  # [P, d], [P, d, d]
            g = zr @ vecs  # [P, n, d]
        else:
            lam, u = _eigh(zr @ zr.transpose(1, 2))  # [P, n], [P, n, n]
            g = u * lam.clamp_min(0).sqrt()[:, None, :]
        lam = lam.clamp_min(0)
        inv = torch.where(
            lam[:, None, :] > 1e-9 * lam.max(), 1.0 / (lam[:, None, :] + alphas[None, :, None]), 0.0
        )
        gty = torch.einsum("pnr,n->pr", g, v_perp)
        gt = g.transpose(1, 2)  # [P, r, n]
        fitted = (inv * gty[:, None, :]) @ gt  # [P, A, n]
        hat = inv @ (gt * gt) + h_base
        loo = ((v_perp[None, None, :] - fitted) / (1.0 - hat).clamp_min(1e-9)) ** 2
        mse = loo.mean(-1)  # [P, A]
        no_act = float(((v_perp / (1.0 - h_base).clamp_min(1e-9)) ** 2).mean())
        self.loo_mse = mse.tolist()
        best = int(torch.argmin(mse))
        pi, ai = divmod(best, len(self.alphas))
        self.layer_position = positions[pi]
        self.layer = int(layers[self.layer_position]) if layers is not None else None
        zp, zrp = z[pi], zr[pi]
        if e.shape[1] > 0 and no_act <= float(mse[pi, ai]):
            self.alpha = float("inf")  # activations do not help held-out rows: extras only
            w = torch.zeros(d, dtype=torch.float64)
        else:
            self.alpha = self.alphas[ai]
            if n >= d:
                w = torch.linalg.solve(
                    zrp.T @ zrp + self.alpha * torch.eye(d, dtype=torch.float64), zrp.T @ v_perp
                )
            else:  # dual form: w = Z^T (Z Z^T + a I)^-1 v
                w = zrp.T @ torch.linalg.solve(
                    zrp @ zrp.T + self.alpha * torch.eye(n, dtype=torch.float64), v_perp
                )
        beta = torch.linalg.lstsq(base, (vt - zp @ w)[:, None]).solution[:, 0]
        self.mean = mean[pi, 0].numpy()
        self.scale = scale[pi, 0].numpy()
        self.coef = w.numpy()
        self.intercept = float(beta[0])
        self.n_extra = e.shape[1]
        self.extra_mean, self.extra_scale = e_mean, e_scale
        self.extra_coef = beta[1:].numpy()
        return self

    def predict(self, x: Any, extra: Any = None) -> np.ndarray:
        """Predicted delegation value for each row (``extra`` as in :meth:`fit`)."""
        if self.coef is None or self.mean is None or self.scale is None:
            raise RuntimeError("the probe is not fitted; call fit() or load() first")
        x3 = as_3d(x)
        pos = self.layer_position if x3.shape[1] > 1 else 0
        xl = x3[:, pos].double().numpy()
        if xl.shape[1] != self.coef.shape[0]:
            raise CTDInputError(
                f"activations have width {xl.shape[1]}, the probe expects {self.coef.shape[0]}"
            )
        out = ((xl - self.mean) / self.scale) @ self.coef + self.intercept
        if self.n_extra:
            if extra is None:
                raise CTDInputError(
                    f"this DV probe was fitted with {self.n_extra} extra feature(s); pass extra="
                )
            e = self._extra(extra, xl.shape[0])
            if e.shape[1] != self.n_extra:
                raise CTDInputError(f"expected {self.n_extra} extra feature(s), got {e.shape[1]}")
            out = out + ((e - self.extra_mean) / self.extra_scale) @ self.extra_coef
        return out

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write weights and settings to one safetensors file (atomic; no pickle)."""
        if self.coef is None:
            raise RuntimeError("the probe is not fitted")
        meta = {
            "kind": self.kind,
            "alphas": self.alphas,
            "fixed_position": self.fixed_position,
            "layer_position": self.layer_position,
            "layer": self.layer,
            "alpha": None if self.alpha is None or np.isinf(self.alpha) else self.alpha,
            "loo_mse": self.loo_mse,
            "intercept": self.intercept,
            "n_extra": self.n_extra,
        }
        arrays = {"mean": self.mean, "scale": self.scale, "coef": self.coef}
        if self.n_extra:
            arrays.update(
                extra_mean=self.extra_mean, extra_scale=self.extra_scale, extra_coef=self.extra_coef
            )
        return save_probe(path, arrays, meta)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> DVProbe:
        """Read a probe written by :meth:`save`."""
        tensors, meta = load_probe(path, cls.kind)
        probe = cls(alphas=meta["alphas"], layer_position=meta["fixed_position"])
        probe.layer_position, probe.layer = meta["layer_position"], meta["layer"]
        probe.alpha = float("inf") if meta["alpha"] is None else meta["alpha"]
        probe.loo_mse, probe.intercept = meta["loo_mse"], meta["intercept"]
        probe.mean, probe.scale, probe.coef = tensors["mean"], tensors["scale"], tensors["coef"]
        probe.n_extra = int(meta.get("n_extra", 0))
        if probe.n_extra:
            probe.extra_mean, probe.extra_scale = tensors["extra_mean"], tensors["extra_scale"]
            probe.extra_coef = tensors["extra_coef"]
        return probe


def _eigh(mats: Any) -> tuple[Any, Any]:
    """Batched symmetric eigen-decomposition; on CPU LAPACK's divide-and-conquer driver (``evd``),
    which is 10-20x faster than torch's CPU ``eigh`` for 2048 x 2048 matrices."""
    import torch

    if mats.device.type != "cpu":
        return torch.linalg.eigh(mats)
    from scipy.linalg import eigh

    pairs = [eigh(m.numpy(), driver="evd") for m in mats]
    return (
        torch.from_numpy(np.stack([p[0] for p in pairs])),
        torch.from_numpy(np.stack([p[1] for p in pairs])),
    )

"""Pieces of the study's controls (:mod:`ctd_stats.study.controls`): certified delegation masks of
any score for any cascade, the paired intervals, the pool bootstrap and the null world.

See :mod:`ctd_stats.study.controls` for what each computes and the statement of the null.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ctd_stats.stats.baselines import calibrated_uncertainty
from ctd_stats.stats.dv_targets import predicts_unsafe
from ctd_stats.stats.metrics import cascade_auroc_rows
from ctd_stats.stats.pareto import CascadeData
from ctd_stats.stats.sweep import cascade_thresholds
from ctd_stats.study import diagnostics as dg
from ctd_stats.study.control_inputs import DevRows
from ctd_stats.study.runner import StudyInputs

__all__ = ["IntervalArray", "ctd_unc_masks", "null_world", "platt_fit", "pool_bootstrap"]

#: Seed offsets of the pool bootstrap and the null world (distinct from the study's splits).
_POOL_BOOT_SALT = 7919
_NULL_SALT = 15485863


@dataclass(frozen=True)
class IntervalArray:
    """Mean and 95% interval (2.5% / 97.5% quantiles over repetitions) per budget."""

    mean: NDArray[np.float64]
    lo: NDArray[np.float64]
    hi: NDArray[np.float64]

    @classmethod
    def of(cls, diffs: NDArray[np.float64]) -> IntervalArray:
        """From per-repetition values (axis 0)."""
        m, lo, hi = dg.paired_interval(np.asarray(diffs, dtype=np.float64))
        return cls(m, lo, hi)

    def at(self, j: int) -> tuple[float, float, float]:
        return float(self.mean[..., j]), float(self.lo[..., j]), float(self.hi[..., j])

    def to_list(self) -> list[dict[str, Any]]:
        return dg.interval_rows(self.mean, self.lo, self.hi)


def platt_fit(p: NDArray[np.float64], y: NDArray[np.bool_]) -> tuple[float, float]:
    """Platt scaling of a probability: (a, c) maximising the likelihood of y ~ σ(a·logit p + c),
    with a small ridge (1e-6 · (a² + c²)) so that separable data give a finite answer."""
    from scipy.optimize import minimize
    from scipy.special import expit, log_expit

    z = _logit(p)
    t = np.asarray(y, dtype=np.float64)

    def loss(w: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        s = w[0] * z + w[1]
        val = -float(np.sum(t * log_expit(s) + (1 - t) * log_expit(-s))) + 1e-6 * float(w @ w)
        r = expit(s) - t
        return val, np.array([float(r @ z), float(r.sum())]) + 2e-6 * w

    res = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    return float(res.x[0]), float(res.x[1])


def _logit(p: NDArray[np.float64]) -> NDArray[np.float64]:
    c = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.asarray(np.log(c / (1 - c)), dtype=np.float64)


def _platt(p: NDArray[np.float64], ac: tuple[float, float]) -> NDArray[np.float64]:
    from scipy.special import expit

    return np.asarray(expit(ac[0] * _logit(p) + ac[1]), dtype=np.float64)


def control_masks(
    y: NDArray[np.bool_],
    p: NDArray[np.float64],
    b: NDArray[np.float64],
    score: NDArray[np.float64],
    opt: NDArray[np.int64],
    ht: NDArray[np.int64],
    ev: NDArray[np.int64],
    alphas: NDArray[np.float64],
    delta: float,
    split: str,
) -> NDArray[np.bool_]:
    """Certified CTD-style delegation masks [budget, eval row] of ``score`` for the cascade (p, b)."""
    pc, ec = predicts_unsafe(p) == y, predicts_unsafe(b) == y

    def data(idx: NDArray[np.int64]) -> CascadeData:
        return CascadeData(score[idx], pc[idx], ec[idx])

    taus = cascade_thresholds(opt=data(opt), ht=data(ht), budgets=alphas, delta=delta, split=split)
    return np.asarray(score[ev][None, :] > taus[:, None], dtype=bool)


def ctd_unc_masks(
    y: NDArray[np.bool_],
    p: NDArray[np.float64],
    b: NDArray[np.float64],
    d: NDArray[np.float64],
    opt: NDArray[np.int64],
    ht: NDArray[np.int64],
    ev: NDArray[np.int64],
    alphas: NDArray[np.float64],
    delta: float,
    split: str,
) -> NDArray[np.bool_]:
    """Masks [2 (CTD, calibrated uncertainty), budget, eval row]."""
    u = calibrated_uncertainty(p, p[np.concatenate([opt, ht])])
    return np.stack(
        [
            control_masks(y, p, b, d, opt, ht, ev, alphas, delta, split),
            control_masks(y, p, b, u, opt, ht, ev, alphas, delta, split),
        ]
    )


def control_auc(
    masks: NDArray[np.bool_], p: NDArray[np.float64], b: NDArray[np.float64], y: NDArray[np.bool_]
) -> NDArray[np.float64]:
    """Cascade AUROC of masks [..., n] → [...]."""
    flat = masks.reshape(-1, masks.shape[-1])
    return cascade_auroc_rows(flat, p, b, y).reshape(masks.shape[:-1])


def pool_bootstrap(
    inputs: StudyInputs,
    alphas: NDArray[np.float64],
    delta: float,
    split: str,
    n_cal: int,
    n_opt: int,
    reps: int,
    seed: int,
) -> IntervalArray:
    """Δ over pool bootstrap replicates: the pool resampled with replacement, then split."""
    y, p, b, d = inputs.labels, inputs.probe_prob, inputs.expert_prob, inputs.dv_score
    out = np.empty((reps, alphas.size))
    for r in range(reps):
        idx = np.random.default_rng(
            np.random.SeedSequence(seed + _POOL_BOOT_SALT, spawn_key=(r,))
        ).integers(0, inputs.n, inputs.n)
        cal, ev = idx[:n_cal], idx[n_cal:]
        m = ctd_unc_masks(y, p, b, d, cal[:n_opt], cal[n_opt:], ev, alphas, delta, split)
        a = control_auc(m, p[ev], b[ev], y[ev])
        out[r] = a[0] - a[1]
    return IntervalArray.of(out)


def null_world(
    inputs: StudyInputs,
    dev: DevRows,
    alphas: NDArray[np.float64],
    delta: float,
    split: str,
    n_cal: int,
    n_opt: int,
    reps: int,
    seed: int,
    observed: NDArray[np.float64],
) -> dict[str, Any]:
    """The null that can fail (module docstring): Δ*_m per replicate and the p-value of ``observed``."""
    p, d = inputs.probe_prob, inputs.dv_score
    ac = platt_fit(dev.probe_prob, dev.labels)
    q = _platt(p, ac)
    acc = float(np.mean(predicts_unsafe(dev.expert_prob) == dev.labels))
    n = inputs.n
    out = np.empty((reps, alphas.size))
    for r in range(reps):
        rng = np.random.default_rng(np.random.SeedSequence(seed + _NULL_SALT, spawn_key=(r,)))
        ys = rng.random(n) < q
        right = rng.random(n) < acc
        says = np.where(right, ys, ~ys)
        bs = np.where(says, acc, 1.0 - acc)
        perm = rng.permutation(n)
        cal, ev = perm[:n_cal], perm[n_cal:]
        m = ctd_unc_masks(ys, p, bs, d, cal[:n_opt], cal[n_opt:], ev, alphas, delta, split)
        a = control_auc(m, p[ev], bs[ev], ys[ev])
        out[r] = a[0] - a[1]
    ok = ~np.isnan(out)
    exceed = ((out >= observed[None, :] - 1e-12) & ok).sum(axis=0)
    valid = ok.sum(axis=0)
    pval = (1 + exceed) / (1 + valid)
    iv = IntervalArray.of(out)
    return {
        "hypothesis": "labels depend on the input only through the probe's score (Platt-calibrated on dev) "
        "and the expert is uniformly good (accuracy on dev, everywhere)",
        "platt": {"a": ac[0], "c": ac[1]},
        "uniform_expert_accuracy": acc,
        "draws": int(reps),
        "null_delta": iv.to_list(),
        "observed_delta": [float(x) for x in observed],
        "exceedances": [int(x) for x in exceed],
        "valid_draws": [int(x) for x in valid],
        "p_value": [float(x) for x in pval],
        "rejected_at_0.05": [bool(x <= 0.05) for x in pval],
    }

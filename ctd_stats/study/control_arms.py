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

__all__ = [
    "ControlSettings",
    "IntervalArray",
    "SplitCascade",
    "control_auc",
    "control_masks",
    "ctd_unc_masks",
    "null_world",
    "platt_fit",
    "pool_bootstrap",
]

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


@dataclass(frozen=True)
class ControlSettings:
    """The settings every control arm of one expert shares (immutable; built once per expert by
    :func:`~ctd_stats.study.controls.compute_controls`, see :meth:`for_pool`).

    Attributes
    ----------
    budget_grid : ndarray of float
        Delegation budgets; masks and intervals have one entry per budget.
    delta : float
        Risk level δ of each certified threshold (:func:`~ctd_stats.stats.sweep.cascade_thresholds`).
    split : str
        Calibration split protocol of the headline: ``"opt_ht"`` or ``"none"``.
    n_cal : int
        Calibration rows of one split of the pool; the remaining rows are the evaluation rows.
    n_opt : int
        Of the calibration rows, those of the ``opt`` part (the first ``n_opt``, 1 to n_cal − 1).
    repeats : int
        The study's random calibration/evaluation splits.
    draws : int
        Replicates of the pool bootstrap and of the null world.
    seed : int
        The study's seed (split ``r`` is child ``r`` of ``SeedSequence(seed)``).
    """

    budget_grid: NDArray[np.float64]
    delta: float
    split: str
    n_cal: int
    n_opt: int
    repeats: int
    draws: int
    seed: int

    @classmethod
    def for_pool(
        cls,
        n: int,
        *,
        budgets: NDArray[np.float64] | list[float],
        delta: float,
        repeats: int,
        cal_fraction: float,
        opt_fraction: float,
        seed: int,
        split: str,
        null_draws: int | None,
    ) -> ControlSettings:
        """The settings for a pool of ``n`` rows: ``n_cal = round(cal_fraction · n)`` calibration
        rows, ``n_opt = round(opt_fraction · n_cal)`` of them (clipped to 1 … n_cal − 1) in ``opt``;
        ``null_draws`` defaults to ``repeats``."""
        n_cal = round(cal_fraction * n)
        return cls(
            budget_grid=np.asarray(budgets, dtype=np.float64),
            delta=delta,
            split=split,
            n_cal=n_cal,
            n_opt=min(max(1, round(opt_fraction * n_cal)), n_cal - 1),
            repeats=repeats,
            draws=null_draws if null_draws is not None else repeats,
            seed=seed,
        )

    @property
    def other_split(self) -> str:
        """The split protocol that is not the headline's."""
        return "none" if self.split == "opt_ht" else "opt_ht"


@dataclass(frozen=True)
class SplitCascade:
    """One cascade (labels, probe and expert P(unsafe) of the pool rows) on one split of the pool
    (``opt`` / ``ht`` / ``ev`` row indices), with the certificate's budgets, δ and split protocol:
    everything :func:`control_masks` needs besides the delegation score (immutable).

    Variants (another probe, the other protocol) are made with :func:`dataclasses.replace`.
    """

    labels: NDArray[np.bool_]
    probe_prob: NDArray[np.float64]
    expert_prob: NDArray[np.float64]
    opt: NDArray[np.int64]
    ht: NDArray[np.int64]
    ev: NDArray[np.int64]
    budget_grid: NDArray[np.float64]
    delta: float
    split: str

    @classmethod
    def of(
        cls,
        settings: ControlSettings,
        labels: NDArray[np.bool_],
        probe_prob: NDArray[np.float64],
        expert_prob: NDArray[np.float64],
        rows: NDArray[np.int64],
    ) -> SplitCascade:
        """Split ``rows`` (a permutation or resample of the pool): the first ``n_cal`` calibrate
        (``opt``: the first ``n_opt`` of them, ``ht``: the rest), the others evaluate."""
        cal, ev = rows[: settings.n_cal], rows[settings.n_cal :]
        return cls(
            labels,
            probe_prob,
            expert_prob,
            cal[: settings.n_opt],
            cal[settings.n_opt :],
            ev,
            settings.budget_grid,
            settings.delta,
            settings.split,
        )


def control_masks(cas: SplitCascade, score: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Certified CTD-style delegation masks [budget, eval row] of ``score`` for the cascade."""
    y = cas.labels
    pc, ec = predicts_unsafe(cas.probe_prob) == y, predicts_unsafe(cas.expert_prob) == y

    def data(idx: NDArray[np.int64]) -> CascadeData:
        return CascadeData(score[idx], pc[idx], ec[idx])

    taus = cascade_thresholds(
        opt=data(cas.opt),
        ht=data(cas.ht),
        budgets=cas.budget_grid,
        delta=cas.delta,
        split=cas.split,
    )
    return np.asarray(score[cas.ev][None, :] > taus[:, None], dtype=bool)


def ctd_unc_masks(cas: SplitCascade, dv_score: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Masks [2 (CTD with ``dv_score``, calibrated uncertainty), budget, eval row]."""
    p = cas.probe_prob
    u = calibrated_uncertainty(p, p[np.concatenate([cas.opt, cas.ht])])
    return np.stack([control_masks(cas, dv_score), control_masks(cas, u)])


def control_auc(
    masks: NDArray[np.bool_], p: NDArray[np.float64], b: NDArray[np.float64], y: NDArray[np.bool_]
) -> NDArray[np.float64]:
    """Cascade AUROC of masks [..., n] → [...]."""
    flat = masks.reshape(-1, masks.shape[-1])
    return cascade_auroc_rows(flat, p, b, y).reshape(masks.shape[:-1])


def pool_bootstrap(inputs: StudyInputs, settings: ControlSettings) -> IntervalArray:
    """Δ over ``settings.draws`` pool bootstrap replicates: the pool resampled with replacement,
    then split."""
    y, p, b, d = inputs.labels, inputs.probe_prob, inputs.expert_prob, inputs.dv_score
    seed = settings.seed + _POOL_BOOT_SALT
    out = np.empty((settings.draws, settings.budget_grid.size))
    for r in range(settings.draws):
        idx = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(r,))).integers(
            0, inputs.n, inputs.n
        )
        cas = SplitCascade.of(settings, y, p, b, idx)
        ev = cas.ev
        a = control_auc(ctd_unc_masks(cas, d), p[ev], b[ev], y[ev])
        out[r] = a[0] - a[1]
    return IntervalArray.of(out)


def null_world(
    inputs: StudyInputs, dev: DevRows, settings: ControlSettings, observed: NDArray[np.float64]
) -> dict[str, Any]:
    """The null that can fail (module docstring): Δ*_m per replicate and the p-value of ``observed``."""
    p, d = inputs.probe_prob, inputs.dv_score
    ac = platt_fit(dev.probe_prob, dev.labels)
    q = _platt(p, ac)
    acc = float(np.mean(predicts_unsafe(dev.expert_prob) == dev.labels))
    n, reps = inputs.n, settings.draws
    out = np.empty((reps, settings.budget_grid.size))
    for r in range(reps):
        rng = np.random.default_rng(
            np.random.SeedSequence(settings.seed + _NULL_SALT, spawn_key=(r,))
        )
        ys = rng.random(n) < q
        right = rng.random(n) < acc
        says = np.where(right, ys, ~ys)
        bs = np.where(says, acc, 1.0 - acc)
        cas = SplitCascade.of(settings, ys, p, bs, rng.permutation(n))
        ev = cas.ev
        a = control_auc(ctd_unc_masks(cas, d), p[ev], bs[ev], ys[ev])
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

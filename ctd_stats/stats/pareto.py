"""Calibrate-Then-Delegate proper: Pareto testing of a DV threshold (budget, optionally error).

Procedure (Laufer-Goldshtein et al.'s Pareto Testing, as used by CTD):

1. Split the calibration data into an *opt* part and a *ht* (hypothesis-testing) part.
2. On opt, compute for each candidate τ the delegation count and the cascade error count (the
   cascade answers with the expert where d > τ, with the probe otherwise), and keep the Pareto front
   of (delegation rate, error) — a τ that delegates more without lowering the error is dropped.
3. Order the front from least to most delegation (descending τ) and test the budget hypothesis
   H_τ: P(d(X) > τ) > budget on ht along that order (fixed-sequence by default).
4. Among certified thresholds choose the one with the lowest opt error (ties: the largest τ).

Guarantee. If opt and ht are independent, and ht and deployment inputs are i.i.d. from one
distribution, then P( R_B(τ̂) ≤ budget ) ≥ 1 − δ over the draw of ht, because the family and its
order are functions of opt only. With ``error_level`` set, the returned τ̂ also satisfies
R_E(τ̂) ≤ error_level jointly, with probability ≥ 1 − δ, where R_E is the cascade's
misclassification probability at the 0.5 cutoff. Two joint rules:

* ``"max_p"``: one fixed-sequence chain at level δ on p_J = max(p_B, p_E), the max of two
  valid p-values being valid for the union null "budget or error violated". The chain is ordered by
  the same p-value computed on **opt** (ascending; ties: least delegation first), Pareto Testing's
  own order. The order is a function of opt only, so with opt independent of ht the FWER over the
  front is ≤ δ and P( R_B(τ̂) ≤ budget and R_E(τ̂) ≤ error_level ) ≥ 1 − δ.
  (Ordering by least delegation first instead would put the probe-alone end of the front first;
  when ``error_level`` is below the probe's own error that hypothesis is true, the chain stops at
  step one and nothing is certified.)
* ``"bonferroni_split"`` (default): one fixed-sequence chain per risk at δ/2 each (budget chain by
  least delegation first, error chain by opt error, lowest first); a threshold is certified if both
  chains reject it (union bound: the probability that either chain rejects a true null is
  ≤ δ/2 + δ/2 = δ). It is the default because it certified at least as often as the reordered
  ``max_p`` chain in the four strong-expert worlds measured (n = 1000, budget 0.3, δ = 0.1,
  ε ∈ {0.15, 0.2}: 1.000/1.000/0.998/0.476 against 0.999/0.984/0.947/0.341;
  ``benchmarks/joint_power.py``, table in ``docs/concepts.md``). That is an empirical finding, not a
  theorem: in other worlds the comparison can differ.

If nothing is certified, τ̂ = +∞ (never delegate).

No split (``split="none"``, budget-only guarantee). The front, its order and the final choice may be
computed on the *same* n rows that the budget test uses. Claim: for a fixed score function d (fitted
on data disjoint from the n calibration rows), i.i.d. calibration rows and deployment inputs, any
valid count-based p-value p(k; n, α) that is non-decreasing in k (binomial, Hoeffding, Bentkus, HB),
and *any* data-dependent family F̂ ⊆ ℝ ∪ {+∞} with *any* selection rule that only returns a τ̂ with
p(K(τ̂); n, α) ≤ δ (or τ̂ = +∞),

    P( R_B(τ̂) ≤ α ) ≥ 1 − δ,    K(τ) = #{i : d_i > τ},  R_B(τ) = P(d(X) > τ).

Proof. R_B is non-increasing and right-continuous, so τ* := inf{τ : R_B(τ) ≤ α} has R_B(τ*) ≤ α
(τ* = −∞ if every τ qualifies; then there is nothing to prove), and every τ < τ* has R_B(τ) > α, hence
q := P(d(X) ≥ τ*) = lim_{τ↑τ*} R_B(τ) ≥ α. Let K* := #{i : d_i ≥ τ*} ~ Bin(n, q) and let
E := {p(K*; n, α) ≤ δ}. Because Bin(n, q) stochastically dominates Bin(n, α) and p is non-decreasing
in k and valid (super-uniform under Bin(n, α)), P(E) ≤ P_{Bin(n, α)}(p(K; n, α) ≤ δ) ≤ δ. On the
complement of E, take any τ < τ*: every d_i ≥ τ* exceeds τ, so K(τ) ≥ K* and p(K(τ)) ≥ p(K*) > δ; no
threshold below τ* has a p-value ≤ δ. So outside the single event E, of probability ≤ δ, *every*
threshold whose p-value is ≤ δ is at least τ*, i.e. has R_B ≤ α: all certified thresholds are
simultaneously valid. E is defined by the n rows and τ* alone (not by the grid, the front, the test
order or the choice), so computing those from the same rows cannot enlarge it; fixed-sequence,
Bonferroni and Holm only reject hypotheses with p ≤ δ, and τ̂ = +∞ has R_B = 0. ∎

The argument uses the monotonicity of R_B in τ. The cascade error R_E(τ) is not monotone in τ, so
there is no single boundary event; a joint (``error_level``) guarantee still needs a family fixed
before the test rows are seen, i.e. ``split="opt_ht"``, and ``split="none"`` with ``error_level`` is
refused. With ``split="none"`` the reported "opt" rates and errors are in-sample on the test rows
(the chosen error is optimistic; only the budget is certified).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ctd_stats.errors import CTDInputError
from ctd_stats.io import json_float
from ctd_stats.stats.curves import SortedScores, cascade_error_counts
from ctd_stats.stats.dv_targets import UNSAFE_CUTOFF, predicts_unsafe
from ctd_stats.stats.fwer import (
    JOINT_RULES,
    BonferroniSplitChains,
    FixedSequence,
    FWERProcedure,
    MaxP,
    get_procedure,
    warn_weak_full_grid,
)
from ctd_stats.stats.inputs import as_bool_1d, as_finite_1d, as_probabilities, check_open_unit
from ctd_stats.stats.ltt import Calibration, candidate_grid
from ctd_stats.stats.pvalues import pvalue_function
from ctd_stats.table.splits import CALIBRATION_SPLITS

JOINT_METHODS = tuple(JOINT_RULES)


@dataclass(frozen=True)
class CascadeData:
    """Per-row inputs of a cascade: DV score and whether the probe / the expert is correct."""

    dv_score: NDArray[np.float64]
    probe_correct: NDArray[np.bool_]
    expert_correct: NDArray[np.bool_]

    def __post_init__(self) -> None:
        d = as_finite_1d("dv_score", self.dv_score)
        object.__setattr__(self, "dv_score", d)
        object.__setattr__(
            self, "probe_correct", as_bool_1d("probe_correct", self.probe_correct, d.size)
        )
        object.__setattr__(
            self, "expert_correct", as_bool_1d("expert_correct", self.expert_correct, d.size)
        )

    @classmethod
    def from_probabilities(
        cls,
        dv_score: ArrayLike,
        labels: ArrayLike,
        probe_prob: ArrayLike,
        expert_prob: ArrayLike,
        *,
        cutoff: float = UNSAFE_CUTOFF,
    ) -> CascadeData:
        """Build from labels (unsafe = 1) and P(unsafe) of probe and expert; a prediction is
        ``prob ≥ cutoff``."""
        d = as_finite_1d("dv_score", dv_score)
        y = as_bool_1d("labels", labels, d.size)
        p = as_probabilities("probe_prob", probe_prob, d.size)
        b = as_probabilities("expert_prob", expert_prob, d.size)
        return cls(d, predicts_unsafe(p, cutoff) == y, predicts_unsafe(b, cutoff) == y)

    @property
    def n(self) -> int:
        return int(self.dv_score.size)

    def subset(self, idx: NDArray[np.int64]) -> CascadeData:
        return CascadeData(self.dv_score[idx], self.probe_correct[idx], self.expert_correct[idx])

    @classmethod
    def concat(cls, parts: list[CascadeData]) -> CascadeData:
        """The rows of ``parts``, one after the other."""
        return cls(
            np.concatenate([p.dv_score for p in parts]),
            np.concatenate([p.probe_correct for p in parts]),
            np.concatenate([p.expert_correct for p in parts]),
        )

    def split(self, opt_fraction: float, seed: int) -> tuple[CascadeData, CascadeData]:
        """Random opt/ht split (``opt_fraction`` of rows to opt), reproducible from ``seed``."""
        f = check_open_unit("opt_fraction", opt_fraction)
        if self.n < 2:
            raise CTDInputError(f"calibration set too small to split into opt and ht: n = {self.n}")
        perm = np.random.default_rng(seed).permutation(self.n)
        n_opt = min(max(1, round(f * self.n)), self.n - 1)
        return self.subset(perm[:n_opt]), self.subset(perm[n_opt:])


@dataclass(frozen=True)
class CascadeCalibration(Calibration):
    """Result of :func:`calibrate_cascade`. The tested family is the Pareto front, in test order.

    Extra attributes: ``n_opt``, ``n_ht``; ``front_thresholds``, ``front_rates``, ``front_errors``
    (opt delegation rate and cascade error of each front point, descending τ);
    ``chosen_opt_error``; ``error_level``, ``joint``, ``error_pvalues`` (ht, per front point);
    ``ht_error_rates``; ``grid_size`` (candidates before Pareto filtering); ``split`` ("opt_ht", or
    "none": opt and ht are the same rows, ``n_opt == n_ht == n``); ``test_order`` (indices
    into the front, in the order the fixed-sequence chain tested them: descending τ, except for the
    joint ``max_p`` chain, which is ordered by opt p-value).

    Unlike :class:`~ctd_stats.stats.ltt.Calibration`, the arrays (``thresholds``, ``pvalues``,
    ``certified``, …) are aligned with the front in descending τ; ``to_dict()["tested"]`` lists them
    in test order.
    """

    n_opt: int = 0
    n_ht: int = 0
    front_thresholds: NDArray[np.float64] = field(default_factory=lambda: np.empty(0))
    front_rates: NDArray[np.float64] = field(default_factory=lambda: np.empty(0))
    front_errors: NDArray[np.float64] = field(default_factory=lambda: np.empty(0))
    chosen_opt_error: float = math.nan
    error_level: float | None = None
    joint: str | None = None
    error_pvalues: NDArray[np.float64] | None = None
    ht_error_rates: NDArray[np.float64] = field(default_factory=lambda: np.empty(0))
    grid_size: int = 0
    test_order: NDArray[np.int64] = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    split: str = "opt_ht"

    @property
    def guarantee(self) -> str:
        base = super().guarantee
        if self.error_level is None or not self.is_certified:
            return base
        return (
            f"With probability at least {1 - self.delta:.3g} over the draw of the n = {self.n} "
            f"hypothesis-testing points, BOTH the long-run delegation rate P(d(X) > {self.threshold:.6g}) "
            f"≤ {self.budget:.3g} AND the cascade's misclassification probability ≤ {self.error_level:.3g} "
            f"({self.joint}). Assumes i.i.d. (exchangeable) calibration and deployment data; no guarantee "
            "under distribution shift."
        )

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        tested = out["tested"]
        for i, row in enumerate(tested):
            row["opt_rate"] = float(self.front_rates[i])
            row["opt_error"] = float(self.front_errors[i])
            row["ht_error_rate"] = float(self.ht_error_rates[i])
            if self.error_pvalues is not None:
                row["error_pvalue"] = float(self.error_pvalues[i])
        if self.test_order.size == len(tested):
            out["tested"] = [tested[int(i)] for i in self.test_order]
        out.update(
            method=self.method,
            split=self.split,
            n_opt=self.n_opt,
            n_ht=self.n_ht,
            grid_size=self.grid_size,
            chosen_opt_error=None if math.isnan(self.chosen_opt_error) else self.chosen_opt_error,
            error_level=self.error_level,
            joint=self.joint,
            pareto_front=[
                {"threshold": json_float(float(t)), "opt_rate": float(r), "opt_error": float(e)}
                for t, r, e in zip(
                    self.front_thresholds, self.front_rates, self.front_errors, strict=True
                )
            ],
        )
        return out


def pareto_front(counts: NDArray[np.int64], errors: NDArray[np.int64]) -> NDArray[np.int64]:
    """Indices of the Pareto-efficient candidates when minimising (counts, errors).

    Candidates must be given with ``counts`` non-decreasing (descending τ). A candidate is kept iff
    its error is strictly below every candidate with fewer delegations; among candidates with the same
    count, the first (largest τ) is kept. Returned in the input order.
    """
    if counts.size == 0:
        return np.zeros(0, dtype=np.int64)
    if np.any(counts[1:] < counts[:-1]):
        raise CTDInputError(
            "pareto_front needs counts in non-decreasing order (descending thresholds)"
        )
    keep = np.ones(counts.size, dtype=bool)  # first of its count ...
    np.not_equal(counts[1:], counts[:-1], out=keep[1:])
    errors = np.asarray(errors)
    prev_min = np.empty(
        counts.size, dtype=np.result_type(errors, np.int64)
    )  # ... below earlier errors
    prev_min[0] = np.iinfo(np.int64).max
    np.minimum.accumulate(errors[:-1], out=prev_min[1:])
    keep &= errors < prev_min
    return np.flatnonzero(keep).astype(np.int64, copy=False)


def opt_candidates(
    opt: CascadeData, thresholds: ArrayLike | None = None
) -> tuple[
    SortedScores, NDArray[np.float64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]
]:
    """Step 2 on the opt rows: (sorted opt scores, grid, K(τ), E(τ), Pareto-front indices).

    The grid is descending (every distinct opt score by default), so K is non-decreasing along it
    and along the front. Cost O(n log n + L log n).
    """
    s_opt = SortedScores.from_scores(opt.dv_score)
    grid = candidate_grid(s_opt, thresholds)
    k_opt = s_opt.delegation_counts(grid)
    e_opt = cascade_error_counts(s_opt, ~opt.probe_correct, ~opt.expert_correct, k_opt)
    return s_opt, grid, k_opt, e_opt, pareto_front(k_opt, e_opt)


def max_p_order(
    opt_counts: NDArray[np.int64],
    opt_errors: NDArray[np.int64],
    n_opt: int,
    budget: float,
    error_level: float,
    pvalue: str = "binomial",
    error_pvalue: str = "binomial",
) -> NDArray[np.int64]:
    """Test order of the joint ``max_p`` chain: ascending opt p-value max(p_B, p_E), computed on opt.

    Parameters
    ----------
    opt_counts, opt_errors : ndarray of int
        Delegation and cascade-error counts of each front point on the opt split (front order,
        i.e. descending τ).
    n_opt : int
        Size of the opt split.
    budget, error_level : float
        The two levels.
    pvalue, error_pvalue : str
        Count-based p-values (as in :func:`calibrate_cascade`).

    Returns
    -------
    ndarray of int64
        A permutation of ``range(len(opt_counts))``: the hypotheses most likely to be rejected on ht
        come first (ties: least delegation first). It depends on opt only, which is what keeps
        fixed-sequence testing on ht valid.
    """
    if opt_counts.size == 0:
        return np.zeros(0, dtype=np.int64)
    p_opt = np.maximum(
        pvalue_function(pvalue)(opt_counts, n_opt, budget),
        pvalue_function(error_pvalue)(opt_errors, n_opt, error_level),
    )
    return np.lexsort((np.arange(opt_counts.size), p_opt)).astype(np.int64)


def _check_joint(error_level: float | None, joint: str, procedure: str) -> float | None:
    """Validate the joint options; ``procedure`` is not silently ignored when ``error_level`` is set."""
    if error_level is None:
        return None
    level = check_open_unit("error_level", error_level)
    if joint not in JOINT_METHODS:
        raise CTDInputError(f"joint must be one of {', '.join(JOINT_METHODS)}; got {joint!r}")
    if procedure != "fixed_sequence":
        raise CTDInputError(
            f"procedure={procedure!r} applies to budget-only calibration; with error_level set the "
            f"joint rule (joint={joint!r}) decides how the family is tested — leave procedure at "
            "'fixed_sequence'"
        )
    return level


def calibration_parts(
    data: CascadeData | None,
    opt: CascadeData | None,
    ht: CascadeData | None,
    split: str,
    error_level: float | None,
    opt_fraction: float,
    seed: int,
) -> tuple[CascadeData, CascadeData]:
    """The (opt, ht) rows :func:`calibrate_cascade` uses; with ``split="none"`` both are all rows."""
    if split not in CALIBRATION_SPLITS:
        raise CTDInputError(f"split must be one of {', '.join(CALIBRATION_SPLITS)}; got {split!r}")
    if data is not None and (opt is not None or ht is not None):
        raise CTDInputError("give either data, or both opt and ht — not both")
    if data is None and (opt is None or ht is None):
        raise CTDInputError("calibrate_cascade needs data, or both opt and ht")
    if split == "none":
        if error_level is not None:
            raise CTDInputError(
                "split='none' certifies the delegation budget only; a joint guarantee with "
                "error_level needs split='opt_ht' (the error risk is not monotone in τ, so its front "
                "must be fixed on rows the test does not use)"
            )
        rows = data if data is not None else CascadeData.concat([opt, ht])  # type: ignore[list-item]
        return rows, rows
    if data is not None:
        return data.split(opt_fraction, seed)
    assert opt is not None and ht is not None
    return opt, ht


@dataclass(frozen=True)
class _TestedFront:
    """The tested Pareto front: thresholds, opt errors, p-values, rejections and the test order."""

    thresholds: NDArray[np.float64]
    opt_errors: NDArray[np.float64]
    pvalues: NDArray[np.float64]
    rejected: NDArray[np.bool_]
    test_order: NDArray[np.int64]
    procedure: FWERProcedure
    #: Why nothing passed, where ``pvalues`` alone cannot say (Bonferroni-split chains: they are
    #: the budget chain's p-values only, tested at δ/2, and the error chain must reject too).
    failure_detail: str | None = None


def _choose(
    front: _TestedFront, dl: float, n_ht: int, *, joint_set: bool
) -> tuple[float, float, str | None]:
    """Pick the certified front point with the lowest opt error, or fail closed with a reason."""
    f_tau, f_err, pvals, rejected = (
        front.thresholds,
        front.opt_errors,
        front.pvalues,
        front.rejected,
    )
    test_order, procedure = front.test_order, front.procedure
    if rejected.any():
        cand = np.flatnonzero(rejected)
        best = cand[np.argmin(f_err[cand])]  # argmin takes the first: ties go to the largest τ
        tau, chosen_err, reason = float(f_tau[best]), float(f_err[best]), None
        if math.isinf(tau):
            reason = (
                "the certified threshold with the lowest opt error is τ = +∞ (never delegate), a "
                "candidate of the given grid; failing closed"
            )
    else:
        tau, chosen_err = math.inf, math.nan
        what = "joint budget and error" if joint_set else "budget"
        if pvals.size == 0:
            detail = "the Pareto front is empty"
        elif front.failure_detail is not None:
            detail = front.failure_detail
        elif procedure.chain:
            detail = (
                f"the chain stopped at its first hypothesis, τ = {f_tau[test_order[0]]:.6g}, with p-value "
                f"{pvals[test_order[0]]:.3g} > delta = {dl:g}"
            )
        else:
            detail = f"smallest p-value {pvals.min():.3g}, none small enough at delta = {dl:g}"
        reason = (
            f"no threshold on the Pareto front passed the {what} test on ht (n = {n_ht}; {detail}); "
            "failing closed: never delegate"
        )
    return tau, chosen_err, reason


def calibrate_cascade(
    data: CascadeData | None = None,
    *,
    opt: CascadeData | None = None,
    ht: CascadeData | None = None,
    budget: float,
    delta: float,
    opt_fraction: float = 0.3,
    seed: int = 0,
    error_level: float | None = None,
    joint: str = "bonferroni_split",
    thresholds: ArrayLike | None = None,
    procedure: str = "fixed_sequence",
    pvalue: str = "binomial",
    error_pvalue: str = "binomial",
    split: str = "opt_ht",
) -> CascadeCalibration:
    """Certify a DV threshold by Pareto testing (CTD). See the module docstring for the guarantee.

    Parameters
    ----------
    data : CascadeData, optional
        Calibration rows, split at random into opt (``opt_fraction``) and ht with ``seed``.
    opt, ht : CascadeData, optional
        Pre-split parts (give both instead of ``data``). Only ht enters the p-values.
    split : {"opt_ht", "none"}
        ``"none"``: front, order, test and choice all on ``data`` (or opt ∪ ht); budget only (module
        docstring), refused with ``error_level``.
    budget, delta : float in (0, 1)
    error_level : float in (0, 1), optional
        Also certify the cascade misclassification probability (joint guarantee).
    joint : {"bonferroni_split", "max_p"}
        How the two risks share δ when ``error_level`` is set: one fixed-sequence chain per risk at
        δ/2 (``"bonferroni_split"``, the default), or one chain on max(p_B, p_E) ordered by opt
        p-values (``"max_p"``).
    thresholds : array_like, optional
        Candidate grid; default: every distinct opt score (fixed before ht is seen).
    procedure : {"fixed_sequence", "bonferroni", "holm"}
        FWER procedure for the budget-only path (fixed-sequence along the front by default;
        Bonferroni/Holm over the full grid emit a :class:`~ctd_stats.stats.fwer.PowerWarning`). With
        ``error_level`` set it must stay ``"fixed_sequence"`` (``joint`` decides): anything else
        raises rather than being silently ignored.
    pvalue, error_pvalue : str
        Count-based p-values for the budget and the error risk.
    """
    b = check_open_unit("budget", budget)
    dl = check_open_unit("delta", delta)
    opt, ht = calibration_parts(data, opt, ht, split, error_level, opt_fraction, seed)
    error_level = _check_joint(error_level, joint, procedure)
    pfun_b = pvalue_function(pvalue)
    pfun_e = pvalue_function(error_pvalue)

    s_opt, grid, k_opt, e_opt, front = opt_candidates(opt, thresholds)
    f_tau, k_front, e_front, grid_size = grid[front], k_opt[front], e_opt[front], int(grid.size)
    del grid, k_opt, e_opt  # one entry per distinct score: not needed past the front
    f_rate = k_front / opt.n
    f_err = e_front / opt.n

    s_ht = (
        s_opt if split == "none" else SortedScores.from_scores(ht.dv_score)
    )  # none: the same rows
    k_ht = s_ht.delegation_counts(f_tau)
    e_ht = cascade_error_counts(s_ht, ~ht.probe_correct, ~ht.expert_correct, k_ht)
    p_b = pfun_b(k_ht, ht.n, b)
    p_e: NDArray[np.float64] | None = None
    test_order = np.arange(f_tau.size, dtype=np.int64)
    failure_detail: str | None = None
    proc: FWERProcedure
    if error_level is None:
        proc = get_procedure(procedure)
        if thresholds is None:
            warn_weak_full_grid(proc.id, int(f_tau.size))
        rejected = proc.reject(p_b, dl)
        pvals = p_b
    else:
        p_e = pfun_e(e_ht, ht.n, error_level)
        proc = JOINT_RULES[joint]
        if isinstance(proc, MaxP):
            test_order = max_p_order(k_front, e_front, opt.n, b, error_level, pvalue, error_pvalue)
            pvals, rejected = proc.reject_joint(p_b, p_e, test_order, dl)
        else:
            assert isinstance(proc, BonferroniSplitChains)
            order_b = np.arange(f_tau.size)
            order_e = np.lexsort((np.arange(f_tau.size), f_err))  # lowest opt error first
            rejected = proc.reject([p_b, p_e], [order_b, order_e], dl)
            pvals = p_b
            if not rejected.any() and f_tau.size:
                half = dl / proc.n_chains
                n_b = int(FixedSequence().reject(p_b[order_b], half).sum())
                n_e = int(FixedSequence().reject(p_e[order_e], half).sum())
                failure_detail = (
                    f"each chain at delta/{proc.n_chains} = {half:g}: the budget chain passed {n_b} and the error "
                    f"chain {n_e} of {f_tau.size} thresholds, none passed both (smallest budget "
                    f"p-value {p_b.min():.3g}, smallest error p-value {p_e.min():.3g})"
                )

    tested = _TestedFront(f_tau, f_err, pvals, rejected, test_order, proc, failure_detail)
    tau, chosen_err, reason = _choose(tested, dl, ht.n, joint_set=error_level is not None)
    return CascadeCalibration(
        threshold=tau,
        budget=b,
        delta=dl,
        procedure=proc.id,
        pvalue_kind=pvalue if error_level is None else f"{pvalue}+{error_pvalue}",
        n=ht.n,
        thresholds=f_tau,
        pvalues=pvals,
        certified=rejected,
        empirical_rates=k_ht / ht.n,
        reason=reason,
        method="ctd_pareto",
        n_opt=opt.n,
        n_ht=ht.n,
        front_thresholds=f_tau,
        front_rates=f_rate,
        front_errors=f_err,
        chosen_opt_error=chosen_err,
        error_level=error_level,
        joint=joint if error_level is not None else None,
        error_pvalues=p_e,
        ht_error_rates=e_ht / ht.n,
        grid_size=grid_size,
        test_order=test_order,
        split=split,
    )

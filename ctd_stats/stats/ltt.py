"""Learn-then-Test calibration of a delegation threshold against a budget.

Guarantee (:func:`calibrate_budget`). Let d be a fixed score function (trained on data independent
of the calibration set) and let the n calibration scores d(X_1..X_n) and the deployment inputs be
i.i.d. draws from the same distribution (exchangeability suffices for the calibration draw). The
returned threshold τ̂ satisfies

    P_cal( R_B(τ̂) ≤ budget ) ≥ 1 − δ,    R_B(τ) = P_X( d(X) > τ ),

where the probability is over the calibration draw. Delegation is the per-input (streaming) rule
``d(x) > τ̂``. If no threshold can be certified the result fails closed: τ̂ = +∞ (never delegate,
R_B = 0), with the reason on the result.

Why the full grid is exact. With ``thresholds=None`` every distinct calibration score is tested. The
empirical count K(τ) = #{d_i > τ}, hence every count-based p-value, is a non-increasing step
function of τ that is constant between consecutive distinct scores, so testing the distinct scores
is the same as testing every τ ∈ ℝ. Because p(τ) is monotone in τ, a false certification (some
τ < τ* := inf{τ : R_B(τ) ≤ budget} rejected) implies p at the boundary count #{d_i ≥ τ*} is ≤ the
rejection level ≤ δ; that count is Bin(n, q) with q ≥ budget, so this happens with probability ≤ δ.
The argument holds for fixed-sequence (descending τ), Bonferroni and Holm, whatever the family size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ctd_stats.errors import CTDInputError
from ctd_stats.io import json_float
from ctd_stats.stats.curves import SortedScores
from ctd_stats.stats.fwer import get_procedure, warn_weak_full_grid
from ctd_stats.stats.inputs import as_finite_1d, check_open_unit
from ctd_stats.stats.pvalues import pvalue_function
from ctd_stats.stats.rule import delegate


def budget_guarantee_text(budget: float, delta: float, threshold: float, n: int) -> str:
    """The guarantee of a budget calibration, stated in words."""
    if math.isinf(threshold):
        return (
            f"Nothing was certified on the n = {n} calibration points (why: the result's reason), so "
            "the cascade fails closed: τ = +∞, the expert is never called, and the delegation rate "
            "is 0 ≤ the budget."
        )
    return (
        f"With probability at least {1 - delta:.3g} over the draw of the n = {n} calibration points, the "
        f"long-run delegation rate P(d(X) > {threshold:.6g}) is at most {budget:.3g}. Assumes calibration "
        "and deployment inputs are i.i.d. (exchangeable) draws from one distribution and that the DV "
        "probe was trained on other data; it says nothing under distribution shift."
    )


@dataclass(frozen=True)
class Calibration:
    """Result of a budget calibration (immutable). Arrays are in test order.

    Attributes
    ----------
    threshold : float
        Certified threshold τ̂ (delegate iff score > τ̂); ``+inf`` when nothing was certified.
    thresholds, pvalues, certified, empirical_rates : ndarray
        The tested family in test order, each hypothesis' p-value, whether it was certified, and the
        empirical delegation rate K(τ)/n on the test (calibration / ht) split.
    reason : str or None
        Why the result failed closed, if it did.
    """

    threshold: float
    budget: float
    delta: float
    procedure: str
    pvalue_kind: str
    n: int
    thresholds: NDArray[np.float64]
    pvalues: NDArray[np.float64]
    certified: NDArray[np.bool_]
    empirical_rates: NDArray[np.float64]
    reason: str | None = None
    method: str = "budget_only"
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def is_certified(self) -> bool:
        return math.isfinite(self.threshold)

    @property
    def guarantee(self) -> str:
        return budget_guarantee_text(self.budget, self.delta, self.threshold, self.n)

    def delegate(self, scores: ArrayLike) -> NDArray[np.bool_]:
        """Per-input decisions by the deployed rule :func:`ctd_stats.stats.rule.delegate` (``scores >
        threshold``; never delegates when not certified; NaN scores are an error)."""
        return delegate(scores, self.threshold)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (``inf`` becomes the string ``"inf"``)."""
        return {
            "method": self.method,
            "threshold": json_float(self.threshold),
            "certified": self.is_certified,
            "reason": self.reason,
            "budget": self.budget,
            "delta": self.delta,
            "procedure": self.procedure,
            "pvalue_kind": self.pvalue_kind,
            "n": self.n,
            "guarantee": self.guarantee,
            "tested": [
                {"threshold": float(t), "pvalue": float(p), "rejected": bool(c), "rate": float(r)}
                for t, p, c, r in zip(
                    self.thresholds, self.pvalues, self.certified, self.empirical_rates, strict=True
                )
            ],
            **self.extras,
        }


def candidate_grid(
    sorted_scores: SortedScores, thresholds: ArrayLike | None
) -> NDArray[np.float64]:
    if thresholds is None:
        return sorted_scores.distinct_values()
    t = np.asarray(thresholds, dtype=np.float64).ravel()
    if t.size == 0:
        raise CTDInputError(
            "thresholds is empty: give at least one candidate, or None for the full grid"
        )
    if np.isnan(t).any():
        raise CTDInputError("thresholds contain NaN")
    return np.unique(t)[::-1]  # sorted internally, descending: least delegation first


def calibrate_budget(
    scores: ArrayLike,
    budget: float,
    delta: float,
    *,
    procedure: str = "fixed_sequence",
    thresholds: ArrayLike | None = None,
    pvalue: str = "binomial",
) -> Calibration:
    """Certify a threshold τ with P(d(X) > τ) ≤ ``budget`` with probability ≥ 1 − ``delta``.

    Parameters
    ----------
    scores : array_like, shape (n,)
        DV scores of the calibration set (finite).
    budget, delta : float in (0, 1)
        Budget on the delegation rate and the allowed probability of violating it.
    procedure : {"fixed_sequence", "bonferroni", "holm"}
        FWER procedure. Fixed-sequence tests in descending τ (least delegation first). The budget
        hypotheses are nested, so fixed-sequence is uniformly more powerful than Bonferroni/Holm;
        these two emit a :class:`~ctd_stats.stats.fwer.PowerWarning` with the full grid.
    thresholds : array_like or None
        Candidate thresholds in any order; ``None`` tests every distinct score (exact over ℝ).
    pvalue : {"binomial", "hoeffding", "bentkus", "hb"}
        Count-based p-value (binomial is exact and the most powerful here).

    Returns
    -------
    Calibration
        The smallest certified threshold (the most delegation allowed), or τ = +∞ (fail closed).
        See the module docstring for the precise guarantee and its assumptions. With the full grid,
        fixed-sequence testing and more than 2 × :data:`BOUNDARY_WINDOW` distinct scores, the arrays
        hold only the hypotheses around the boundary (``extras["family"] == "boundary_window"``;
        same τ̂ and decisions, no p-value computed for the rest, no array as long as the chain; 10⁷
        scores cost about 1.1–1.2× one ``np.sort`` and 86 MiB at peak,
        ``benchmarks/test_bench_fast_path.py``).
    """
    s = as_finite_1d("scores", scores)
    b = check_open_unit("budget", budget)
    d = check_open_unit("delta", delta)
    proc = get_procedure(procedure)
    pfun = pvalue_function(pvalue)

    ss = SortedScores.from_scores(s, keep_order=False)
    if thresholds is None:  # distinct scores, descending; K(v) = index of v's first occurrence
        first = np.ones(ss.n, dtype=bool)
        np.not_equal(ss.descending[1:], ss.descending[:-1], out=first[1:])
        n_distinct = int(np.count_nonzero(first))
        warn_weak_full_grid(proc.name, n_distinct)
        if proc.name == "fixed_sequence" and n_distinct > 2 * BOUNDARY_WINDOW:
            return _boundary_window(ss.descending, first, n_distinct, b, d, pvalue)
        counts = np.flatnonzero(first).astype(np.int64, copy=False)
        grid = ss.descending[counts]
    else:
        grid = candidate_grid(ss, thresholds)
        counts = ss.delegation_counts(grid)
    pvals = pfun(counts, ss.n, b)
    rejected = proc.reject(pvals, d)
    rates = counts / ss.n
    tau = float(grid[rejected].min()) if rejected.any() else math.inf
    reason = None
    if rejected.any() and math.isinf(tau):
        reason = (
            "only τ = +∞ (never delegate) was certified among the given thresholds (smallest p-value "
            f"of a finite candidate: {pvals[np.isfinite(grid)].min():.3g}); failing closed"
            if np.isfinite(grid).any()
            else "the only candidate threshold is τ = +∞ (never delegate)"
        )
    elif not rejected.any():
        reason = (
            f"no threshold certified: with n = {ss.n} the smallest p-value is {pvals.min():.3g} > "
            f"delta = {d:g} (a threshold that delegates none of the n points has p = (1 − budget)^n = "
            f"{(1 - b) ** ss.n:.3g}); more calibration data or a larger budget/delta is needed"
        )
    return Calibration(
        threshold=tau,
        budget=b,
        delta=d,
        procedure=proc.id,
        pvalue_kind=pvalue,
        n=ss.n,
        thresholds=grid,
        pvalues=pvals,
        certified=rejected,
        empirical_rates=rates,
        reason=reason,
    )


#: With the full grid and fixed-sequence testing, p-values are computed for this many hypotheses on
#: each side of the boundary only (when the grid is longer than twice this).
BOUNDARY_WINDOW = 1000


def _boundary_window(
    descending: NDArray[np.float64],
    first: NDArray[np.bool_],
    n_distinct: int,
    b: float,
    d: float,
    pvalue: str,
) -> Calibration:
    """Full grid, fixed-sequence, many distinct scores: p-values only around the boundary.

    The chain's hypotheses are the distinct scores in descending order (``first`` marks each one's
    first position in ``descending``; its K(τ) is that position). p is non-decreasing in the count
    and the counts increase along the chain, so the rejected hypotheses are exactly those with
    K(τ) ≤ k* (:func:`certified_count`), a prefix of the chain: the distinct scores first seen at
    positions ≤ k*; τ̂ is the last of them. Only the :data:`BOUNDARY_WINDOW` hypotheses on each
    side of that boundary are built and returned with their p-values (``extras["family"] ==
    "boundary_window"``, ``extras["grid_size"]`` the full chain's length): the same τ̂ and decisions
    as computing every p-value, at the cost of the sort and O(n) scans of ``first``, with no
    chain-length arrays (10⁷ distinct scores: no 240 MB of grid, counts and their copy).
    """
    n = int(descending.size)
    kstar = certified_count(n, b, d, pvalue)
    cut = int(np.count_nonzero(first[: kstar + 1])) if kstar >= 0 else 0  # rejected hypotheses
    lo, hi = max(0, cut - BOUNDARY_WINDOW), min(n_distinct, cut + BOUNDARY_WINDOW)
    k_win = np.concatenate(
        [_last_true(first, kstar + 1, cut - lo), _first_true(first, kstar + 1, hi - cut)]
    )
    pvals = pvalue_function(pvalue)(k_win, n, b)
    rejected = k_win <= kstar
    tau = float(descending[k_win[cut - lo - 1]]) if cut else math.inf
    reason = None
    if not cut:
        reason = (
            f"no threshold certified: with n = {n} the smallest p-value is {pvals.min():.3g} > "
            f"delta = {d:g} (a threshold that delegates none of the n points has p = (1 − budget)^n = "
            f"{(1 - b) ** n:.3g}); more calibration data or a larger budget/delta is needed"
        )
    return Calibration(
        threshold=tau,
        budget=b,
        delta=d,
        procedure="fixed_sequence",
        pvalue_kind=pvalue,
        n=n,
        thresholds=descending[k_win],
        pvalues=pvals,
        certified=rejected,
        empirical_rates=k_win / n,
        reason=reason,
        extras={"family": "boundary_window", "grid_size": n_distinct, "k_star": kstar},
    )


def _last_true(mask: NDArray[np.bool_], end: int, m: int) -> NDArray[np.int64]:
    """Positions of the last ``m`` True entries of ``mask[:end]`` (all of them if fewer), ascending;
    scans a window that grows 4x until it holds ``m`` of them (O(n) at worst, O(m) with few ties)."""
    end = min(max(end, 0), mask.size)
    if m <= 0:
        return np.empty(0, dtype=np.int64)
    width = 4 * m
    while True:
        start = max(0, end - width)
        pos = np.flatnonzero(mask[start:end]).astype(np.int64, copy=False) + start
        if pos.size >= m or start == 0:
            return pos[-m:]
        width *= 4


def _first_true(mask: NDArray[np.bool_], start: int, m: int) -> NDArray[np.int64]:
    """Positions of the first ``m`` True entries of ``mask[start:]`` (all of them if fewer)."""
    start = min(max(start, 0), mask.size)
    if m <= 0:
        return np.empty(0, dtype=np.int64)
    width = 4 * m
    while True:
        stop = min(mask.size, start + width)
        pos = np.flatnonzero(mask[start:stop]).astype(np.int64, copy=False) + start
        if pos.size >= m or stop == mask.size:
            return pos[:m]
        width *= 4


@lru_cache(maxsize=4096)
def certified_count(n: int, budget: float, level: float, pvalue: str = "binomial") -> int:
    """k* = the largest count k ∈ [0, n] with p(k; n, budget) ≤ level, or −1 if none.

    Every count-based p-value here is non-decreasing in k (binomial, Bentkus and Hoeffding tails all
    grow with the count; HB is the minimum of two such), so k* is found by bisection with
    O(log n) scalar p-value evaluations — no array of size n. A pure function of its arguments, so
    results are cached (repeated-split studies ask for the same (n, budget, level) many times).
    """
    pfun = pvalue_function(pvalue)

    def ok(k: int) -> bool:
        return bool(pfun(np.int64(k), n, budget) <= level)

    if not ok(0):
        return -1
    lo, hi = 0, n  # invariant: ok(lo); answer in [lo, hi]
    if ok(hi):
        return n
    while hi - lo > 1:  # invariant: ok(lo) and not ok(hi)
        mid = (lo + hi) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo


def budget_threshold(
    scores: ArrayLike, budget: float, delta: float, *, pvalue: str = "binomial"
) -> Calibration:
    """:func:`calibrate_budget` with the full grid and fixed-sequence testing, in O(n) time (no sort).

    Same guarantee and the same τ̂ as ``calibrate_budget(scores, budget, delta, pvalue=pvalue)``
    (``procedure="fixed_sequence"``, ``thresholds=None``): with probability ≥ 1 − δ over the i.i.d.
    calibration draw, P(d(X) > τ̂) ≤ ``budget``; τ̂ = +∞ (with a reason) if nothing is certified.

    Why no sort is needed. Fixed-sequence testing walks the distinct scores from the largest down and
    rejects H_τ while p(K(τ)) ≤ δ, K(τ) = #{d_i > τ}. K is strictly increasing along that walk and p is
    non-decreasing in K, so the certified set is exactly {τ : K(τ) ≤ k*}, k* = :func:`certified_count`
    (a bisection on k, independent of the data). Its smallest member is the (k* + 1)-th largest score
    v = d_(k*+1): at most k* scores exceed v (ties with v do not count), while any distinct score
    below v is exceeded by at least k* + 1. Ties therefore need no special care, and v is one order
    statistic, found by ``np.partition`` in O(n).

    Returns
    -------
    Calibration
        With only the two hypotheses that decide the outcome recorded (``extras["family"] ==
        "boundary"``): τ̂ itself (rejected) and the next distinct score below it (not rejected),
        if any. Peak extra memory ≈ 1.25 × the input (one partitioned copy and a boolean mask).
    """
    s = as_finite_1d("scores", scores)
    b = check_open_unit("budget", budget)
    d = check_open_unit("delta", delta)
    n = int(s.size)
    kstar = certified_count(n, b, d, pvalue)
    if kstar < 0:
        return Calibration(
            threshold=math.inf,
            budget=b,
            delta=d,
            procedure="fixed_sequence",
            pvalue_kind=pvalue,
            n=n,
            thresholds=np.empty(0),
            pvalues=np.empty(0),
            certified=np.zeros(0, dtype=bool),
            empirical_rates=np.empty(0),
            reason=(
                f"no threshold certified: with n = {n} even a threshold above every score has p-value "
                f"{float(pvalue_function(pvalue)(np.int64(0), n, b)):.3g} > delta = {d:g}; more "
                "calibration data or a larger budget/delta is needed"
            ),
            extras={"family": "boundary", "k_star": kstar},
        )
    j = n - 1 - min(kstar, n - 1)  # ascending index of the (k*+1)-th largest score
    part = np.partition(s, j)
    tau = float(part[j])
    below = part[:j] < tau  # part[:j] ≤ τ̂; the strictly smaller ones lie below the boundary
    k_tau = n - j - 1 - int(np.count_nonzero(part[j + 1 :] == tau))  # #{d > τ̂}
    thresholds = [tau]
    counts = [k_tau]
    if below.any():
        nxt = float(np.max(part[:j], where=below, initial=-math.inf))
        thresholds.append(nxt)
        counts.append(n - int(np.count_nonzero(below)))  # #{d > nxt} = #{d ≥ τ̂}
    t_arr = np.asarray(thresholds, dtype=np.float64)
    k_arr = np.asarray(counts, dtype=np.int64)
    pvals = pvalue_function(pvalue)(k_arr, n, b)
    return Calibration(
        threshold=tau,
        budget=b,
        delta=d,
        procedure="fixed_sequence",
        pvalue_kind=pvalue,
        n=n,
        thresholds=t_arr,
        pvalues=pvals,
        certified=pvals <= d,
        empirical_rates=k_arr / n,
        reason=None,
        extras={"family": "boundary", "k_star": kstar},
    )


def binomial_certified_count(n: int, budget: float, level: float) -> int:
    """Largest k with P(Bin(n, budget) ≤ k) ≤ level, or −1 if even k = 0 is not certified."""
    from scipy import special

    ks = np.arange(n + 1)
    cdf = special.bdtr(ks, n, budget)
    return int(np.searchsorted(cdf, level, side="right")) - 1


def calibrate_budget_batch(
    scores: ArrayLike,
    budget: float,
    delta: float,
    *,
    procedure: str = "fixed_sequence",
) -> NDArray[np.float64]:
    """Vectorised :func:`calibrate_budget` (full grid, binomial p-value) for many calibration sets.

    ``scores`` has shape (trials, n); returns τ̂ per trial (``inf`` where nothing is certified),
    identical to calling :func:`calibrate_budget` row by row. Closed form: with the exact binomial
    p-value and the full grid, p(τ) is a non-decreasing function of K(τ) alone, so the certified
    thresholds are exactly the distinct scores with K(τ) ≤ k*, where k* is the largest count whose
    p-value is ≤ the procedure's level (δ for fixed-sequence; δ/m for Bonferroni, with m the trial's
    number of distinct scores). Hence τ̂ is the (k* + 1)-th largest score. Holm is not supported here.
    """
    S = np.asarray(scores, dtype=np.float64)
    if S.ndim != 2 or S.shape[1] == 0:
        raise CTDInputError("scores must have shape (trials, n) with n ≥ 1")
    if not np.all(np.isfinite(S)):
        raise CTDInputError("scores contain non-finite values")
    b = check_open_unit("budget", budget)
    d = check_open_unit("delta", delta)
    trials, n = S.shape
    from scipy import special

    cdf = special.bdtr(np.arange(n + 1), n, b)
    desc = -np.sort(-S, axis=1)
    if procedure == "fixed_sequence":
        kstar = np.full(trials, int(np.searchsorted(cdf, d, side="right")) - 1)
    elif procedure == "bonferroni":
        m = 1 + np.count_nonzero(desc[:, 1:] != desc[:, :-1], axis=1)
        kstar = np.searchsorted(cdf, d / m, side="right") - 1
    else:
        raise CTDInputError(
            "calibrate_budget_batch supports procedure fixed_sequence or bonferroni"
        )
    out = np.full(trials, np.inf)
    ok = kstar >= 0
    out[ok] = desc[np.flatnonzero(ok), kstar[ok]]
    return out

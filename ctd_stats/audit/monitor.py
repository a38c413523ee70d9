r"""Anytime-valid sequential monitoring of a delegation rate.

The model: decisions :math:`X_1, X_2, \dots \in \{0, 1\}` (1 = delegated) are i.i.d. Bernoulli(p).
The certificate promises :math:`p \le b` (the budget). The monitor tests the *composite* null

.. math:: H_0 : p \le b \qquad\text{against}\qquad H_1 : p > b

continuously, after every decision, with a type-I error that stays below ``alpha`` no matter how often
one looks and when one stops (optional stopping / continuous monitoring).

The test supermartingale
------------------------
For :math:`q \in (b, 1)` let :math:`L_t(q) = \prod_{i \le t} (q/b)^{X_i} ((1-q)/(1-b))^{1-X_i}
= (q/b)^{k_t}((1-q)/(1-b))^{t-k_t}` be the likelihood ratio of Bernoulli(q) against Bernoulli(b), with
:math:`k_t = \sum_{i\le t} X_i`. Equivalently :math:`L_t(q) = \prod_i (1 + \lambda (X_i - b))` with the
bet :math:`\lambda = (q - b)/(b(1-b)) \in (0, 1/b)`: a gambler who bets a fraction of her wealth that
delegations are more frequent than ``b``. The monitor's wealth is the mixture

.. math:: M_t = \int_b^1 L_t(q)\,\pi(dq),

with :math:`\pi` a Beta(a, c) prior truncated to :math:`(b, 1)`. In closed form

.. math:: M_t = \frac{B(a+k_t, c+t-k_t)\,\bar I_b(a+k_t, c+t-k_t)}{B(a, c)\,\bar I_b(a, c)\,
          b^{k_t}(1-b)^{t-k_t}},

where :math:`\bar I_b(x, y) = P(\mathrm{Beta}(x, y) > b)`. It depends on the data only through
:math:`(t, k_t)`, so it is computed for whole arrays of observations at once from cumulative sums.

**Why it is valid for every p <= b (not only p = b).** Fix the true :math:`p \le b` and :math:`q > b`.
One factor has conditional expectation
:math:`E_p[(q/b)^{X}((1-q)/(1-b))^{1-X}] = 1 + \lambda(p - b) \le 1` because :math:`\lambda > 0` and
:math:`p \le b`. Hence each :math:`L_t(q)` is a nonnegative supermartingale with :math:`L_0 = 1`, and so is
the mixture :math:`M_t` (Tonelli: the conditional expectation of the integral is the integral of the
conditional expectations, each :math:`\le L_{t-1}(q)`). **Ville's inequality** for nonnegative
supermartingales gives :math:`P_p(\exists t: M_t \ge 1/\alpha) \le \alpha\, E[M_0] = \alpha` for every
:math:`p \le b`. The monitor alarms at the first :math:`t` with :math:`M_t \ge 1/\alpha`; the
probability that it *ever* alarms on a compliant stream is therefore at most ``alpha``, however long
the stream and however often it is inspected. :math:`M_t` is also an e-value at any stopping time.

Power: if :math:`p > b`, :math:`\log M_t / t \to \mathrm{KL}(p \,\|\, b)` and the alarm comes after about
:math:`(\log(1/\alpha) + \tfrac12 \log t + O(1)) / \mathrm{KL}(p\|b)` decisions.

Fast exact evaluation
---------------------
:math:`\bar I_b` (``scipy.special.betaincc``) costs microseconds per call, too slow for 10^7 rows. The
monitor first evaluates two cheap *upper bounds* on :math:`\log M_t`
(:math:`t\,\mathrm{KL}(\hat p_t\|b)^+`, and :math:`\log \sup\pi + \log B(k_t+1, t-k_t+1) - k_t\log b -
(t-k_t)\log(1-b)`) and computes :math:`M_t` exactly only where the bounds reach :math:`1/\alpha`. The
alarm time is exact.

Confidence sequence
-------------------
:func:`confidence_sequence` returns :math:`C_t = \{p_0 : N_t(p_0) < 1/\alpha\}` where
:math:`N_t(p_0) = B(a+k_t, c+t-k_t) / (B(a, c)\, p_0^{k_t}(1-p_0)^{t-k_t})` is the Beta(a, c)-mixture
likelihood ratio against :math:`p_0` (Robbins' mixture). Under Bernoulli(:math:`p_0`) it is a
nonnegative martingale with mean 1, so by Ville :math:`P(\exists t: p \notin C_t) \le \alpha`: the
intervals cover the true rate *simultaneously for all t* (anytime-valid). :math:`C_t` is an interval
because :math:`p_0 \mapsto k\log p_0 + (t-k)\log(1-p_0)` is concave; its ends are found by bisection.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

#: Candidates are evaluated exactly in slices of this size (stops at the first alarm).
_EXACT_SLICE = 2048
#: Numerical slack when comparing the cheap upper bounds with the alarm threshold.
_BOUND_SLACK = 1e-6


@dataclass(frozen=True)
class BetaPrior:
    """A Beta(a, c) prior on the delegation rate (truncated to (budget, 1) for the one-sided test).

    ``c >= 1`` is required so that the truncated density is bounded on (budget, 1).
    """

    a: float
    c: float

    def __post_init__(self) -> None:
        if not (self.a > 0 and self.c >= 1):
            raise ValueError(f"prior needs a > 0 and c >= 1, got a={self.a}, c={self.c}")


def default_prior(budget: float) -> BetaPrior:
    """Beta(1, max(1, (1-b)/b)): prior mean ``b``; its truncation to (b, 1) is decreasing from ``b``.

    This puts most prior mass on rates moderately above the budget (the violations one wants to catch
    early, e.g. 1.5 b), while keeping every rate in (b, 1) detectable.
    """
    return BetaPrior(1.0, max(1.0, (1.0 - budget) / budget))


def detection_prior(budget: float, rho: float) -> BetaPrior:
    """A mixing prior tuned to detect rates of about ``rho`` × budget soon (``rho`` > 1).

    Beta(a, c) with mean ``rho·b`` and standard deviation ``(rho − 1)·b / 2`` (so most of its mass
    lies between the budget and twice the excess), with ``c ≥ 1`` enforced. The choice of prior
    never affects validity (any prior keeps ``P(false alarm) ≤ alpha``, see the module docstring);
    it moves power: faster alarms near ``rho·b``, slower ones far from it. The detection delays of
    a few settings are tabulated in ``docs/audit.md`` (``benchmarks/monitor_delay.py``).
    """
    if not 0.0 < budget < 1.0:
        raise ValueError(f"budget must be in (0, 1), got {budget}")
    if not rho > 1.0 or rho * budget >= 1.0:
        raise ValueError(
            f"rho must be > 1 with rho × budget < 1, got rho = {rho} at budget {budget}"
        )
    mean = rho * budget
    sd = (rho - 1.0) * budget / 2.0
    strength = max(mean * (1.0 - mean) / sd**2 - 1.0, 1.0 / (1.0 - mean))
    return BetaPrior(mean * strength, (1.0 - mean) * strength)


def check_budget_alpha(budget: float, alpha: float) -> None:
    if not 0.0 < budget < 1.0:
        raise ValueError(f"budget must be in (0, 1), got {budget}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


@dataclass(frozen=True)
class MixtureMartingale:
    """The truncated-Beta mixture test supermartingale for H0: p <= budget (see the module docstring).

    Parameters
    ----------
    budget : float
        ``b`` in (0, 1).
    alpha : float
        Level; the alarm threshold is ``M_t >= 1/alpha``.
    prior : BetaPrior
        Beta(a, c) prior, truncated to (b, 1).
    """

    budget: float
    alpha: float
    prior: BetaPrior

    def __post_init__(self) -> None:
        check_budget_alpha(self.budget, self.alpha)

    @property
    def log_threshold(self) -> float:
        """``log(1/alpha)``."""
        return math.log(1.0 / self.alpha)

    @property
    def _log_norm(self) -> float:
        a, c, b = self.prior.a, self.prior.c, self.budget
        return float(special.betaln(a, c) + np.log(special.betaincc(a, c, b)))

    @property
    def _log_sup_density(self) -> float:
        """log of the supremum over (b, 1) of the truncated prior density."""
        a, c, b = self.prior.a, self.prior.c, self.budget
        points = [b]
        if a > 1.0 and a + c > 2.0:
            points.append(min(max((a - 1.0) / (a + c - 2.0), b), 1.0 - 1e-12))
        vals = [(a - 1.0) * math.log(q) + (c - 1.0) * math.log1p(-q) for q in points]
        return max(vals) - self._log_norm

    def _log_lr_base(self, t: NDArray[np.float64], k: NDArray[np.float64]) -> NDArray[np.float64]:
        b = self.budget
        return np.asarray(-k * math.log(b) - (t - k) * math.log1p(-b), dtype=np.float64)

    def log_evidence(self, t: ArrayLike, k: ArrayLike) -> NDArray[np.float64]:
        """Exact ``log M_t`` for counts ``(t, k)`` (``log M_0 = 0``)."""
        tt = np.asarray(t, dtype=np.float64)
        kk = np.asarray(k, dtype=np.float64)
        a, c = self.prior.a, self.prior.c
        x, y = a + kk, c + tt - kk
        with np.errstate(divide="ignore"):
            tail = np.log(special.betaincc(x, y, self.budget))
        out = special.betaln(x, y) + tail - self._log_norm + self._log_lr_base(tt, kk)
        return np.asarray(np.where(tt == 0, 0.0, out), dtype=np.float64)

    def log_evidence_bound(self, t: ArrayLike, k: ArrayLike) -> NDArray[np.float64]:
        """A cheap upper bound on ``log M_t`` (no incomplete beta function); see the module docstring."""
        tt = np.asarray(t, dtype=np.float64)
        kk = np.asarray(k, dtype=np.float64)
        b = self.budget
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = special.xlogy(kk, kk / (tt * b)) + special.xlogy(
                tt - kk, (tt - kk) / (tt * (1 - b))
            )
        kl = np.where((tt > 0) & (kk > tt * b), kl, 0.0)
        dens = (
            self._log_sup_density
            + special.betaln(kk + 1.0, tt - kk + 1.0)
            + self._log_lr_base(tt, kk)
        )
        return np.asarray(np.minimum(kl, dens), dtype=np.float64)

    def first_alarm(self, t: NDArray[np.int64], k: NDArray[np.int64]) -> int:
        """Index of the first entry with ``M >= 1/alpha`` in aligned count arrays, or ``-1``.

        ``t`` must be increasing (one stream in time order).
        """
        thr = self.log_threshold
        cand = np.flatnonzero(self.log_evidence_bound(t, k) >= thr - _BOUND_SLACK)
        for start in range(0, cand.size, _EXACT_SLICE):
            idx = cand[start : start + _EXACT_SLICE]
            hit = np.flatnonzero(self.log_evidence(t[idx], k[idx]) >= thr)
            if hit.size:
                return int(idx[hit[0]])
        return -1


def confidence_sequence(
    t: ArrayLike, k: ArrayLike, alpha: float = 0.05, prior: BetaPrior | None = None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Anytime-valid (1 - alpha) confidence sequence for a Bernoulli rate, vectorised over ``(t, k)``.

    Parameters
    ----------
    t, k : array_like of int
        Decisions so far and delegations so far (broadcast together).
    alpha : float
        ``P(exists t: p not in [lo_t, hi_t]) <= alpha`` for i.i.d. Bernoulli(p) data, for every p.
    prior : BetaPrior, optional
        Mixing distribution of the Robbins mixture (default Beta(1, 1)).

    Returns
    -------
    (lo, hi) : tuple of ndarray
        ``[0, 1]`` at ``t = 0``.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    pr = prior or BetaPrior(1.0, 1.0)
    tt, kk = np.broadcast_arrays(np.asarray(t, dtype=np.float64), np.asarray(k, dtype=np.float64))
    tt = np.atleast_1d(tt).astype(np.float64)
    kk = np.atleast_1d(kk).astype(np.float64)
    level = (
        special.betaln(pr.a + kk, pr.c + tt - kk) - special.betaln(pr.a, pr.c) - math.log(1 / alpha)
    )
    phat = np.where(tt > 0, kk / np.maximum(tt, 1.0), 0.5)

    def loglik(p: NDArray[np.float64]) -> NDArray[np.float64]:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(special.xlogy(kk, p) + special.xlog1py(tt - kk, -p), dtype=np.float64)

    # Lower end: bisection on [0, phat] for the crossing of loglik with `level`.
    lo_a, lo_b = np.zeros_like(phat), phat.copy()
    hi_a, hi_b = phat.copy(), np.ones_like(phat)
    for _ in range(60):
        mid = 0.5 * (lo_a + lo_b)
        inside = loglik(mid) > level
        lo_b = np.where(inside, mid, lo_b)
        lo_a = np.where(inside, lo_a, mid)
        mid = 0.5 * (hi_a + hi_b)
        inside = loglik(mid) > level
        hi_a = np.where(inside, mid, hi_a)
        hi_b = np.where(inside, hi_b, mid)
    lo = np.where((kk == 0) | (tt == 0), 0.0, lo_a)
    hi = np.where((kk == tt) | (tt == 0), 1.0, hi_b)
    return np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)


def as_decisions(delegated: ArrayLike | bool) -> NDArray[np.bool_]:
    arr = np.atleast_1d(np.asarray(delegated))
    if arr.dtype == np.bool_:
        return arr.ravel()
    if arr.dtype.kind in "iuf":
        flat = arr.ravel()
        if not np.all((flat == 0) | (flat == 1)):
            bad = int(np.flatnonzero((flat != 0) & (flat != 1))[0])
            raise ValueError(f"decision {bad} is {flat[bad]!r}; decisions must be boolean or 0/1")
        return flat.astype(bool)
    raise ValueError(f"decisions must be boolean or 0/1, got dtype {arr.dtype}")


class DecisionCounts:
    """The decision counts every monitor of a delegation stream exposes (a mixin).

    A subclass keeps ``_n`` (decisions seen) and ``_k`` (delegations seen, ``0 <= _k <= _n``) up to
    date in its updates; :attr:`n` and :attr:`k` read them. They count every decision added, also
    after an alarm (the test stops, the counts do not).
    """

    _n: int
    _k: int

    @property
    def n(self) -> int:
        """Decisions seen."""
        return self._n

    @property
    def k(self) -> int:
        """Delegations seen."""
        return self._k


class BudgetMonitor(DecisionCounts):
    """Online, anytime-valid monitor of "delegation rate > budget".

    Feed decisions with :meth:`update` (one bool or a whole array, processed vectorised). After every
    update, :attr:`alarm` says whether the test supermartingale has reached ``1/alpha``.

    Guarantee: if the decisions are i.i.d. Bernoulli(p) with ``p <= budget``, then
    ``P(alarm is ever raised) <= alpha``, whatever the number of updates and however often the state
    is read (Ville's inequality; see :mod:`ctd_stats.audit.monitor`). :attr:`interval` is a
    (1 - alpha) confidence *sequence*: it contains the true rate at all times simultaneously with
    probability >= 1 - alpha.

    Parameters
    ----------
    budget : float
        Certified delegation budget ``b`` in (0, 1).
    alpha : float
        Level of the sequential test and of the confidence sequence.
    prior : BetaPrior, optional
        Mixing prior of the test (truncated to (b, 1)); default :func:`default_prior`.
    cs_prior : BetaPrior, optional
        Mixing prior of the confidence sequence; default the same Beta(a, c), untruncated.

    Examples
    --------
    >>> m = BudgetMonitor(budget=0.1, alpha=0.05)
    >>> _ = m.update([False] * 90 + [True] * 10)
    >>> m.n, m.alarm
    (100, False)
    """

    def __init__(
        self,
        budget: float,
        alpha: float = 0.05,
        prior: BetaPrior | None = None,
        cs_prior: BetaPrior | None = None,
    ) -> None:
        check_budget_alpha(budget, alpha)
        self.budget = float(budget)
        self.alpha = float(alpha)
        self.martingale = MixtureMartingale(self.budget, self.alpha, prior or default_prior(budget))
        self.cs_prior = cs_prior or self.martingale.prior
        self._n = 0
        self._k = 0
        self._alarm_at: int | None = None
        self._alarm_k = 0
        self._log_evidence = 0.0

    # ----------------------------------------------------------------------- updates
    def update(self, delegated: ArrayLike | bool) -> BudgetMonitor:
        """Add decisions (in time order). Returns ``self``.

        Parameters
        ----------
        delegated : bool or array_like of bool / 0-1
            One decision or many; arrays are processed with cumulative sums (no per-row Python loop).
        """
        x = as_decisions(delegated)
        if x.size == 0:
            return self
        self.update_counts_from_cumsum(np.cumsum(x, dtype=np.int64))
        return self

    def update_counts_from_cumsum(self, cum_k: NDArray[np.int64]) -> None:
        """Add a block given the cumulative delegation counts within the block (internal fast path)."""
        m = int(cum_k.size)
        if m == 0:
            return
        if self._alarm_at is None:
            t = self._n + np.arange(1, m + 1, dtype=np.int64)
            k = self._k + cum_k
            i = self.martingale.first_alarm(t, k)
            if i >= 0:
                self._alarm_at = self._n + i
                self._alarm_k = int(k[i])
        self._n += m
        self._k += int(cum_k[-1])
        self._log_evidence = float(self.martingale.log_evidence(self._n, self._k))

    # ----------------------------------------------------------------------- state
    # n, k: DecisionCounts
    @property
    def rate(self) -> float:
        """Realized delegation rate ``k / n`` (NaN before any decision)."""
        return self._k / self._n if self._n else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        """Current (1 - alpha) confidence-sequence interval for the rate (anytime-valid)."""
        lo, hi = confidence_sequence(self._n, self._k, self.alpha, self.cs_prior)
        return float(lo[0]), float(hi[0])

    @property
    def alarm(self) -> bool:
        """True once the wealth has reached ``1/alpha`` (it stays True: the test has stopped)."""
        return self._alarm_at is not None

    @property
    def alarm_at(self) -> int | None:
        """0-based index (in update order) of the decision at which the alarm was first raised."""
        return self._alarm_at

    @property
    def log_evidence(self) -> float:
        """``log M_n``: the log-wealth of the test supermartingale now."""
        return self._log_evidence

    @property
    def evidence(self) -> float:
        """``M_n``, an e-value for H0: rate <= budget (``1/alpha`` is the alarm threshold)."""
        return math.exp(min(self._log_evidence, 700.0))

    @property
    def evidence_at_alarm(self) -> float | None:
        """``M`` at the alarm (>= 1/alpha), or None."""
        if self._alarm_at is None:
            return None
        lm = float(self.martingale.log_evidence(self._alarm_at + 1, self._alarm_k))
        return math.exp(min(lm, 700.0))

    def __repr__(self) -> str:
        return (
            f"BudgetMonitor(budget={self.budget}, alpha={self.alpha}, n={self.n}, k={self.k}, "
            f"alarm={self.alarm}, evidence={self.evidence:.3g})"
        )


def simulate_alarm_times(
    p: float,
    budget: float,
    alpha: float = 0.05,
    *,
    trials: int = 2000,
    horizon: int = 5000,
    seed: int = 0,
    prior: BetaPrior | None = None,
    block: int = 64,
) -> NDArray[np.int64]:
    """Simulate many i.i.d. Bernoulli(p) streams at once and return each stream's alarm time.

    Streams are generated and scanned in blocks of ``block`` time steps (a ``trials x block`` matrix,
    cumulative sums along time); streams that have alarmed drop out.

    Returns
    -------
    ndarray of int
        For each trial, the number of decisions seen when the monitor alarmed (1-based), or 0 if it
        did not alarm within ``horizon``.
    """
    mart = MixtureMartingale(budget, alpha, prior or default_prior(budget))
    thr = mart.log_threshold
    rng = np.random.default_rng(seed)
    alarm = np.zeros(trials, dtype=np.int64)
    k = np.zeros(trials, dtype=np.int64)
    active = np.arange(trials)
    for t0 in range(0, horizon, block):
        width = min(block, horizon - t0)
        x = rng.random((active.size, width)) < p
        cum = k[active, None] + np.cumsum(x, axis=1, dtype=np.int64)
        t = np.broadcast_to(t0 + np.arange(1, width + 1, dtype=np.int64), cum.shape)
        rows, cols = np.nonzero(mart.log_evidence_bound(t, cum) >= thr - _BOUND_SLACK)
        if rows.size:
            hit = mart.log_evidence(t[rows, cols], cum[rows, cols]) >= thr
            hr, hc = rows[hit], cols[hit]
            if hr.size:
                first_rows, first_idx = np.unique(hr, return_index=True)
                alarm[active[first_rows]] = t0 + hc[first_idx] + 1
        k[active] = cum[:, -1]
        active = active[alarm[active] == 0]
        if active.size == 0:
            break
    return alarm

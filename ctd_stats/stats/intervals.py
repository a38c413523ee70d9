"""Fixed-n inference for a delegation rate: exact Clopper–Pearson intervals and a binomial test.

Both are computed from integer counts only (``k`` delegations among ``n`` decisions) and are *exact*
under the model that the ``n`` decisions are i.i.d. Bernoulli(p) with ``n`` fixed in advance. They are
**not** valid when the log is inspected repeatedly and the audit is stopped when it "looks bad"; that
is what the anytime-valid monitor in :mod:`ctd_stats.audit.monitor` is for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

Alternative = Literal["two-sided", "greater", "less"]


def _check_counts(k: NDArray[np.int64], n: NDArray[np.int64]) -> None:
    if np.any(n < 0) or np.any(k < 0) or np.any(k > n):
        raise ValueError("counts must satisfy 0 <= k <= n")


def clopper_pearson(
    k: ArrayLike, n: ArrayLike, alpha: float = 0.05, alternative: Alternative = "two-sided"
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Exact (Clopper–Pearson) confidence interval for a binomial proportion, vectorised.

    Parameters
    ----------
    k, n : array_like of int
        Successes (delegations) and trials (decisions); broadcast together.
    alpha : float
        Miscoverage level; the interval has confidence ``1 - alpha``.
    alternative : {"two-sided", "greater", "less"}
        ``"two-sided"`` gives ``[B(alpha/2; k, n-k+1), B(1-alpha/2; k+1, n-k)]`` with ``B`` the beta
        quantile; ``"greater"`` gives the one-sided lower bound ``[B(alpha; k, n-k+1), 1]``;
        ``"less"`` the one-sided upper bound ``[0, B(1-alpha; k+1, n-k)]``.

    Returns
    -------
    (lower, upper) : tuple of ndarray
        Bounds; with ``n = 0`` the interval is ``[0, 1]``.

    Notes
    -----
    Guarantee: if ``k ~ Bin(n, p)`` with ``n`` fixed, ``P(p in interval) >= 1 - alpha`` for every
    ``p`` in [0, 1] (conservative because of discreteness). This is the same interval as
    ``statsmodels.stats.proportion.proportion_confint(method="beta")``.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    kk = np.asarray(k, dtype=np.int64)
    nn = np.asarray(n, dtype=np.int64)
    kk, nn = np.broadcast_arrays(kk, nn)
    _check_counts(kk, nn)
    from scipy import stats  # here, not at import: the gateway starts without scipy.stats

    a = alpha / 2.0 if alternative == "two-sided" else alpha
    with np.errstate(invalid="ignore", divide="ignore"):
        lo = stats.beta.ppf(a, kk, nn - kk + 1)
        hi = stats.beta.ppf(1.0 - a, kk + 1, nn - kk)
    lo = np.where(kk == 0, 0.0, lo)
    hi = np.where(kk == nn, 1.0, hi)
    if alternative == "greater":
        hi = np.ones_like(hi)
    elif alternative == "less":
        lo = np.zeros_like(lo)
    elif alternative != "two-sided":
        raise ValueError(f"unknown alternative {alternative!r}")
    return np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)


def binomial_exceedance_pvalue(k: ArrayLike, n: ArrayLike, budget: float) -> NDArray[np.float64]:
    """One-sided exact binomial p-value for H0: rate <= budget against H1: rate > budget.

    Parameters
    ----------
    k, n : array_like of int
        Delegations and decisions.
    budget : float
        The certified delegation budget ``b`` in (0, 1).

    Returns
    -------
    ndarray
        ``P(Bin(n, b) >= k)``, computed as ``binom.sf(k - 1, n, b)`` (1 when ``k = 0``).

    Notes
    -----
    Validity: under H0 the decisions are i.i.d. Bernoulli(p) with ``p <= b`` and ``n`` fixed in
    advance. Then ``P_p(pvalue <= u) <= u`` for every ``u`` in [0, 1]: the p-value is super-uniform at
    ``p = b`` (exact binomial tail) and, because ``Bin(n, p)`` is stochastically increasing in ``p``,
    also for every ``p < b``. Rejecting when ``pvalue <= alpha`` is a level-``alpha`` test. Matches
    ``scipy.stats.binomtest(k, n, b, alternative="greater").pvalue``.
    """
    if not 0.0 < budget < 1.0:
        raise ValueError(f"budget must be in (0, 1), got {budget}")
    kk = np.asarray(k, dtype=np.int64)
    nn = np.asarray(n, dtype=np.int64)
    kk, nn = np.broadcast_arrays(kk, nn)
    _check_counts(kk, nn)
    from scipy import stats

    p = stats.binom.sf(kk - 1, nn, budget)
    return np.asarray(np.clip(np.where(kk == 0, 1.0, p), 0.0, 1.0), dtype=np.float64)


@dataclass(frozen=True)
class FixedNResult:
    """Realized rate, its exact interval, and the fixed-n test of "rate > budget".

    Attributes
    ----------
    n, k : int
        Decisions and delegations.
    rate : float
        ``k / n`` (NaN when ``n = 0``).
    ci_low, ci_high : float
        Two-sided Clopper–Pearson interval at confidence ``1 - alpha``.
    pvalue : float
        ``P(Bin(n, budget) >= k)``.
    rejects : bool
        ``pvalue <= alpha``: evidence at level ``alpha`` that the rate exceeds the budget (valid only for
        a log whose length was fixed before looking at it).
    """

    n: int
    k: int
    rate: float
    ci_low: float
    ci_high: float
    pvalue: float
    rejects: bool
    alpha: float
    budget: float


def fixed_n_audit(k: int, n: int, budget: float, alpha: float = 0.05) -> FixedNResult:
    """Clopper–Pearson interval (confidence ``1 - alpha``) and the exact binomial test at level ``alpha``."""
    lo, hi = clopper_pearson(k, n, alpha)
    p = float(binomial_exceedance_pvalue(k, n, budget))
    return FixedNResult(
        n=int(n),
        k=int(k),
        rate=float(k / n) if n > 0 else float("nan"),
        ci_low=float(lo),
        ci_high=float(hi),
        pvalue=p,
        rejects=bool(n > 0 and p <= alpha),
        alpha=float(alpha),
        budget=float(budget),
    )

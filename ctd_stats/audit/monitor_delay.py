"""Exact detection-delay distribution of the anytime-valid budget monitor (no simulation).

For i.i.d. decisions with delegation probability r, the monitor alarms at the first t with
M_t(k_t) ≥ 1/α (:class:`~ctd_stats.audit.monitor.MixtureMartingale`). M_t(k) is a mixture over
q > b of likelihood ratios (q/b)^k ((1 − q)/(1 − b))^(t − k), each increasing in k, so at every t the
alarm region is {k ≥ c(t)} with c(t) the smallest alarming count (found for all t at once by
bisection on k). The first-alarm time is then a first-passage time of the binomial walk k_t over
the boundary c(t), computed exactly by forward recursion on the distribution of k_t among the
streams that have not alarmed yet:

    p_t(k) = (1 − r) p_{t−1}(k) + r p_{t−1}(k − 1),   P(alarm at t) = Σ_{k ≥ c(t)} p_t(k),

after which those k are removed. Cost O(t_stop²) elementary operations, t_stop the step where the
surviving mass falls below ``tol`` (or the horizon): a few seconds for the table in
``docs/audit.md``. Floating-point error in the recursion is far below the quantiles' resolution of
one decision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ctd_stats.audit.monitor import BetaPrior, MixtureMartingale


def alarm_boundary(mart: MixtureMartingale, horizon: int) -> NDArray[np.int64]:
    """c(t) for t = 1..horizon: the smallest k ≤ t with M_t(k) ≥ 1/α, or t + 1 if none."""
    t = np.arange(1, horizon + 1, dtype=np.int64)
    thr = mart.log_threshold
    lo = np.full(horizon, -1, dtype=np.int64)  # invariant: M_t(lo) < thr (lo = −1: none below)
    hi = t + 1  # invariant: hi = t + 1 (none) or M_t(hi) ≥ thr
    while True:
        active = hi - lo > 1
        if not active.any():
            return hi
        mid = (lo + hi) // 2
        ok = np.zeros(horizon, dtype=bool)
        ok[active] = mart.log_evidence(t[active], mid[active]) >= thr
        hi = np.where(active & ok, mid, hi)
        lo = np.where(active & ~ok, mid, lo)


@dataclass(frozen=True)
class DelayDistribution:
    """P(first alarm at t) for t = 1..len(pmf); ``survival`` = P(no alarm by the horizon)."""

    pmf: NDArray[np.float64]
    survival: float

    def quantile(self, q: float) -> float:
        """Smallest t with P(alarm by t) ≥ q; ``inf`` if not reached within the horizon."""
        cdf = np.cumsum(self.pmf)
        i = int(np.searchsorted(cdf, q - 1e-12, side="left"))
        return float(i + 1) if i < cdf.size else float("inf")

    @property
    def alarm_probability(self) -> float:
        return float(self.pmf.sum())


def delay_distribution(
    budget: float, alpha: float, prior: BetaPrior, rate: float, horizon: int, *, tol: float = 1e-12
) -> DelayDistribution:
    """The exact distribution of the first alarm for decisions at delegation probability ``rate``."""
    mart = MixtureMartingale(budget, alpha, prior)
    c = alarm_boundary(mart, horizon)
    p = np.zeros(horizon + 2)
    p[0] = 1.0
    pmf = np.zeros(horizon)
    alive = 1.0
    for t in range(1, horizon + 1):  # one step per decision time (the recursion is sequential)
        p[1 : t + 1] = (1.0 - rate) * p[1 : t + 1] + rate * p[0:t]
        p[0] *= 1.0 - rate
        ct = int(c[t - 1])
        if ct <= t:
            pmf[t - 1] = p[ct : t + 1].sum()
            p[ct : t + 1] = 0.0
        alive -= pmf[t - 1]
        if alive < tol:
            return DelayDistribution(pmf[:t], max(alive, 0.0))
    return DelayDistribution(pmf, max(alive, 0.0))

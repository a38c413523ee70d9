r"""Score drift: logged deferral scores against the calibration scores summarized in the certificate.

The certificate stores ``score_reference = {n, quantiles}``: ``J`` (about 201) quantiles
:math:`q_0 \le \dots \le q_{J-1}` of the ``n`` calibration scores at probabilities
:math:`p_j = j/(J-1)`. The reference CDF :math:`F_0` is the piecewise-linear interpolation through
:math:`(q_j, p_j)` (jumps where quantiles repeat, i.e. at atoms of discrete scores).

Statistic. The log's empirical CDF :math:`F_m` is accumulated in bounded memory by counting the
``m`` logged scores between consecutive reference quantiles. The statistic is the KS distance at the
reference quantiles (both one-sided limits),

.. math:: D = \max_j \max\big(|F_m(q_j) - F_0(q_j)|,\ |F_m(q_j^-) - F_0(q_j^-)|\big),

which satisfies :math:`D \le \sup_x |F_m(x) - F_0(x)| \le D + \max_j (p_{j+1}-p_j)`
(both CDFs are monotone between grid points): a drift concentrated between two adjacent quantiles can
be under-stated by at most :math:`1/(J-1)`.

p-value (approximate). Treating the calibration scores and the logged scores as two independent
i.i.d. samples from continuous distributions, the two-sample KS statistic has, under "no drift", the
asymptotic Kolmogorov distribution of :math:`\sqrt{n_e} D` with :math:`n_e = nm/(n+m)`; we use
Stephens' correction :math:`\lambda = (\sqrt{n_e} + 0.12 + 0.11/\sqrt{n_e})D` and
``scipy.stats.kstwobign.sf``. Because ``D`` is evaluated at the quantiles only (a lower bound of the
full two-sample statistic up to the quantile summary), the p-value tends to be conservative; ties
(discrete scores) and serial dependence in deployment traffic make it approximate. With a very large
log :math:`n_e \approx n`: the power is that of the calibration sample size. Drift is reported as a
**warning** only; it does not change the verdict (the budget test looks at the decisions themselves).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from ctd_stats.audit.result import DriftSummary
from ctd_stats.certificate.reference import REFERENCE_QUANTILES, ScoreReference
from ctd_stats.errors import CTDInputError


@dataclass(frozen=True)
class DriftResult:
    """KS-type comparison of logged scores with the reference (see the module docstring)."""

    statistic: float
    pvalue: float
    n_log: int
    n_reference: int
    resolution: float
    warning: bool
    log_cdf: list[float]


class DriftAccumulator:
    """Accumulates logged scores into reference-quantile bins (memory O(J))."""

    def __init__(self, reference: ScoreReference) -> None:
        self.reference = reference
        self._q = np.asarray(reference.quantiles, dtype=np.float64)
        j = self._q.size
        self._le = np.zeros(j + 1, dtype=np.int64)  # bincount of #q < s  -> cumsum gives #s <= q_j
        self._lt = np.zeros(j + 1, dtype=np.int64)  # bincount of #q <= s -> cumsum gives #s <  q_j
        self.m = 0

    def update(self, scores: NDArray[np.float64]) -> None:
        s = scores[~np.isnan(scores)]
        if s.size == 0:
            return
        j = self._q.size
        self._le += np.bincount(np.searchsorted(self._q, s, side="left"), minlength=j + 1)
        self._lt += np.bincount(np.searchsorted(self._q, s, side="right"), minlength=j + 1)
        self.m += int(s.size)

    def result(self, alpha: float) -> DriftResult:
        q = self._q
        j = q.size
        p = np.linspace(0.0, 1.0, j)
        if self.m == 0:
            return DriftResult(
                float("nan"), float("nan"), 0, self.reference.n, 1.0 / (j - 1), False, []
            )
        f_le = np.cumsum(self._le)[:j] / self.m
        f_lt = np.cumsum(self._lt)[:j] / self.m
        # reference: right limit at q_j is the largest p with the same quantile, left limit the smallest
        last = np.searchsorted(q, q, side="right") - 1
        first = np.searchsorted(q, q, side="left")
        f0_right = p[last]
        f0_left = np.where(first == 0, 0.0, p[first])
        d = float(max(np.max(np.abs(f_le - f0_right)), np.max(np.abs(f_lt - f0_left))))
        n = self.reference.n
        ne = n * self.m / (n + self.m)
        lam = (math.sqrt(ne) + 0.12 + 0.11 / math.sqrt(ne)) * d
        pval = float(stats.kstwobign.sf(lam))
        return DriftResult(d, pval, self.m, n, 1.0 / (j - 1), bool(pval <= alpha), f_le.tolist())


def reference_from_scores(
    scores: Sequence[float] | NDArray[np.float64], size: int = REFERENCE_QUANTILES
) -> ScoreReference:
    """Summarize calibration scores as ``size`` quantiles (the certificate's format)."""
    ref = ScoreReference.from_scores(scores, size)
    if ref.n == 0:
        raise CTDInputError("no finite reference scores")
    return ref


def drift_summary(
    acc: DriftAccumulator | None,
    ref: ScoreReference | None,
    threshold: float,
    alpha: float,
    warnings: list[str],
) -> DriftSummary:
    """The audit's drift section (appends a warning to ``warnings`` when the scores drifted)."""
    if acc is None or ref is None:
        return DriftSummary(
            available=False,
            note="no score reference in the certificate"
            if ref is None
            else "no score column in the log",
        )
    dr = acc.result(alpha)
    ref_rate = 1.0 - ref.cdf(threshold) if math.isfinite(threshold) else 0.0
    if dr.warning:
        warnings.append(
            f"score drift: the logged scores differ from the calibration scores (KS D = "
            f"{dr.statistic:.3g}, approximate p = {dr.pvalue:.2g}); the certificate assumed the "
            "calibration distribution"
        )
    return DriftSummary(
        available=True,
        statistic=dr.statistic,
        pvalue=dr.pvalue,
        n_log=dr.n_log,
        n_reference=dr.n_reference,
        resolution=dr.resolution,
        warning=dr.warning,
        reference_rate_above_threshold=ref_rate,
        reference_quantiles=list(ref.quantiles),
        log_cdf_at_quantiles=dr.log_cdf,
        note=(
            "KS distance between logged scores and the calibration score quantiles, evaluated at "
            f"the {len(ref.quantiles)} reference quantiles (exact to within {dr.resolution:.3g}); "
            "p-value from the asymptotic two-sample Kolmogorov distribution (approximate)."
        ),
    )

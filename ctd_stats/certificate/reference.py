"""The calibration-score reference: quantiles of the DV scores a threshold was certified on.

One model, used by certificates (written at calibration) and by the audit's drift check (read at
deployment): ``n`` scores summarised by ``J`` quantiles at probabilities ``linspace(0, 1, J)``.
Its reference CDF is the piecewise-linear interpolation through those points (see
:mod:`ctd_stats.audit.drift`). ``n = 0`` with no quantiles means "no reference".
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from pydantic import BaseModel, ConfigDict, Field

from ctd_stats.errors import CTDInputError

#: Number of quantiles of the calibration scores kept for drift checks.
REFERENCE_QUANTILES = 201


class ScoreReference(BaseModel):
    """Quantiles of the calibration DV scores, for drift checks at deployment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n: int = Field(ge=0, description="Number of calibration scores summarised.")
    quantiles: tuple[float, ...] = Field(description="Quantiles at probabilities 0, 1/200, ..., 1.")

    @classmethod
    def from_scores(cls, scores: ArrayLike, k: int = REFERENCE_QUANTILES) -> ScoreReference:
        """Summarise the finite scores as ``k`` quantiles (empty reference when there are none)."""
        s = np.asarray(scores, dtype=np.float64).ravel()
        s = s[np.isfinite(s)]
        if s.size == 0:
            return cls(n=0, quantiles=())
        q = np.quantile(s, np.linspace(0.0, 1.0, k))
        return cls(n=int(s.size), quantiles=tuple(float(x) for x in q))

    @classmethod
    def from_obj(cls, obj: Any) -> ScoreReference:
        """A usable reference from a model, a dict ``{"n", "quantiles"}`` or an object with both.

        Raises
        ------
        CTDInputError
            ``n < 1``, fewer than 2 quantiles, or quantiles not finite and non-decreasing.
        """
        if isinstance(obj, dict):
            n, q = obj.get("n"), obj.get("quantiles")
        else:
            n, q = getattr(obj, "n", None), getattr(obj, "quantiles", None)
        if n is None or q is None:
            raise CTDInputError("score_reference needs 'n' and 'quantiles'")
        qs = tuple(float(v) for v in q)
        if len(qs) < 2 or int(n) < 1:
            raise CTDInputError("score_reference needs n >= 1 and at least 2 quantiles")
        if any(not math.isfinite(v) for v in qs) or any(b < a for a, b in itertools.pairwise(qs)):
            raise CTDInputError("score_reference quantiles must be finite and non-decreasing")
        return cls(n=int(n), quantiles=qs)

    @property
    def is_empty(self) -> bool:
        """True when there is no reference (no calibration scores, or fewer than 2 quantiles)."""
        return self.n < 1 or len(self.quantiles) < 2

    def cdf(self, x: float) -> float:
        """Reference CDF (right-continuous piecewise-linear) at ``x``."""
        q = np.asarray(self.quantiles)
        p = np.linspace(0.0, 1.0, q.size)
        if x < q[0]:
            return 0.0
        if x >= q[-1]:
            return 1.0
        j = int(np.searchsorted(q, x, side="right"))  # q[j-1] <= x < q[j]
        lo, hi = q[j - 1], q[j]
        return float(p[j - 1] + (p[j] - p[j - 1]) * (x - lo) / (hi - lo))

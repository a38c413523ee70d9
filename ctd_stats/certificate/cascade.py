"""The deployed cascade: a certified threshold τ taken from a certificate, with its provenance.

:class:`Cascade` is what a deployment holds (the gateway, ``ctd audit``): the threshold, the budget
and δ it was certified for, and the certificate entry. Its decisions are the one rule
:func:`ctd_stats.stats.rule.delegate` (``d(x) > τ``; NaN is an error, τ = +inf never delegates).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ctd_stats.certificate.checks import check_certificate, load_certificate
from ctd_stats.certificate.model import BudgetCertificate, Certificate
from ctd_stats.errors import CTDInputError
from ctd_stats.io import json_float
from ctd_stats.stats.rule import delegate


@dataclass(frozen=True)
class Cascade:
    """Delegation rule ``d(x) > τ``, optionally with the certificate entry that certified τ.

    Build it with :meth:`from_certificate` at deployment, or :meth:`rule` for a bare threshold;
    call :meth:`delegate` on DV scores.
    """

    threshold: float
    budget: float | None = None
    delta: float | None = None
    expert: str | None = None
    certified: bool = False
    guarantee: str = ""
    result: BudgetCertificate | None = None
    certificate: Certificate | None = None

    def __post_init__(self) -> None:
        if math.isnan(self.threshold):
            raise CTDInputError("threshold: NaN is not a threshold (use +inf to never delegate)")

    @classmethod
    def rule(cls, threshold: float) -> Cascade:
        """The bare rule ``d > threshold`` (no certificate attached)."""
        return cls(threshold=float(threshold), certified=math.isfinite(threshold))

    @classmethod
    def from_certificate(
        cls,
        path: str | os.PathLike[str] | Certificate,
        budget: float | None = None,
        expert: str | None = None,
        *,
        spec_path: str | os.PathLike[str] | None = None,
        data_path: str | os.PathLike[str] | None = None,
        options: tuple[str, str] = ("budget=", "expert="),
    ) -> Cascade:
        """Load the result for ``budget``/``expert`` from a certificate (file or object).

        ``budget`` and ``expert`` may be omitted when the certificate has only one candidate.
        ``spec_path``/``data_path`` check the recorded hashes (see
        :func:`~ctd_stats.certificate.checks.load_certificate`).
        """
        if isinstance(path, Certificate):
            cert = check_certificate(path, "certificate object")
        else:
            cert = load_certificate(Path(path), spec_path=spec_path, data_path=data_path)
        r = cert.result(budget=budget, expert=expert, options=options)
        return cls(
            threshold=float(r.threshold),
            budget=r.budget,
            delta=r.delta,
            expert=r.expert,
            certified=r.certified and math.isfinite(r.threshold),
            guarantee=r.guarantee,
            result=r,
            certificate=cert,
        )

    def delegate(self, scores: ArrayLike) -> NDArray[np.bool_]:
        """Whether to call the expert for each score: :func:`ctd_stats.stats.rule.delegate`."""
        return delegate(scores, self.threshold)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: the rule and what certified it (τ = +inf as ``"inf"``)."""
        return {
            "threshold": json_float(self.threshold),
            "budget": self.budget,
            "delta": self.delta,
            "expert": self.expert,
            "certified": self.certified,
            "guarantee": self.guarantee,
        }

    def __repr__(self) -> str:
        budget = "None" if self.budget is None else f"{self.budget:g}"
        delta = "None" if self.delta is None else f"{self.delta:g}"
        return (
            f"Cascade(expert={self.expert!r}, budget={budget}, delta={delta}, "
            f"threshold={self.threshold:.6g}, certified={self.certified})"
        )

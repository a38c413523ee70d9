"""A deployable cascade: the certified threshold from a certificate, applied to new scores."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ctd_stats.certificate import BudgetCertificate, Certificate, load_certificate


@dataclass(frozen=True)
class Cascade:
    """Delegation rule ``d(x) > τ`` with the certified τ of one (expert, budget).

    Build it with :meth:`from_certificate`; call :meth:`delegate` on DV scores at deployment.
    """

    threshold: float
    budget: float
    delta: float
    expert: str
    certified: bool
    guarantee: str
    result: BudgetCertificate
    certificate: Certificate | None = None

    @classmethod
    def from_certificate(
        cls,
        path: str | os.PathLike[str] | Certificate,
        budget: float | None = None,
        expert: str | None = None,
        *,
        spec_path: str | os.PathLike[str] | None = None,
        data_path: str | os.PathLike[str] | None = None,
    ) -> Cascade:
        """Load the result for ``budget``/``expert`` from a certificate (file or object).

        ``budget`` and ``expert`` may be omitted when the certificate has only one candidate.
        ``spec_path``/``data_path`` check the recorded hashes (see
        :func:`~ctd_stats.certificate.load_certificate`).
        """
        if isinstance(path, Certificate):
            cert = path
        else:
            cert = load_certificate(Path(path), spec_path=spec_path, data_path=data_path)
        r = cert.result(budget=budget, expert=expert)
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
        """Whether to call the expert for each score (``score > threshold``).

        Raises
        ------
        ValueError
            If any score is NaN (a missing score has no safe default decision).
        """
        s = np.asarray(scores, dtype=np.float64)
        if np.isnan(s).any():
            bad = int(np.flatnonzero(np.isnan(s.ravel()))[0])
            raise ValueError(f"scores contain NaN (first at index {bad}); cannot decide delegation")
        return np.asarray(s > self.threshold, dtype=bool)

    def __repr__(self) -> str:
        return (
            f"Cascade(expert={self.expert!r}, budget={self.budget:g}, delta={self.delta:g}, "
            f"threshold={self.threshold:.6g}, certified={self.certified})"
        )

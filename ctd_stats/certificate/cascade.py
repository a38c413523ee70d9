"""The deployed rule: delegate an input to the expert iff its DV score exceeds the certified τ.

:class:`Cascade` is the one definition of "d(x) > τ" in the package: :meth:`Calibration.delegate
<ctd_stats.stats.ltt.Calibration.delegate>`, certificates and the audit all call it, so every path shares
one policy for odd scores:

* **NaN** is an error (:class:`~ctd_stats.errors.CTDInputError`, a ``ValueError``): a missing score
  has no safe default decision, and silently answering either way would bias the delegation rate.
* **±inf** are ordinary scores: ``+inf`` delegates under any finite τ, ``-inf`` never does.
* **τ = +inf** (fail closed: nothing certified) never delegates, not even a score of ``+inf``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ctd_stats.errors import CTDInputError

if TYPE_CHECKING:  # pragma: no cover
    from ctd_stats.certificate.model import BudgetCertificate, Certificate


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
        :func:`~ctd_stats.certificate.model.load_certificate`).
        """
        from ctd_stats.certificate.model import Certificate, load_certificate

        if isinstance(path, Certificate):
            cert = path.check("certificate object")
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
        """Whether to call the expert for each score: ``score > threshold`` (see the module policy).

        Raises
        ------
        CTDInputError
            If any score is NaN (first index named).
        """
        s = np.asarray(scores, dtype=np.float64)
        nan = np.isnan(s)
        if nan.any():
            bad = int(np.flatnonzero(nan.ravel())[0])
            raise CTDInputError(
                f"scores contain NaN (first at index {bad}): a missing score has no safe decision"
            )
        return np.asarray(s > self.threshold, dtype=bool)

    def __repr__(self) -> str:
        budget = "None" if self.budget is None else f"{self.budget:g}"
        delta = "None" if self.delta is None else f"{self.delta:g}"
        return (
            f"Cascade(expert={self.expert!r}, budget={budget}, delta={delta}, "
            f"threshold={self.threshold:.6g}, certified={self.certified})"
        )

"""The deployed rule: delegate an input to the expert iff its DV score exceeds the certified τ.

:func:`delegate` is the one definition of "d(x) > τ" in the package: :meth:`Calibration.delegate
<ctd_stats.stats.ltt.Calibration.delegate>`, certificate entries, the deployed
:class:`~ctd_stats.certificate.cascade.Cascade`, the gateway and the audit all call it, so every path
shares one policy for odd scores:

* **NaN** is an error (:class:`~ctd_stats.errors.CTDInputError`, a ``ValueError``): a missing score
  has no safe default decision, and silently answering either way would bias the delegation rate.
* **±inf** are ordinary scores: ``+inf`` delegates under any finite τ, ``-inf`` never does.
* **τ = +inf** (fail closed: nothing certified) never delegates, not even a score of ``+inf``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ctd_stats.errors import CTDInputError

__all__ = ["delegate"]


def delegate(scores: ArrayLike, threshold: float) -> NDArray[np.bool_]:
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
    # τ = +inf: s > inf is False for every s, including +inf.
    return np.asarray(s > threshold, dtype=bool)

"""The smallest budget a calibration set of n rows can certify, without scipy.

:func:`ctd_stats.stats.planning.certifiable_budget` with ``rate = 0`` finds the float boundary of the test
``P(Bin(n, b) ≤ 0) ≤ δ`` as scipy's ``bdtr`` computes it; for k = 0 that is ``(1 − b)^n`` (the
binomial CDF's k = 0 branch is a plain power), so the same bisection needs only the power. ``ctd
validate`` uses this to warn about budgets that fail closed without importing scipy (about 0.4 s
of its start-up). ``tests/ctd_stats/test_budget_floor.py`` checks it equals ``certifiable_budget``.
"""

from __future__ import annotations

import struct

from ctd_stats.errors import CTDInputError
from ctd_stats.stats.inputs import check_open_unit


def _float_bits(x: float) -> int:
    return int(struct.unpack("<q", struct.pack("<d", x))[0])


def _bits_float(i: int) -> float:
    return float(struct.unpack("<d", struct.pack("<q", i))[0])


def smallest_certifiable_budget(n: int, delta: float) -> float:
    """Smallest float budget b with ``(1 − b)^n ≤ δ``: the smallest budget n points can certify.

    It is the (1 − δ) Clopper–Pearson upper bound for 0 delegations in n, ≈ 1 − δ^(1/n), located
    exactly as :func:`ctd_stats.stats.planning.certifiable_budget` locates it (bisection on the bit
    patterns of the floats in [0, 1], at most 62 steps; the test fails at 0 and passes at 1), so
    the two agree to the last bit. Any budget below it fails closed (τ = +inf, never delegates).

    Parameters
    ----------
    n : int
        Number of calibration (ht) rows, ≥ 1.
    delta : float
        Risk level δ in (0, 1).

    Returns
    -------
    float
        The boundary budget.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise CTDInputError(f"n must be a positive integer, got {n!r}")
    d = check_open_unit("delta", delta)
    nf = float(n)
    lo, hi = _float_bits(0.0), _float_bits(1.0)  # invariant: fails at lo, passes at hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if (1.0 - _bits_float(mid)) ** nf <= d:
            hi = mid
        else:
            lo = mid
    return _bits_float(hi)

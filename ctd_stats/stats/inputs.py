"""Input checks shared by the core. Every error names the offending argument."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ctd_stats.errors import CTDInputError

#: Largest integer magnitude float64 represents exactly (with all smaller integers): 2^53.
_EXACT_INT = 2**53


def check_open_unit(name: str, value: Any) -> float:
    """Return ``value`` as a float, requiring it to lie in the open interval (0, 1)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise CTDInputError(f"{name} must be a number in (0, 1), got {value!r}") from None
    if not (0.0 < v < 1.0) or math.isnan(v):
        raise CTDInputError(f"{name} must lie strictly between 0 and 1, got {value!r}")
    return v


def as_finite_1d(name: str, values: Any, *, allow_empty: bool = False) -> NDArray[np.float64]:
    """Convert to a 1-D float64 array, rejecting NaN/inf and (unless allowed) empty input."""
    raw = values if isinstance(values, np.ndarray) else None
    if raw is None and not isinstance(values, (float, int)):
        try:
            raw = np.asarray(values)
        except (TypeError, ValueError):
            raw = None
    if raw is not None and raw.dtype.kind in "iu" and raw.size:
        big = (raw > _EXACT_INT) | (raw < -_EXACT_INT)
        if np.any(big):
            i = int(np.flatnonzero(np.ravel(big))[0])
            raise CTDInputError(
                f"{name} holds integers above 2^53 in magnitude (first at index {i}: {np.ravel(raw)[i]}); "
                "float64 cannot represent them exactly, so distinct scores would be merged into ties. "
                "Rescale them (e.g. subtract an offset or divide) before calibrating."
            )
    elif isinstance(values, int) and not isinstance(values, bool) and abs(values) > _EXACT_INT:
        raise CTDInputError(
            f"{name} = {values} is an integer above 2^53: float64 cannot represent it exactly"
        )
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise CTDInputError(f"{name} must be an array of numbers") from None
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise CTDInputError(f"{name} must be 1-dimensional, got shape {arr.shape}")
    if arr.size == 0 and not allow_empty:
        raise CTDInputError(f"{name} is empty: at least one value is needed")
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise CTDInputError(
            f"{name} contains {int(bad.sum())} non-finite value(s) (NaN or inf); first at index {i}: {arr[i]}"
        )
    return arr


def as_bool_1d(name: str, values: Any, n: int | None = None) -> NDArray[np.bool_]:
    """Convert 0/1 or boolean input to a 1-D bool array of optional length ``n``."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise CTDInputError(f"{name} must be 1-dimensional, got shape {arr.shape}")
    if arr.dtype != np.bool_:
        try:
            f = arr.astype(np.float64, copy=False)
        except (TypeError, ValueError):
            raise CTDInputError(f"{name} must hold booleans or 0/1 values") from None
        if not np.all((f == 0) | (f == 1)):
            raise CTDInputError(f"{name} must hold booleans or 0/1 values")
        arr = f.astype(bool)
    if n is not None and arr.size != n:
        raise CTDInputError(f"{name} has length {arr.size}, expected {n} (mismatched lengths)")
    return arr


def as_probabilities(name: str, values: Any, n: int | None = None) -> NDArray[np.float64]:
    """Finite 1-D array of values in [0, 1] of optional length ``n``."""
    arr = as_finite_1d(name, values)
    if n is not None and arr.size != n:
        raise CTDInputError(f"{name} has length {arr.size}, expected {n} (mismatched lengths)")
    if arr.min() < 0 or arr.max() > 1:
        raise CTDInputError(f"{name} must lie in [0, 1]")
    return arr

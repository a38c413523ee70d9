"""Compare a computed JSON-like value with a stored golden value.

Structure (keys, key order, list lengths, types), strings, integers, booleans and ``None`` must
match exactly. Floats match to a relative tolerance: the last bits of a float depend on the numpy,
scipy and pandas builds installed (summation order, SIMD kernels), so an exact ``==`` on a golden
float fails with no change of behaviour. ``rel=1e-12`` still catches any change of method.
"""

from __future__ import annotations

import math
from typing import Any

GOLDEN_REL = 1e-12


def golden_mismatches(
    got: Any, expected: Any, *, rel: float = GOLDEN_REL, path: str = "$"
) -> list[str]:
    """Every place where ``got`` differs from ``expected`` (empty list when they match)."""
    if isinstance(expected, bool) or expected is None or isinstance(expected, str):
        return (
            []
            if (type(got) is type(expected) and got == expected)
            else [f"{path}: {got!r} != {expected!r}"]
        )
    if isinstance(expected, int) and isinstance(got, int) and not isinstance(got, bool):
        return [] if got == expected else [f"{path}: {got!r} != {expected!r}"]
    if (
        isinstance(expected, float | int)
        and isinstance(got, float | int)
        and not isinstance(got, bool)
    ):
        if isinstance(expected, int) != isinstance(got, int):
            return [f"{path}: type {type(got).__name__} != {type(expected).__name__}"]
        g, e = float(got), float(expected)
        if math.isnan(e) or math.isnan(g):
            return [] if math.isnan(e) and math.isnan(g) else [f"{path}: {g!r} != {e!r}"]
        return (
            []
            if math.isclose(g, e, rel_tol=rel, abs_tol=0.0)
            else [f"{path}: {g!r} != {e!r} (rel {rel:g})"]
        )
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return [f"{path}: {type(got).__name__} is not an object"]
        if list(got) != list(expected):
            return [f"{path}: keys {list(got)} != {list(expected)}"]
        out: list[str] = []
        for key in expected:
            out += golden_mismatches(got[key], expected[key], rel=rel, path=f"{path}.{key}")
        return out
    if isinstance(expected, list):
        if not isinstance(got, list) or len(got) != len(expected):
            return [
                f"{path}: list of {len(got) if isinstance(got, list) else '?'} != {len(expected)}"
            ]
        out = []
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            out += golden_mismatches(g, e, rel=rel, path=f"{path}[{i}]")
        return out
    return [f"{path}: unsupported golden type {type(expected).__name__}"]


def assert_matches_golden(
    got: Any, expected: Any, *, rel: float = GOLDEN_REL, label: str = ""
) -> None:
    """Assert ``golden_mismatches`` is empty, listing the first differences."""
    diffs = golden_mismatches(got, expected, rel=rel)
    assert not diffs, f"{label}: {len(diffs)} difference(s) from the golden value:\n" + "\n".join(
        diffs[:10]
    )

"""argparse value types that refuse what the spec would refuse (never silently replaced)."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def positive_int(text: str) -> int:
    """An integer ≥ 1 (``--trials 0`` is an error, not 'use the default')."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer (≥ 1), got {value}")
    return value


def seed_int(text: str) -> int:
    """A seed: an integer ≥ 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a non-negative integer seed, got {text!r}"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"a seed must be ≥ 0, got {value}")
    return value


def bounded_int(maximum: int, what: str) -> Callable[[str], int]:
    """An integer in [1, maximum] (``--repeats``, ``--trials``): :func:`positive_int` with a cap."""

    def parse(text: str) -> int:
        value = positive_int(text)
        if value > maximum:
            raise argparse.ArgumentTypeError(f"at most {maximum:,} {what}, got {value:,}")
        return value

    parse.__name__ = "positive integer"
    return parse

"""Shared fixtures: small generated score tables and spec files."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests._support.slow import is_slow
from tests._support.tolerance import binomial_tolerance  # noqa: F401  (older imports)


def score_frame(n: int = 600, seed: int = 0, *, weak: bool = False) -> pd.DataFrame:
    """A synthetic score table with the documented columns (split left empty)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    sign = 2 * y - 1
    p = 1 / (1 + np.exp(-(sign * 1.0 + rng.normal(0, 1.2, n))))
    b = 1 / (1 + np.exp(-(sign * 3.0 + rng.normal(0, 1.0, n))))
    frame = pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(n)],
            "split": [""] * n,
            "group": rng.choice(["a", "b"], n),
            "label": y,
            "probe_prob": p,
            "expert_prob": b,
            "dv_score": sign * (b - p) + rng.normal(0, 0.2, n),
        }
    )
    if weak:
        w = 1 / (1 + np.exp(-(sign * 1.5 + rng.normal(0, 1.1, n))))
        frame["expert_prob__weak"] = w
        frame["dv_score__weak"] = sign * (w - p) + rng.normal(0, 0.2, n)
    return frame


def write_frame(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


@pytest.fixture
def make_table(tmp_path: Path) -> Callable[..., Path]:
    """``make_table(name="scores.parquet", n=600, seed=0, weak=False, edit=None)`` -> path."""

    def make(
        name: str = "scores.parquet",
        n: int = 600,
        seed: int = 0,
        weak: bool = False,
        edit: Callable[[pd.DataFrame], Any] | None = None,
    ) -> Path:
        frame = score_frame(n, seed, weak=weak)
        if edit is not None:
            out = edit(frame)
            frame = out if isinstance(out, pd.DataFrame) else frame
        return write_frame(frame, tmp_path / name)

    return make


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[..., Path]:
    """``write_spec(text, name="spec.yaml")`` writes dedented YAML next to the tables."""

    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="session")
def table_tools() -> tuple[Callable[..., pd.DataFrame], Callable[[pd.DataFrame, Path], Path]]:
    """``(score_frame, write_frame)`` for module-scoped fixtures."""
    return score_frame, write_frame


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests listed in ``tests/_support/slow.py`` as ``slow``."""
    for item in items:
        if is_slow(item.nodeid):
            item.add_marker(pytest.mark.slow)

"""Tests of probes.experts.column: the precomputed-column expert."""

from __future__ import annotations

import numpy as np
import pytest

from probes.experts import (
    Expert,
    ExpertCost,
    ExpertError,
    PrecomputedColumnExpert,
)


def test_precomputed_keyed_and_positional():
    ex = PrecomputedColumnExpert("col", {"a": 0.2, "b": 0.9})
    assert ex.score(["b", "a", "b"]).tolist() == [0.9, 0.2, 0.9]
    with pytest.raises(ExpertError, match="no precomputed score"):
        ex.score(["c"])
    keyed = PrecomputedColumnExpert("col", np.array([0.1, np.nan]), keys=["x", "y"])
    assert keyed.score(["x"]).tolist() == [0.1]
    with pytest.raises(ExpertError, match="not run"):
        keyed.score(["y"])
    pos = PrecomputedColumnExpert("col", [0.3, 0.4], cost=ExpertCost(seconds_per_call=1.5, calls=2))
    assert pos.score(["t1", "t2"]).tolist() == [0.3, 0.4]
    with pytest.raises(ExpertError, match="positional column has 2 rows"):
        pos.score(["t1"])
    assert pos.cost.seconds_per_call == 1.5
    assert ex.cost.calls == 3
    assert isinstance(ex, Expert)


def test_precomputed_validation():
    with pytest.raises(ValueError, match="values"):
        PrecomputedColumnExpert("c", [0.1, 1.2])
    with pytest.raises(ValueError, match="keys"):
        PrecomputedColumnExpert("c", [0.1, 0.2], keys=["a"])
    with pytest.raises(ValueError, match="unique"):
        PrecomputedColumnExpert("c", [0.1, 0.2], keys=["a", "a"])
    with pytest.raises(ValueError, match="keys"):
        PrecomputedColumnExpert("c", {"a": 0.1}, keys=["a"])

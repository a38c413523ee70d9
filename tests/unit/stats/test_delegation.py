from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ctd_stats.errors import CTDInputError
from ctd_stats.stats.dv_targets import binary_dv, continuous_dv, dv_targets

probs = st.floats(0.0, 1.0, allow_nan=False)


def test_continuous_examples():
    v = continuous_dv([1, 0, 1, 0], [0.2, 0.2, 0.9, 0.9], [0.8, 0.1, 0.5, 0.3])
    np.testing.assert_allclose(v, [0.6, 0.1, -0.4, 0.6])


def test_binary_examples():
    v = binary_dv([1, 0, 1, 0], [0.2, 0.2, 0.9, 0.9], [0.8, 0.1, 0.5, 0.3])
    np.testing.assert_array_equal(v, [1.0, 0.0, 0.0, 1.0])


@given(st.lists(st.tuples(st.integers(0, 1), probs, probs), min_size=1, max_size=50))
def test_properties(rows):
    y, p, b = (np.array(c) for c in zip(*rows, strict=True))
    c = continuous_dv(y, p, b)
    bin_ = binary_dv(y, p, b)
    assert np.all(np.abs(c) <= 1.0)
    assert set(np.unique(bin_)) <= {0.0, 1.0}
    assert np.all(c[bin_ == 1] > 0)  # probe wrong and expert right => the expert is closer to y
    np.testing.assert_allclose(continuous_dv(y, p, p), 0.0)
    np.testing.assert_array_equal(dv_targets("continuous", y, p, b), c)


@pytest.mark.parametrize(
    "args",
    [
        ([1, 2], [0.1, 0.2], [0.1, 0.2]),
        ([1, 0], [0.1, 1.2], [0.1, 0.2]),
        ([1, 0], [0.1], [0.1, 0.2]),
        ([1, 0], [0.1, np.nan], [0.1, 0.2]),
    ],
)
def test_bad_input(args):
    with pytest.raises(CTDInputError):
        continuous_dv(*args)


def test_unknown_kind():
    with pytest.raises(CTDInputError, match="dv_target"):
        dv_targets("other", [1], [0.5], [0.5])  # type: ignore[arg-type]

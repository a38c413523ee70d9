"""The golden comparison tolerates last-bit float noise and nothing else."""

from __future__ import annotations

import pytest

from tests._support.golden import assert_matches_golden, golden_mismatches


def test_last_bit_float_noise_matches() -> None:
    # the value that broke CI on a fresh install: two neighbouring doubles
    assert golden_mismatches({"q": [0.16136248939995118]}, {"q": [0.1613624893999512]}) == []


@pytest.mark.parametrize(
    ("got", "expected"),
    [
        ({"q": 0.1613625}, {"q": 0.1613624893999512}),  # a real change of value
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}),  # key order is part of the output
        ({"n": 3.0}, {"n": 3}),  # int vs float
        ({"s": "0.16"}, {"s": "0.17"}),
        ([1, 2], [1, 2, 3]),
        ({"x": None}, {"x": 0.0}),
        ({"flag": 1}, {"flag": True}),
        ({"v": float("nan")}, {"v": 1.0}),
    ],
)
def test_real_differences_are_reported(got: object, expected: object) -> None:
    assert golden_mismatches(got, expected)
    with pytest.raises(AssertionError):
        assert_matches_golden(got, expected)

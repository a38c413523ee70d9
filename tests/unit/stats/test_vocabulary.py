"""One vocabulary: one prediction cutoff, one split enum, one infinity encoding, honest names."""

from __future__ import annotations

import json
import math
import typing
import warnings

import numpy as np
import pytest

from ctd_stats import CascadeData
from ctd_stats.io import json_float, json_safe
from ctd_stats.spec import calibration as spec_calibration
from ctd_stats.stats import planning, randomized
from ctd_stats.stats.dv_targets import UNSAFE_CUTOFF, binary_dv, predicts_unsafe
from ctd_stats.table.splits import CALIBRATION_SPLITS, SPLITS, CalibrationSplit, Split


def test_a_probability_of_exactly_the_cutoff_is_an_unsafe_prediction_everywhere():
    """The binary DV target and the cascade data of Pareto testing agree on who is right, including
    at p = 0.5 exactly (binary_dv used ``>`` before, the four other places ``>=``)."""
    y = np.array([1, 1, 0, 0, 1, 0])
    p = np.array([0.5, 0.2, 0.5, 0.7, 0.5, 0.1])
    b = np.array([0.9, 0.5, 0.1, 0.5, 0.5, 0.5])
    data = CascadeData.from_probabilities(np.zeros(6), y, p, b)
    np.testing.assert_array_equal(
        binary_dv(y, p, b), (data.expert_correct & ~data.probe_correct).astype(float)
    )
    assert predicts_unsafe(UNSAFE_CUTOFF) and not predicts_unsafe(np.nextafter(UNSAFE_CUTOFF, 0))


def test_one_split_vocabulary():
    assert SPLITS == ("train", "dev", "opt", "ht", "eval") == tuple(Split)
    assert CALIBRATION_SPLITS == ("opt_ht", "none") == tuple(CalibrationSplit)
    # the spec's pydantic field accepts exactly the enum's values
    assert set(typing.get_args(spec_calibration.CalibrationSplit)) == set(CALIBRATION_SPLITS)
    assert Split.HT == "ht" and f"{Split.HT}" == "ht"


def test_one_infinity_encoding_round_trips_through_strict_json():
    obj = {"tau": math.inf, "low": -math.inf, "x": [1.5, math.nan], "n": 3}
    text = json.dumps(json_safe(obj), allow_nan=False)
    assert json.loads(text) == {"tau": "inf", "low": "-inf", "x": [1.5, "nan"], "n": 3}
    assert json_float(0.25) == 0.25 and json_float(math.inf) == "inf"


def test_planning_and_randomized_rates_have_distinct_names():
    """The deterministic step (planning) and the randomised step compute different quantities."""
    assert planning.expected_rate(20, 0.3, 0.1) == pytest.approx(3 / 21)
    assert randomized.randomized_expected_rate(20, 0.3, 0.1) == pytest.approx(0.186, abs=5e-4)
    assert planning.violation_probability(20, 0.3, 0.1) == pytest.approx(0.0355, abs=5e-4)
    assert randomized.randomized_violation_probability(20, 0.3, 0.1) == pytest.approx(
        0.1, abs=1e-12
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert (
            randomized.expected_rate is randomized.randomized_expected_rate
        )  # 0.1 name, deprecated
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)


def test_pvalues_take_a_level_and_still_accept_the_old_alpha_keyword():
    from ctd_stats.stats.pvalues import binomial_pvalue

    new = binomial_pvalue(np.array([3]), 20, level=0.3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = binomial_pvalue(np.array([3]), 20, alpha=0.3)
    np.testing.assert_array_equal(new, old)
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)

import math

import numpy as np
import pytest

from ctd_stats import calibrate_budget, certifiable_budget, min_calibration_size
from ctd_stats.errors import CTDInputError


def test_certifiable_budget_is_the_exact_boundary():
    for n in (10, 100, 1000):
        for delta in (0.05, 0.1):
            b = certifiable_budget(n, delta)
            assert b == pytest.approx(1 - delta ** (1 / n))
            x = np.arange(n, dtype=float)
            assert calibrate_budget(x, b * 1.0001, delta).is_certified
            assert not calibrate_budget(x, b * 0.9999, delta).is_certified


def test_min_calibration_size():
    n = min_calibration_size(0.3, 0.1)
    assert n == math.ceil(math.log(0.1) / math.log(0.7))
    assert calibrate_budget(np.arange(n, dtype=float), 0.3, 0.1).is_certified
    assert not calibrate_budget(np.arange(n - 1, dtype=float), 0.3, 0.1).is_certified
    n2 = min_calibration_size(0.3, 0.1, rate=0.28)
    for m in (n2, n2 + 17, 2 * n2):
        assert certifiable_budget(m, 0.1, 0.28) <= 0.3 + 1e-12
    assert certifiable_budget(n2 - 1, 0.1, 0.28) > 0.3


def test_bad_inputs():
    with pytest.raises(CTDInputError):
        min_calibration_size(0.3, 0.1, rate=0.3)
    with pytest.raises(CTDInputError):
        certifiable_budget(0, 0.1)
    with pytest.raises(CTDInputError):
        certifiable_budget(10, 1.2)


def test_rate_times_n_is_not_floored_below_the_intended_count():
    # 0.29 * 100 == 28.999999999999996 in floating point; the intended count is 29
    from scipy import stats

    assert certifiable_budget(100, 0.1, 0.29) == pytest.approx(stats.beta.ppf(0.9, 30, 71))

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.multitest import multipletests

from ctd_stats.errors import CTDInputError
from ctd_stats.stats.fwer import (
    Bonferroni,
    BonferroniSplitChains,
    FixedSequence,
    Holm,
    get_procedure,
)

pv = st.lists(st.floats(0, 1), min_size=1, max_size=60).map(np.array)


@given(p=pv, delta=st.floats(0.001, 0.5))
def test_fixed_sequence_never_rejects_past_first_failure(p, delta):
    rej = FixedSequence().reject(p, delta)
    fails = np.flatnonzero(~rej)
    if fails.size:
        assert not rej[fails[0] :].any()
    assert np.all(p[rej] <= delta)


@settings(max_examples=60, deadline=None)
@given(p=pv, delta=st.floats(0.001, 0.5))
def test_holm_and_bonferroni_match_statsmodels(p, delta):
    np.testing.assert_array_equal(
        Holm().reject(p, delta), multipletests(p, delta, method="holm")[0]
    )
    np.testing.assert_array_equal(Bonferroni().reject(p, delta), p <= delta / p.size)


@given(p=pv, d1=st.floats(0.001, 0.5), d2=st.floats(0.001, 0.5))
def test_rejections_shrink_with_delta(p, d1, d2):
    lo, hi = sorted((d1, d2))
    for name in ("fixed_sequence", "bonferroni", "holm"):
        proc = get_procedure(name)
        assert np.all(proc.reject(p, lo) <= proc.reject(p, hi))


def test_split_chains_require_both():
    p_b = np.array([0.01, 0.02, 0.2])
    p_e = np.array([0.5, 0.01, 0.01])
    rej = BonferroniSplitChains().reject([p_b, p_e], [np.arange(3), np.array([2, 1, 0])], 0.1)
    # budget chain at 0.05: rejects 0, 1; error chain (order 2,1,0) at 0.05: rejects 2, 1
    np.testing.assert_array_equal(rej, [False, True, False])


def test_fwer_of_fixed_sequence_in_simulation():
    """Nulls first in the order, uniform p-values: FWER = P(p_1 ≤ δ) ≈ δ, never more."""
    rng = np.random.default_rng(3)
    p = rng.random((20000, 5))
    fs = FixedSequence()
    errs = sum(fs.reject(row, 0.1)[0] for row in p[:4000])
    assert errs / 4000 <= 0.1 + 3.1 * np.sqrt(0.09 / 4000)


def test_bad_inputs():
    with pytest.raises(CTDInputError, match="procedure"):
        get_procedure("sidak")
    with pytest.raises(CTDInputError, match="delta"):
        FixedSequence().reject([0.1], 1.0)
    with pytest.raises(CTDInputError, match="NaN"):
        Holm().reject([np.nan], 0.1)


def test_power_warning_on_full_grid_bonferroni_and_holm():
    import warnings

    from ctd_stats import PowerWarning, calibrate_budget, calibrate_cascade
    from ctd_stats.stats.pareto import CascadeData

    assert issubclass(PowerWarning, UserWarning)
    x = np.random.default_rng(0).random(200)
    for proc in ("bonferroni", "holm"):
        with pytest.warns(PowerWarning, match="fixed_sequence"):
            calibrate_budget(x, 0.1, 0.1, procedure=proc)
        data = CascadeData(x, x > 0.5, x > 0.2)
        with pytest.warns(PowerWarning):
            calibrate_cascade(data, budget=0.3, delta=0.1, procedure=proc)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        calibrate_budget(x, 0.1, 0.1)  # fixed-sequence: silent
        calibrate_budget(
            x, 0.1, 0.1, procedure="holm", thresholds=[0.9, 0.95]
        )  # explicit grid: silent


def test_fixed_sequence_beats_bonferroni_on_the_full_grid():
    """Nested family: fixed-sequence certifies at least as much delegation, and strictly more here."""
    import warnings

    from ctd_stats import calibrate_budget

    rng = np.random.default_rng(1)
    gains = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(50):
            x = rng.random(200)
            fs = calibrate_budget(x, 0.1, 0.1).threshold
            for proc in ("bonferroni", "holm"):
                other = calibrate_budget(x, 0.1, 0.1, procedure=proc).threshold
                assert fs <= other
                gains.append(other - fs)
    assert np.mean(gains) > 0

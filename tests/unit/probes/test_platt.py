"""Newton logistic regression (probes/platt.py): recovers known coefficients; out of fold is honest."""

from __future__ import annotations

import numpy as np

from probes.platt import fit_logistic, oof_logistic, predict_logistic


def test_recovers_the_coefficients_of_a_logistic_model():
    rng = np.random.default_rng(0)
    n = 200_000
    s = rng.normal(size=n)
    y = rng.random(n) < 1 / (1 + np.exp(-(-0.7 + 2.0 * s)))
    w = fit_logistic(s, y, l2=0.0)
    # standard errors at this n are about 0.007 (slope) and 0.006 (intercept): 5 sigma
    assert abs(w[0] + 0.7) < 0.035 and abs(w[1] - 2.0) < 0.04
    p = predict_logistic(w, np.array([0.0]))
    assert abs(p[0] - 1 / (1 + np.exp(0.7))) < 0.01


def test_out_of_fold_differs_from_in_sample_and_is_seeded():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 2))
    y = (x[:, 0] + rng.normal(size=300) > 0).astype(int)
    strata = y.astype(str)
    a = oof_logistic(x, y, strata, seed=2)
    assert np.array_equal(a, oof_logistic(x, y, strata, seed=2))
    full = predict_logistic(fit_logistic(x, y), x)
    assert np.isfinite(a).all() and np.max(np.abs(a - full)) > 1e-3

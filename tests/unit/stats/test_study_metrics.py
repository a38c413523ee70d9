"""The cascade AUROC shortcut equals the per-row rank computation, ties included."""

from __future__ import annotations

import numpy as np
import pytest

from ctd_stats.stats.metrics import auroc_rows, cascade_auroc_rows
from ctd_stats.study.diagnostics import cascade_metrics


@pytest.mark.parametrize("n,levels", [(2, None), (50, None), (400, None), (300, 6), (97, 2)])
def test_cascade_auroc_rows_equals_auroc_rows(n, levels):
    rng = np.random.default_rng(n)
    y = rng.random(n) < 0.4
    y[:2] = [True, False]
    if levels is None:
        p, b = rng.random(n), rng.random(n)
    else:  # heavy ties, also between p and b values
        p, b = rng.integers(0, levels, n) / levels, rng.integers(0, levels, n) / levels
    masks = rng.random((40, n)) < rng.random((40, 1))
    masks[0], masks[1] = False, True
    want = auroc_rows(np.where(masks, b, p), y)
    np.testing.assert_allclose(cascade_auroc_rows(masks, p, b, y), want, rtol=0, atol=1e-12)
    auc, acc = cascade_metrics(masks.reshape(4, 10, n), p, b, y)
    np.testing.assert_allclose(auc.ravel(), want, rtol=0, atol=1e-12)
    final = np.where(masks, b, p)
    np.testing.assert_allclose(acc.ravel(), ((final >= 0.5) == y).mean(axis=1), rtol=0, atol=1e-12)


def test_cascade_auroc_rows_one_class_is_nan():
    p = np.array([0.1, 0.9, 0.5])
    assert np.isnan(cascade_auroc_rows(np.ones((2, 3), bool), p, p, np.zeros(3, bool))).all()

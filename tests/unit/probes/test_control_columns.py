"""The control columns' builder (probes/controls.py) on small synthetic activations."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from probes.controls import boot_column, control_columns, crossfit_probe  # noqa: E402
from probes.linear import SafetyProbe  # noqa: E402


def _data(n: int = 240, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.5).astype(int)
    x = rng.normal(size=(n, 2, 12)).astype(np.float32)
    x[:, 1, 0] += 1.5 * (2 * y - 1)  # layer 1 carries the label
    g = rng.choice(["a", "b"], n)
    role = rng.choice(["probe_train", "expert_train", "dev", "pool"], n)
    return torch.from_numpy(x), y, g, role


def test_refit_is_cross_fitted_on_dev_and_a_full_fit_elsewhere():
    x, y, g, role = _data()
    dev = role == "dev"
    strata = np.char.add(g.astype(str), y.astype(str))
    p = crossfit_probe(x, y, dev, strata, [10, 11], folds=5, seed=0)
    full = (
        SafetyProbe(c=0.05, seed=0).fit(x[torch.as_tensor(dev)], y[dev], [10, 11]).predict_proba(x)
    )
    np.testing.assert_allclose(p[~dev], full[~dev], rtol=0, atol=1e-12)
    assert np.max(np.abs(p[dev] - full[dev])) > 1e-4  # out of fold, not in sample


def test_every_column_is_there_and_finite_and_seeded():
    x, y, g, role = _data()
    rng = np.random.default_rng(1)
    p, b = rng.random(y.size), rng.random(y.size)
    kw = dict(
        dev=role == "dev",
        noshift_train=np.isin(role, ["probe_train", "expert_train"]),
        layers=[10, 11],
        n_boot=2,
    )
    cols = control_columns(x, y, g, p, {"e": b}, **kw)
    want = {
        "probe_prob_refit",
        "dv_score_refit__e",
        "probe_prob_noshift",
        "dv_score_noshift__e",
        boot_column(0, "e"),
        boot_column(1, "e"),
    }
    assert set(cols) == want and all(np.isfinite(v).all() for v in cols.values())
    assert not np.array_equal(cols[boot_column(0, "e")], cols[boot_column(1, "e")])
    again = control_columns(x, y, g, p, {"e": b}, **kw)
    for k in want:  # seeded: the same up to the last bits of threaded BLAS sums
        np.testing.assert_allclose(cols[k], again[k], rtol=0, atol=1e-9)


def test_noshift_rows_must_be_disjoint_from_dev():
    x, y, g, role = _data()
    with pytest.raises(ValueError, match="disjoint"):
        control_columns(
            x,
            y,
            g,
            np.full(y.size, 0.5),
            {},
            dev=role == "dev",
            noshift_train=role != "pool",
            layers=[10, 11],
            n_boot=0,
        )

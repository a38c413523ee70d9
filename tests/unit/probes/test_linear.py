from __future__ import annotations

import numpy as np
import pytest

from ctd_stats.errors import CTDInputError
from probes.linear import DVProbe, SafetyProbe, auroc, stratified_folds

torch = pytest.importorskip("torch")


def layered_data(n: int = 300, d: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three layers; only layer position 1 carries the label (with a scale that needs standardising)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 3, d)) * np.array([1.0, 50.0, 1.0])[None, :, None]
    x[:, 1, 0] += 120.0 * (2 * y - 1)
    return x.astype(np.float32), y


def test_auroc_matches_pairs():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 60)
    s = rng.integers(0, 5, 60).astype(float)  # ties
    pos, neg = s[y == 1], s[y == 0]
    pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert auroc(y, s) == pytest.approx(pairs)
    assert np.isnan(auroc(np.ones(3), np.arange(3.0)))


def test_stratified_folds_balanced():
    y = np.array([0] * 30 + [1] * 12)
    f = stratified_folds(y, 3, 0)
    for k in range(3):
        assert (y[f == k] == 1).sum() == 4 and (y[f == k] == 0).sum() == 10


def test_safety_probe_picks_informative_layer_and_generalises():
    x, y = layered_data()
    probe = SafetyProbe(c=0.05).fit(x[:200], y[:200], layers=[4, 8, 12])
    assert probe.layer_position == 1 and probe.layer == 8
    assert probe.cv_auroc[1] > max(probe.cv_auroc[0], probe.cv_auroc[2])
    assert auroc(y[200:], probe.predict_proba(x[200:])) > 0.95
    p = probe.predict_proba(x[200:])
    assert p.shape == (100,) and np.all((p >= 0) & (p <= 1))


def test_safety_probe_is_the_penalised_optimum():
    """Gradient of sum log-loss + ||w||^2/(2C) (standardised features) vanishes at the solution."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(150, 6))
    y = (x[:, 0] + rng.normal(size=150) > 0).astype(int)
    probe = SafetyProbe(c=0.3).fit(x, y)
    z = (x - probe.mean) / probe.scale
    p = 1 / (1 + np.exp(-(z @ probe.coef + probe.bias)))
    grad_w = z.T @ (p - y) + probe.coef / 0.3
    grad_b = (p - y).sum()
    assert np.abs(grad_w).max() < 1e-3 and abs(grad_b) < 1e-3


def test_safety_probe_roundtrip(tmp_path):
    x, y = layered_data(120)
    probe = SafetyProbe().fit(x, y, layers=[1, 2, 3])
    path = probe.save(tmp_path / "p.safetensors")
    again = SafetyProbe.load(path)
    np.testing.assert_allclose(again.predict_proba(x), probe.predict_proba(x))
    assert again.layer == probe.layer and again.cv_auroc == probe.cv_auroc
    with pytest.raises(CTDInputError, match="dv_probe"):
        DVProbe.load(path)


def test_safety_probe_bad_input():
    x, y = layered_data(40)
    with pytest.raises(CTDInputError, match="both classes"):
        SafetyProbe().fit(x, np.zeros(40))
    with pytest.raises(CTDInputError, match="one entry per row"):
        SafetyProbe().fit(x, y[:10])
    bad = x.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(CTDInputError, match="NaN"):
        SafetyProbe().fit(bad, y)
    with pytest.raises(CTDInputError, match="layer ids"):
        SafetyProbe().fit(x, y, layers=[1])
    with pytest.raises(RuntimeError, match="not fitted"):
        SafetyProbe().predict_proba(x)
    with pytest.raises(CTDInputError):
        SafetyProbe(c=0)


def test_dv_probe_matches_numpy_ridge():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 5)) * 3 + 1
    v = x @ rng.normal(size=5) * 0.1 + rng.normal(size=80) * 0.05
    dv = DVProbe(alphas=[2.0]).fit(x, v)
    z = (x - x.mean(0)) / x.std(0)
    w = np.linalg.solve(z.T @ z + 2.0 * np.eye(5), z.T @ (v - v.mean()))
    np.testing.assert_allclose(dv.predict(x), z @ w + v.mean(), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize(("n", "d"), [(25, 4), (9, 15)])  # primal and dual (n < d) forms
def test_dv_probe_loo_is_exact(n, d):
    """The closed-form leave-one-out error equals refitting without each row (fixed scaling)."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, d))
    v = rng.normal(size=n)
    dv = DVProbe(alphas=[3.0]).fit(x, v)
    z = (x - x.mean(0)) / x.std(0)
    errs = []
    for i in range(n):
        m = np.arange(n) != i
        zi = np.c_[np.ones(n - 1), z[m]]
        pen = 3.0 * np.eye(d + 1)
        pen[0, 0] = 0.0
        w = np.linalg.solve(zi.T @ zi + pen, zi.T @ v[m])
        errs.append((v[i] - np.r_[1.0, z[i]] @ w) ** 2)
    assert dv.loo_mse[0][0] == pytest.approx(np.mean(errs), rel=1e-6)


def test_dv_probe_selects_layer_and_roundtrips(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 3, 8))
    v = np.tanh(x[:, 2, 0]) + 0.1 * rng.normal(size=200)
    dv = DVProbe().fit(x, v, layers=[5, 6, 7])
    assert dv.layer_position == 2 and dv.layer == 7
    path = dv.save(tmp_path / "dv.safetensors")
    np.testing.assert_allclose(DVProbe.load(path).predict(x), dv.predict(x))
    with pytest.raises(CTDInputError, match="no such probe"):
        DVProbe.load(tmp_path / "missing.safetensors")
    with pytest.raises(CTDInputError, match="out of range"):
        DVProbe(layer_position=5).fit(x, v)


def test_dv_probe_with_unpenalised_extras_loo_exact_and_roundtrip(tmp_path):
    rng = np.random.default_rng(4)
    n, d = 30, 6
    x = rng.normal(size=(n, d))
    e = rng.normal(size=(n, 2))
    v = e @ [0.5, -0.3] + 0.1 * x[:, 0] + 0.05 * rng.normal(size=n)
    dv = DVProbe(alphas=[2.0]).fit(x, v, extra=e)
    z = (x - x.mean(0)) / x.std(0)
    es = (e - e.mean(0)) / e.std(0)
    errs = []
    for i in range(n):  # brute force: refit without row i, penalty on the activation block only
        m = np.arange(n) != i
        a = np.c_[np.ones(n - 1), es[m], z[m]]
        pen = np.diag([0.0, 0.0, 0.0] + [2.0] * d)
        w = np.linalg.solve(a.T @ a + pen, a.T @ v[m])
        errs.append((v[i] - np.r_[1.0, es[i], z[i]] @ w) ** 2)
    assert dv.loo_mse[0][0] == pytest.approx(np.mean(errs), rel=1e-6)
    full = np.c_[np.ones(n), es, z]
    w = np.linalg.solve(full.T @ full + np.diag([0.0, 0.0, 0.0] + [2.0] * d), full.T @ v)
    np.testing.assert_allclose(dv.predict(x, extra=e), full @ w, atol=1e-9)
    again = DVProbe.load(dv.save(tmp_path / "dv.safetensors"))
    np.testing.assert_allclose(again.predict(x, extra=e), dv.predict(x, extra=e))
    with pytest.raises(CTDInputError, match="extra"):
        dv.predict(x)


def test_dv_probe_drops_useless_activations():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(120, 2, 40))  # pure noise
    e = rng.normal(size=(120, 1))
    v = 0.8 * e[:, 0] + 0.1 * rng.normal(size=120)
    dv = DVProbe().fit(x, v, extra=e)
    layer = x[:, dv.layer_position]
    act_part = ((layer - dv.mean) / dv.scale) @ dv.coef
    assert dv.alpha == float("inf") or act_part.std() < 0.1 * v.std()  # noise barely used
    assert np.corrcoef(dv.predict(x, extra=e), v)[0, 1] > 0.95

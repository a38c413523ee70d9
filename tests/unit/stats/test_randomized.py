"""The randomised boundary step: level exactly δ (exact and simulated), reproducible, certified."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import binom, binomtest

from ctd_stats.certificate.checks import load_certificate
from ctd_stats.cli.entry import main
from ctd_stats.errors import EXIT_BAD_INPUT, EXIT_OK, CTDInputError
from ctd_stats.stats import planning
from ctd_stats.stats.randomized import boundary_gamma, draw_u, randomized_budget_threshold
from ctd_stats.stats.randomized import randomized_expected_rate as expected_rate
from ctd_stats.stats.randomized import randomized_violation_probability as violation_probability
from tests._support.tolerance import binomial_tolerance


def test_exact_level_is_delta_and_more_of_the_budget_is_spent():
    # the numbers: deterministic 0.0355 and 0.143; randomised exactly 0.1 and 0.186
    assert planning.violation_probability(20, 0.3, 0.1) == pytest.approx(0.0355, abs=5e-4)
    assert violation_probability(20, 0.3, 0.1) == pytest.approx(0.1, abs=1e-12)
    assert planning.expected_rate(20, 0.3, 0.1) == pytest.approx(3 / 21)
    assert expected_rate(20, 0.3, 0.1) == pytest.approx(0.186, abs=5e-4)
    for n in (5, 20, 57, 200, 1000):
        for b, d in ((0.1, 0.05), (0.3, 0.1), (0.05, 0.2)):
            assert violation_probability(n, b, d) <= d + 1e-12
            assert expected_rate(n, b, d) >= planning.expected_rate(n, b, d)


@pytest.mark.parametrize("ties", [False, True])
def test_simulated_violation_frequency(ties):
    """20,000 calibrations of n = 20 uniform (or tied) scores, one seed each: violations ~ Bin(T, ≤ δ)."""
    rng = np.random.default_rng(3)
    trials, n, b, d = 20_000, 20, 0.3, 0.1
    scores = rng.random((trials, n))
    if ties:
        scores = np.floor(scores * 8) / 8  # 8 atoms: true rate of τ is 1 − (τ·8 + 1)/8
    taus = np.array(
        [
            randomized_budget_threshold(scores[i], b, d, seed=i, reproducible=True).threshold
            for i in range(trials)
        ]
    )
    true = 1 - np.clip(np.floor(taus * 8) + 1, 0, 8) / 8 if ties else 1 - np.minimum(taus, 1.0)
    true = np.where(np.isinf(taus), 0.0, true)
    v = int(np.count_nonzero(true > b + 1e-12))
    assert v <= binomial_tolerance(trials, d)  # never above δ beyond sampling error
    if not ties:  # continuous scores: exactly δ (the deterministic step gives 0.0355)
        assert binomtest(v, trials, d).pvalue > 1e-3
        assert abs(true.mean() - expected_rate(n, b, d)) < 0.003


def test_same_seed_same_threshold():
    x = np.random.default_rng(0).random(50)
    a, b = (randomized_budget_threshold(x, 0.3, 0.1, seed=5, reproducible=True) for _ in range(2))
    assert a.threshold == b.threshold and a.extras["u"] == b.extras["u"]
    assert a.extras["provenance"] == "fixed_seed"


def test_default_u_is_fresh_os_entropy_and_replayable():
    x = np.random.default_rng(0).random(50)
    a, b = (randomized_budget_threshold(x, 0.3, 0.1) for _ in range(2))
    assert a.extras["provenance"] == b.extras["provenance"] == "os_entropy"
    assert (
        a.extras["seed"] != b.extras["seed"] and a.extras["u"] != b.extras["u"]
    )  # 128-bit entropy
    assert a.extras["seed"] >= 2**64  # SeedSequence entropy, not a small user seed
    assert draw_u(a.extras["seed"]) == a.extras["u"]  # recorded so that a verifier can replay U


def test_fixed_seed_needs_the_reproducibility_flag():
    x = np.random.default_rng(0).random(50)
    with pytest.raises(CTDInputError, match="conditional on the seed"):
        randomized_budget_threshold(x, 0.3, 0.1, 7)
    with pytest.raises(CTDInputError, match="needs a fixed seed"):
        randomized_budget_threshold(x, 0.3, 0.1, reproducible=True)


def _boundary_violations(n: int, b: float, d: float, trials: int, seed_of) -> int:
    """Calibrations on n uniform scores (true rate of τ is 1 − τ) that delegate more than b.

    Vectorised: τ̂ is the (k_U + 1)-th largest score, k_U = k* + 1 when U ≤ γ (U from the row's
    seed); the first 2,000 rows are checked against :func:`randomized_budget_threshold` itself.
    """
    scores = np.random.default_rng(11).random((trials, n))
    seeds = [seed_of(i) for i in range(trials)]
    kstar, gamma = boundary_gamma(n, b, d)
    u = {s: draw_u(s) for s in set(seeds)}
    k_u = np.array([kstar + 1 if gamma > 0 and u[s] <= gamma else kstar for s in seeds])
    desc = -np.sort(-scores, axis=1)
    taus = np.where(k_u >= 0, desc[np.arange(trials), np.clip(k_u, 0, n - 1)], np.inf)
    for i in range(2_000):
        cal = randomized_budget_threshold(scores[i], b, d, seed=seeds[i], reproducible=True)
        assert cal.threshold == taus[i]
    return int(np.count_nonzero(np.where(np.isinf(taus), 0.0, 1.0 - taus) > b))


def test_a_fixed_seed_replayed_at_every_calibration_violates_the_level():
    """The issue's failure mode: n = 20, B = 0.3, δ = 0.1, seed 7 held fixed (U = 0.625 ≤ γ = 0.901).

    The violation probability is then F(3) = 0.1071 > δ (the issue measured 0.1064 in 40,000
    calibrations; here 100,000); fresh seeds on the same scores give δ.
    """
    trials, n, b, d = 100_000, 20, 0.3, 0.1
    fixed = _boundary_violations(n, b, d, trials, lambda i: 7)
    level = binom.cdf(3, n, b)
    assert level == pytest.approx(0.10709, abs=1e-5)
    assert fixed > binomial_tolerance(trials, d)  # the excess over δ is visible
    assert binomtest(fixed, trials, level).pvalue > 1e-3  # and it is the conditional level F(3)
    fresh = _boundary_violations(n, b, d, trials, lambda i: 1_000 + i)
    assert fresh <= binomial_tolerance(trials, d)
    assert binomtest(fresh, trials, d).pvalue > 1e-3  # exactly δ with a fresh U per calibration


def test_boundary_at_n_minus_one_closed_forms_are_exact():
    """k* = n − 1 (n = 5, B = 0.97, δ = 0.2): the extra step would delegate everything, so γ = 0.

    The old closed forms claimed level 0.2 and rate 0.845; the truth is 1 − 0.97⁵ = 0.141 and 5/6.
    """
    n, b, d = 5, 0.97, 0.2
    assert violation_probability(n, b, d) == pytest.approx(1 - b**n, abs=1e-12)
    assert expected_rate(n, b, d) == pytest.approx(n / (n + 1), abs=1e-12)
    trials = 40_000
    v = _boundary_violations(n, b, d, trials, lambda i: 5_000 + i)
    assert binomtest(v, trials, 1 - b**n).pvalue > 1e-3


def test_randomised_certificate_round_trip_and_tampering(tmp_path, table_tools):
    score_frame, write_frame = table_tools
    write_frame(score_frame(600), tmp_path / "scores.parquet")
    spec = tmp_path / "spec.yaml"
    head = "data: {table: scores.parquet}\noutputs: {directory: out, formats: [json, md]}\n"
    spec.write_text(head + "calibration: {budget: 0.3, pareto: false, randomize: 7}\n")
    assert main(["calibrate", str(spec)]) == EXIT_BAD_INPUT  # a fixed seed needs the flag
    spec.write_text(
        head + "calibration: {budget: 0.3, pareto: false, randomize: 7, reproducible: true}\n"
    )
    assert main(["calibrate", str(spec), "--force"]) == EXIT_OK
    path = tmp_path / "out" / "certificate.json"
    (r,) = load_certificate(path).results
    assert r.randomization is not None and r.randomization.seed == 7 and "randomised" in r.guarantee
    assert r.randomization.provenance == "fixed_seed" and "conditional on this seed" in r.guarantee
    assert "conditional on this seed" in (tmp_path / "out" / "report.md").read_text()
    assert r.pvalue_kind == "binomial_randomized"
    raw = json.loads(path.read_text())
    raw["results"][0]["randomization"]["u"] = 0.0  # claim a luckier U
    from tests.unit.certificate.test_certificate_integrity import _reseal_plain, _write

    with pytest.raises(CTDInputError, match="inconsistent certificate"):
        load_certificate(_write(tmp_path, _reseal_plain(raw)))
    spec.write_text(head + "calibration: {budget: 0.3, pareto: false, randomize: true}\n")
    assert main(["calibrate", str(spec), "--force"]) == EXIT_OK
    (r,) = load_certificate(path).results
    assert r.randomization is not None and r.randomization.provenance == "os_entropy"
    assert (
        draw_u(r.randomization.seed) == r.randomization.u
        and "operating-system entropy" in r.guarantee
    )
    spec.write_text("data: {table: scores.parquet}\ncalibration: {budget: 0.3, randomize: true}\n")
    assert main(["calibrate", str(spec)]) == EXIT_BAD_INPUT  # Pareto: no randomised step

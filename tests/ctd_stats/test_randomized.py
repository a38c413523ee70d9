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
from ctd_stats.stats.randomized import (
    expected_rate,
    randomized_budget_threshold,
    violation_probability,
)


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
    taus = np.array([randomized_budget_threshold(scores[i], b, d, seed=i).threshold for i in range(trials)])
    true = 1 - np.clip(np.floor(taus * 8) + 1, 0, 8) / 8 if ties else 1 - np.minimum(taus, 1.0)
    true = np.where(np.isinf(taus), 0.0, true)
    v = int(np.count_nonzero(true > b + 1e-12))
    assert v <= binom.ppf(0.999, trials, d)  # never above δ beyond sampling error
    if not ties:  # continuous scores: exactly δ (the deterministic step gives 0.0355)
        assert binomtest(v, trials, d).pvalue > 1e-3
        assert abs(true.mean() - expected_rate(n, b, d)) < 0.003


def test_same_seed_same_threshold():
    x = np.random.default_rng(0).random(50)
    a, b = (randomized_budget_threshold(x, 0.3, 0.1, seed=5) for _ in range(2))
    assert a.threshold == b.threshold and a.extras["u"] == b.extras["u"]


def test_randomised_certificate_round_trip_and_tampering(tmp_path, table_tools):
    score_frame, write_frame = table_tools
    write_frame(score_frame(600), tmp_path / "scores.parquet")
    spec = tmp_path / "spec.yaml"
    spec.write_text("data: {table: scores.parquet}\ncalibration: {budget: 0.3, pareto: false, randomize: 7}\n"
                    "outputs: {directory: out, formats: [json]}\n")
    assert main(["calibrate", str(spec)]) == EXIT_OK
    path = tmp_path / "out" / "certificate.json"
    (r,) = load_certificate(path).results
    assert r.randomization is not None and r.randomization.seed == 7 and "randomised" in r.guarantee
    assert r.pvalue_kind == "binomial_randomized"
    raw = json.loads(path.read_text())
    raw["results"][0]["randomization"]["u"] = 0.0  # claim a luckier U
    from tests.ctd_stats.test_certificate_integrity import _reseal_plain, _write

    with pytest.raises(CTDInputError, match="inconsistent certificate"):
        load_certificate(_write(tmp_path, _reseal_plain(raw)))
    spec.write_text("data: {table: scores.parquet}\ncalibration: {budget: 0.3, randomize: 7}\n")
    assert main(["calibrate", str(spec)]) == EXIT_BAD_INPUT  # Pareto: no randomised step

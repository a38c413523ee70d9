"""The randomised boundary step: budget-only calibration whose level is exactly δ (optional, off by default).

Deterministic fixed-sequence testing with the exact binomial p-value certifies every τ with
K(τ) = #{d_i > τ} ≤ k*, k* the largest k with F(k) = P(Bin(n, B) ≤ k) ≤ δ. Because counts are
integers, its level F(k*) is usually well below δ at small n (n = 20, B = 0.3, δ = 0.1: 0.0355).

The randomised test uses the randomised binomial p-value with one uniform U (drawn from a recorded
seed, independent of the data):

    p_U(k) = F(k − 1) + U · (F(k) − F(k − 1)),

which is exactly Uniform(0, 1) when K ~ Bin(n, B) and stochastically larger when K ~ Bin(n, r) with
r > B. For fixed U it is increasing in k, so the fixed-sequence walk certifies {τ : K(τ) ≤ k_U} with
k_U = k* + 1 if U ≤ γ = (δ − F(k*)) / (F(k* + 1) − F(k*)), else k*.

Guarantee (same as :func:`ctd_stats.stats.ltt.calibrate_budget`, now with level exactly δ at the boundary):
if the calibration scores are i.i.d. and U is independent of them, P(P(d(X) > τ̂) > B) ≤ δ, the
probability taken over the scores *and* U. Proof: let τ° be the largest threshold with true rate
R(τ°) > B (if none, no violation is possible). A violation requires certifying some τ ≤ τ°, and
fixed-sequence testing walks from the largest τ down, so it requires rejecting H_τ°; K(τ°) is
stochastically ≥ Bin(n, B) and p_U is super-uniform for it, so P(reject H_τ°) ≤ δ. For continuous
scores the violation probability at a boundary rate equals (1 − γ) F(k*) + γ F(k* + 1) = δ exactly
(:func:`randomized_violation_probability`; the deterministic step's counterparts are
:func:`ctd_stats.stats.planning.violation_probability` and ``expected_rate``).

Where U comes from matters. The guarantee averages over U, so U must be drawn afresh for every
calibration. With a *fixed* U (a seed written in a spec and reused at every recalibration) the
violation probability is the conditional level F(k_U), which is F(k* + 1) > δ whenever U ≤ γ: for
n = 20, B = 0.3, δ = 0.1 and seed 7 (U = 0.625 ≤ γ = 0.901) it is F(3) = 0.1071, and a simulation of
40,000 calibrations with that seed shows it (``tests/unit/stats/test_randomized.py``). Hence:

* by default (``seed=None``) U comes from operating-system entropy at each calibration
  (``numpy.random.SeedSequence()``); the certificate records that entropy, U and the provenance
  ``"os_entropy"``. The entropy replays U for a verifier; it is not a seed to reuse;
* a fixed seed is accepted only with ``reproducible=True`` (spec: ``calibration.reproducible: true``);
  the certificate then records the provenance ``"fixed_seed"`` and the guarantee text says that it is
  conditional on the seed, with its conditional level F(k_U).

Drawing U again until a preferred τ̂ comes out (seed shopping) voids the guarantee either way: the
first draw is the one to deploy.

Boundary case k* = n − 1: the extra step would certify a count of n, i.e. delegating every input,
which no finite threshold of the grid does (the smallest, the minimum score, delegates n − 1 of n).
There γ = 0: the level is F(n − 1) = 1 − B^n < δ and the expected rate n / (n + 1).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from scipy import special

from ctd_stats.errors import CTDInputError
from ctd_stats.stats.inputs import as_finite_1d, check_open_unit
from ctd_stats.stats.ltt import Calibration, certified_count

RANDOMIZED_PVALUE = "binomial_randomized"


Provenance = Literal["os_entropy", "fixed_seed"]


def draw_u(seed: int) -> float:
    """The uniform U of a randomised calibration, from its recorded seed or entropy (replayable)."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise CTDInputError(f"randomize seed must be a non-negative integer, got {seed!r}")
    return float(np.random.default_rng(int(seed)).random())


def draw_randomization(
    seed: int | None = None, *, reproducible: bool = False
) -> tuple[float, int, Provenance]:
    """``(U, seed, provenance)`` of one randomised calibration.

    ``seed=None`` (default): fresh operating-system entropy (``SeedSequence().entropy``, 128 bits),
    provenance ``"os_entropy"``; the guarantee holds over the calibration draw and U together. A
    fixed ``seed`` needs ``reproducible=True`` (provenance ``"fixed_seed"``): the guarantee is then
    conditional on that seed (see the module docstring), which is why it is refused by default.

    Raises
    ------
    CTDInputError
        A seed without ``reproducible=True``, ``reproducible=True`` without a seed, or a bad seed.
    """
    if seed is None:
        if reproducible:
            raise CTDInputError(
                "randomize: reproducible=True needs a fixed seed (give `seed`), or drop it to draw U "
                "from operating-system entropy"
            )
        entropy = np.random.SeedSequence().entropy
        assert isinstance(entropy, int)
        return draw_u(entropy), entropy, "os_entropy"
    if not reproducible:
        raise CTDInputError(
            f"randomize seed {seed!r}: a fixed seed makes the guarantee conditional on the seed (a spec "
            "rerun with the same seed at every recalibration can violate the budget with probability "
            "above δ); leave the seed out to draw U from operating-system entropy, or pass "
            "reproducible=True (spec: `calibration.reproducible: true`) to accept a conditional guarantee"
        )
    return draw_u(seed), int(seed), "fixed_seed"


def conditional_level(n: int, budget: float, k_u: int) -> float:
    """P(violation | U) on continuous scores at a boundary rate: F(k_U) (0 when k_U < 0)."""
    return float(special.bdtr(k_u, n, budget)) if k_u >= 0 else 0.0


def randomized_pvalue(k: np.ndarray, n: int, budget: float, u: float) -> np.ndarray:
    """p_U(k) = F(k − 1) + U (F(k) − F(k − 1)), F the Bin(n, budget) cdf (F(−1) = 0); from counts."""
    kk = np.asarray(k, dtype=np.int64)
    hi = special.bdtr(kk, n, budget)
    lo = np.where(kk > 0, special.bdtr(np.maximum(kk - 1, 0), n, budget), 0.0)
    return np.asarray(lo + u * (hi - lo), dtype=np.float64)


def boundary_gamma(n: int, budget: float, delta: float) -> tuple[int, float]:
    """``(k*, γ)``: the deterministic certified count and the probability of one more step."""
    kstar = certified_count(n, budget, delta)
    f0 = float(special.bdtr(kstar, n, budget)) if kstar >= 0 else 0.0
    if kstar >= n - 1:  # one more step would delegate every input: no finite threshold does that
        return kstar, 0.0
    f1 = float(special.bdtr(kstar + 1, n, budget))
    return kstar, max(0.0, min(1.0, (delta - f0) / (f1 - f0)))


def randomized_budget_threshold(
    scores: object,
    budget: float,
    delta: float,
    seed: int | None = None,
    *,
    reproducible: bool = False,
) -> Calibration:
    """Budget-only calibration (full grid, fixed-sequence) with the randomised boundary step.

    See the module docstring for the guarantee. U is drawn from operating-system entropy unless a
    ``seed`` is given together with ``reproducible=True`` (:func:`draw_randomization`); then the
    guarantee is conditional on the seed. O(n) (one ``np.partition``). Records the two hypotheses
    that decide the outcome, with their randomised p-values, and ``extras`` holding ``seed`` (the
    fixed seed, or the recorded entropy), ``u``, ``gamma``, ``k_u``, ``provenance`` and
    ``conditional_level`` (= F(k_U), the violation probability given this U on continuous scores).
    """
    s = as_finite_1d("scores", scores)
    b, d = check_open_unit("budget", budget), check_open_unit("delta", delta)
    n = int(s.size)
    u, used_seed, provenance = draw_randomization(seed, reproducible=reproducible)
    kstar, gamma = boundary_gamma(n, b, d)
    k_u = kstar + 1 if (gamma > 0 and u <= gamma) else kstar
    extras = {
        "family": "boundary",
        "randomized": True,
        "seed": used_seed,
        "u": u,
        "gamma": gamma,
        "k_u": k_u,
        "provenance": provenance,
        "conditional_level": conditional_level(n, b, min(k_u, n - 1)),
    }
    if k_u < 0:
        return Calibration(
            threshold=math.inf,
            budget=b,
            delta=d,
            procedure="fixed_sequence",
            pvalue_kind=RANDOMIZED_PVALUE,
            n=n,
            thresholds=np.empty(0),
            pvalues=np.empty(0),
            certified=np.zeros(0, dtype=bool),
            empirical_rates=np.empty(0),
            reason=f"no threshold certified even with the randomised step (n = {n}, U = {u:.4f})",
            extras=extras,
        )
    j = n - 1 - min(k_u, n - 1)
    part = np.partition(s, j)
    tau = float(part[j])
    below = part[:j] < tau
    thresholds, counts = [tau], [n - j - 1 - int(np.count_nonzero(part[j + 1 :] == tau))]
    if below.any():
        thresholds.append(float(np.max(part[:j], where=below, initial=-math.inf)))
        counts.append(n - int(np.count_nonzero(below)))
    k_arr = np.asarray(counts, dtype=np.int64)
    pvals = randomized_pvalue(k_arr, n, b, u)
    return Calibration(
        threshold=tau,
        budget=b,
        delta=d,
        procedure="fixed_sequence",
        pvalue_kind=RANDOMIZED_PVALUE,
        n=n,
        thresholds=np.asarray(thresholds),
        pvalues=pvals,
        certified=pvals <= d,
        empirical_rates=k_arr / n,
        reason=None,
        extras=extras,
    )


def randomized_violation_probability(n: int, budget: float, delta: float) -> float:
    """Exact P(violation) of the randomised step on continuous scores at a boundary rate.

    (1 − γ) F(k*) + γ F(k* + 1): exactly δ, except when k* = n − 1 (γ = 0, level F(n − 1) < δ).
    """
    kstar, gamma = boundary_gamma(n, budget, delta)
    f0 = float(special.bdtr(kstar, n, budget)) if kstar >= 0 else 0.0
    f1 = float(special.bdtr(min(kstar + 1, n), n, budget))
    return (1 - gamma) * f0 + gamma * f1


def randomized_expected_rate(n: int, budget: float, delta: float) -> float:
    """Exact E[true rate of τ̂] of the randomised step on continuous scores: ((1 − γ)(k* + 1) + γ (k* + 2)) / (n + 1).

    τ̂ is the (k_U + 1)-th largest score, whose true rate is Beta(k_U + 1, n − k_U) with mean
    (k_U + 1) / (n + 1); k_U ≤ n − 1 always (γ = 0 at k* = n − 1), so the largest value is n / (n + 1).
    """
    kstar, gamma = boundary_gamma(n, budget, delta)
    if kstar < 0 and gamma == 0:
        return 0.0
    return ((1 - gamma) * (kstar + 1) * (kstar >= 0) + gamma * min(kstar + 2, n + 1)) / (n + 1)


#: 0.1 names of the two functions above (they collided with the deterministic step's in planning).
_DEPRECATED = {
    "violation_probability": "randomized_violation_probability",
    "expected_rate": "randomized_expected_rate",
}


def __getattr__(name: str) -> object:
    if name in _DEPRECATED:
        import warnings

        warnings.warn(
            f"ctd_stats.stats.randomized.{name} is deprecated; use {_DEPRECATED[name]}",
            DeprecationWarning,
            stacklevel=2,
        )
        return globals()[_DEPRECATED[name]]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

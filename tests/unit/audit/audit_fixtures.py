"""Helpers for the audit tests: synthetic logs and certificates (plain JSON dicts)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ctd_stats.certificate.model import SCHEMA_VERSION
from ctd_stats.certificate.seal import seal
from ctd_stats.stats.pvalues import binomial_pvalue

TAU = 0.9
BUDGET = 0.1
#: Calibration rows behind the synthetic certificates.
N_TEST = 4000


def make_certificate(
    threshold: float | str = TAU,
    budget: float = BUDGET,
    reference: np.ndarray | None = None,
    expert: str = "expert",
    extra_results: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A sealed, internally consistent certificate dict in the current format.

    The entry records one tested threshold: τ itself, exceeded by a count of 0.9 × budget of
    ``N_TEST`` calibration rows (so it is certified at δ = 0.1), or none when τ is ``"inf"``.
    """
    ref = None
    if reference is not None:
        q = np.quantile(reference, np.linspace(0, 1, 201))
        ref = {"n": int(reference.size), "quantiles": [float(v) for v in q]}
    result = {
        "expert": expert,
        "budget": budget,
        "delta": 0.1,
        "method": "budget_only",
        "procedure": "fixed_sequence",
        "pvalue_kind": "binomial",
        "threshold": threshold,
        "certified": threshold != "inf",
        "n_test": N_TEST,
        "reason": None,
        "guarantee": "P(delegation rate <= budget) >= 1 - delta",
        "tested": _tested(threshold, budget),
        "pareto_front": None,
        "error_level": None,
        "joint": None,
        "score_reference": ref,
    }
    raw = {
        "schema_version": SCHEMA_VERSION,
        "cascade": "test",
        "created_at": "2024-01-01T00:00:00Z",
        "package_version": "0.1.0",
        "seed": 0,
        "spec_sha256": None,
        "data_sha256": None,
        "n": {"opt": 1000, "ht": 4000},
        "assumption": "i.i.d.",
        "results": [result, *(extra_results or [])],
    }
    raw["integrity"] = seal(raw).model_dump(mode="json")
    return raw


def _tested(threshold: float | str, budget: float) -> list[dict[str, Any]]:
    if threshold == "inf":
        return []
    count = int(0.9 * budget * N_TEST)
    return [
        {
            "threshold": threshold,
            "pvalue": float(binomial_pvalue(count, N_TEST, budget)),
            "rejected": True,
            "ht_rate": count / N_TEST,
            "ht_count": count,
            "opt_rate": None,
            "opt_error": None,
        }
    ]


def make_log(
    n: int = 20_000,
    rate: float = 0.09,
    threshold: float = TAU,
    seed: int = 0,
    groups: bool = True,
) -> pd.DataFrame:
    """A consistent log: scores whose exceedance probability of ``threshold`` is ``rate``."""
    rng = np.random.default_rng(seed)
    u = rng.random(n)
    # P(score > threshold) = rate with score in [0, 1]
    above = u < rate
    score = np.where(
        above,
        threshold + (1 - threshold) * rng.random(n),
        threshold * rng.random(n),
    )
    df = pd.DataFrame(
        {
            "timestamp": pd.date_range("2024-03-01", periods=n, freq="10s", tz="UTC"),
            "dv_score": score,
            "delegated": score > threshold,
        }
    )
    if groups:
        df["group"] = rng.choice(["en", "de", "fr"], n)
    return df

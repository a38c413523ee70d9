"""Helpers for the gateway tests: a certificate built with the core's models, a token, a fake expert."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ctd_stats.certificate.model import BudgetCertificate, Certificate, TestedThreshold
from ctd_stats.stats.pvalues import binomial_pvalue

TOKEN = "test-token-0123456789abcdef"
ADMIN_TOKEN = "admin-token-0123456789abcdef"
TAU = 0.5
BUDGET = 0.2


def write_certificate(path: Path, threshold: float = TAU, budget: float = BUDGET) -> Path:
    """A one-entry, internally consistent certificate (expert ``"expert"``) built with the core's models.

    It records one tested threshold, τ itself, exceeded by 0.9 × budget of 4,000 calibration rows.
    """
    n_test = 4000
    count = int(0.9 * budget * n_test)
    tested = TestedThreshold(
        threshold=threshold,
        pvalue=float(binomial_pvalue(count, n_test, budget)),
        rejected=True,
        ht_rate=count / n_test,
        ht_count=count,
    )
    entry = BudgetCertificate(
        expert="expert",
        budget=budget,
        delta=0.1,
        method="budget_only",
        procedure="fixed_sequence",
        pvalue_kind="binomial",
        threshold=threshold,
        certified=True,
        n_test=n_test,
        guarantee="P(delegation rate <= budget) >= 1 - delta",
        tested=[tested],
    )
    cert = Certificate(
        cascade="gateway-test",
        created_at="2024-01-01T00:00:00Z",
        package_version="0",
        seed=0,
        n={"opt": 1000, "ht": 4000},
        assumption="i.i.d.",
        results=[entry],
    )
    cert.write(path)
    return path


class FakeExpert:
    """An in-process expert: P(unsafe) = 0.9 for every text, or a failure on demand."""

    name = "expert"

    def __init__(self, fail: str | None = None) -> None:
        self.fail = fail
        self.calls = 0

    def score(self, texts: Sequence[str]) -> NDArray[np.float64]:
        self.calls += len(texts)
        if self.fail == "error":
            raise RuntimeError("expert down")
        if self.fail == "timeout":
            import time

            time.sleep(0.5)
        return np.full(len(texts), 0.9)

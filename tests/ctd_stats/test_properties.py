"""Property-based tests (hypothesis): the Pareto front against brute force; certificate round trips."""

from __future__ import annotations

import json
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ctd_stats.cascade import Cascade
from ctd_stats.certificate import (
    ASSUMPTION,
    BudgetCertificate,
    Certificate,
    TestedThreshold,
    load_certificate,
)
from ctd_stats.pareto import pareto_front
from ctd_stats.score_reference import ScoreReference


def _front_brute_force(counts: list[int], errors: list[int]) -> list[int]:
    """Candidate i is kept iff no earlier candidate (fewer or equal delegations) has error ≤ its own,
    and it is the first of its count: the definition, checked pair by pair."""
    kept = []
    for i in range(len(counts)):
        dominated = any(
            counts[j] <= counts[i] and errors[j] <= errors[i] for j in range(i)
        )
        if not dominated:
            kept.append(i)
    return kept


@st.composite
def candidates(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    m = draw(st.integers(0, 40))
    steps = draw(st.lists(st.integers(0, 3), min_size=m, max_size=m))
    counts = np.cumsum(np.asarray(steps, dtype=np.int64))
    # Equal counts on nested sets mean the same delegated rows, hence the same error.
    per_count = draw(st.lists(st.integers(0, 30), min_size=m + 1, max_size=m + 1))
    _, first = np.unique(counts, return_inverse=True)
    errors = np.asarray(per_count, dtype=np.int64)[first] if m else np.zeros(0, dtype=np.int64)
    return counts, errors


@settings(max_examples=300, deadline=None)
@given(candidates())
def test_pareto_front_matches_brute_force(c: tuple[np.ndarray, np.ndarray]) -> None:
    counts, errors = c
    got = pareto_front(counts, errors).tolist()
    assert got == _front_brute_force(counts.tolist(), errors.tolist())
    # Along the front, delegation grows and error strictly falls: over-delegation never survives.
    assert all(np.diff(counts[got]) > 0) and all(np.diff(errors[got]) < 0)


finite_or_inf = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False), st.just(math.inf)
)


@st.composite
def certificates(draw: st.DrawFn) -> Certificate:
    results = []
    for e in range(draw(st.integers(1, 3))):
        tau = draw(finite_or_inf)
        tested = [
            TestedThreshold(
                threshold=draw(finite_or_inf),
                pvalue=draw(st.floats(0, 1)),
                rejected=draw(st.booleans()),
                ht_rate=draw(st.floats(0, 1)),
            )
            for _ in range(draw(st.integers(0, 4)))
        ]
        q = sorted(draw(st.lists(st.floats(-50, 50), min_size=2, max_size=5)))
        results.append(
            BudgetCertificate(
                expert=f"e{e}",
                budget=draw(st.floats(0.01, 0.99)),
                delta=draw(st.floats(0.01, 0.5)),
                method="budget_only",
                procedure="fixed_sequence",
                pvalue_kind="binomial",
                threshold=tau,
                certified=math.isfinite(tau),
                reason=None if math.isfinite(tau) else "nothing certified",
                guarantee="text",
                tested=tested,
                score_reference=ScoreReference(n=draw(st.integers(1, 10**6)), quantiles=tuple(q)),
            )
        )
    return Certificate(
        cascade="prop",
        created_at="2026-12-01T00:00:00Z",
        package_version="0",
        seed=draw(st.integers(0, 2**31)),
        n={"ht": draw(st.integers(1, 10**6))},
        assumption=ASSUMPTION,
        results=results,
    )


@settings(max_examples=100, deadline=None)
@given(certificates())
def test_certificate_round_trip(tmp_path_factory, cert: Certificate) -> None:
    path = tmp_path_factory.mktemp("cert") / "certificate.json"
    cert.write(path)
    text = path.read_text()
    json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))  # strict JSON
    back = load_certificate(path)
    assert back == cert
    for r in cert.results:
        rule = Cascade.from_certificate(back, budget=r.budget, expert=r.expert)
        scores = np.array([-math.inf, r.threshold if math.isfinite(r.threshold) else 0.0, math.inf])
        assert rule.delegate(scores).tolist() == (scores > r.threshold).tolist()

"""Property-based tests (hypothesis): the Pareto front against brute force; certificate round trips."""

from __future__ import annotations

import json
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ctd_stats.certificate.cascade import Cascade
from ctd_stats.certificate.checks import load_certificate
from ctd_stats.certificate.model import ASSUMPTION, BudgetCertificate, Certificate, TestedThreshold
from ctd_stats.certificate.reference import ScoreReference
from ctd_stats.stats.fwer import FixedSequence
from ctd_stats.stats.pareto import pareto_front
from ctd_stats.stats.pvalues import binomial_pvalue


def _front_brute_force(counts: list[int], errors: list[int]) -> list[int]:
    """Candidate i is kept iff no earlier candidate (fewer or equal delegations) has error ≤ its own,
    and it is the first of its count: the definition, checked pair by pair."""
    kept = []
    for i in range(len(counts)):
        dominated = any(counts[j] <= counts[i] and errors[j] <= errors[i] for j in range(i))
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
    """Internally consistent budget-only certificates: counts -> exact p-values -> fixed sequence."""
    results = []
    for e in range(draw(st.integers(1, 3))):
        n_test = draw(st.integers(1, 5000))
        budget = draw(st.floats(0.01, 0.99))
        delta = draw(st.floats(0.01, 0.5))
        m = draw(st.integers(0, 4))
        taus = sorted(set(draw(st.lists(finite_or_inf, min_size=m, max_size=m))), reverse=True)
        # test order = descending τ, so the count of d > τ can only grow along it
        counts = np.sort(
            np.asarray(
                draw(st.lists(st.integers(0, n_test), min_size=len(taus), max_size=len(taus))),
                dtype=np.int64,
            )
        )
        pvals = binomial_pvalue(counts, n_test, budget)
        rejected = FixedSequence().reject(pvals, delta)
        tested = [
            TestedThreshold(
                threshold=t,
                pvalue=float(p),
                rejected=bool(r),
                ht_rate=int(k) / n_test,
                ht_count=int(k),
            )
            for t, p, r, k in zip(taus, pvals, rejected, counts, strict=True)
        ]
        cand = [t for t, r in zip(taus, rejected, strict=True) if r]
        tau = min(cand) if cand else math.inf
        q = sorted(draw(st.lists(st.floats(-50, 50), min_size=2, max_size=5)))
        results.append(
            BudgetCertificate(
                expert=f"e{e}",
                budget=budget,
                delta=delta,
                method="budget_only",
                procedure="fixed_sequence",
                pvalue_kind="binomial",
                threshold=tau,
                certified=bool(cand),
                n_test=n_test,
                reason=None if cand else "nothing certified",
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
    back = load_certificate(path)  # digest and consistency checks pass on what was written
    assert back.integrity is not None and back.model_copy(update={"integrity": None}) == cert
    assert back.to_dict() == json.loads(text)
    for r in cert.results:
        rule = Cascade.from_certificate(back, budget=r.budget, expert=r.expert)
        scores = np.array([-math.inf, r.threshold if math.isfinite(r.threshold) else 0.0, math.inf])
        assert rule.delegate(scores).tolist() == (scores > r.threshold).tolist()

"""The certificate check re-runs every procedure, found by its registry id, on the recorded p-values.

For each procedure (the FWER procedures of a budget-only calibration and the two joint rules of a
budget-and-error calibration) a consistent certificate passes the check, and an edited one that
certifies a hypothesis the procedure does not reject is refused — with the procedure named. Before
procedures were registry objects the max-p check looked for the string "fixed_sequence(max_p)"
while certificates recorded "fixed_sequence(max_p, opt p-value order)", so an edited max-p
certificate passed; the bonferroni_split chain was not checked at all.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ctd_stats import CascadeData, calibrate_budget, calibrate_cascade
from ctd_stats.certificate.build import budget_certificate
from ctd_stats.certificate.checks import certificate_problems
from ctd_stats.certificate.model import ASSUMPTION, BudgetCertificate, Certificate, utc_now
from ctd_stats.stats.fwer import REGISTRY, procedure_by_id

DELTA = 0.1


def _certificate(entry: BudgetCertificate) -> Certificate:
    return Certificate(
        cascade="procedure-check",
        created_at=utc_now(),
        package_version="test",
        seed=0,
        n={"ht": entry.n_test},
        assumption=ASSUMPTION,
        results=[entry],
    )


def _budget_only(procedure: str) -> Certificate:
    rng = np.random.default_rng(3)
    scores = rng.normal(size=400)
    grid = np.quantile(scores, np.linspace(0.55, 0.95, 25))
    cal = calibrate_budget(scores, 0.3, DELTA, procedure=procedure, thresholds=grid)
    return _certificate(budget_certificate(cal, "expert", None, scores))


def _joint(joint: str) -> Certificate:
    rng = np.random.default_rng(11)
    n = 1500
    probe_ok = rng.random(n) < 0.75
    expert_ok = rng.random(n) < 0.9
    d = np.round(2.0 * (expert_ok.astype(float) - probe_ok.astype(float)) + rng.normal(0, 1, n), 2)
    opt, ht = CascadeData(d, probe_ok, expert_ok).split(0.3, seed=0)
    cal = calibrate_cascade(opt=opt, ht=ht, budget=0.3, delta=DELTA, error_level=0.2, joint=joint)
    return _certificate(budget_certificate(cal, "expert", None, ht.dv_score))


def _move_stop_to_front(tested: list[dict[str, Any]], level: float) -> list[dict[str, Any]]:
    """Chains: list the hypothesis that stopped the chain first, so every certified one was tested after it."""
    stop = next(i for i, t in enumerate(tested) if t["pvalue"] > level)
    assert any(t["rejected"] for t in tested), "need a certificate that certifies something"
    return [tested[stop], *tested[:stop], *tested[stop + 1 :]]


def _certify_one_more(entry: dict[str, Any], critical: float) -> None:
    """Unordered procedures: mark as certified a hypothesis with critical < p <= delta (and make τ
    the smallest certified threshold again, so only the procedure can object)."""
    tested = entry["tested"]
    i = next(
        i
        for i, t in enumerate(tested)
        if not t["rejected"] and critical < t["pvalue"] <= entry["delta"]
    )
    tested[i]["rejected"] = True
    entry["threshold"] = min(float(t["threshold"]) for t in tested if t["rejected"])
    entry["certified"] = True


CASES = {
    "fixed_sequence": lambda: _budget_only("fixed_sequence"),
    "bonferroni": lambda: _budget_only("bonferroni"),
    "holm": lambda: _budget_only("holm"),
    "max_p": lambda: _joint("max_p"),
    "bonferroni_split": lambda: _joint("bonferroni_split"),
}


def test_every_registered_procedure_has_a_case():
    assert set(CASES) == set(REGISTRY)


@pytest.mark.parametrize("procedure_id", sorted(CASES))
def test_an_edited_certificate_of_each_procedure_is_refused(procedure_id: str) -> None:
    cert = CASES[procedure_id]()
    (entry,) = cert.results
    assert procedure_by_id(entry.procedure).id == procedure_id
    assert entry.procedure == procedure_id  # recorded by its stable id
    assert certificate_problems(cert) == []

    raw = cert.model_dump(mode="json", exclude={"integrity"})
    edited = raw["results"][0]
    m = len(edited["tested"])
    if procedure_id in ("fixed_sequence", "max_p"):
        edited["tested"] = _move_stop_to_front(edited["tested"], DELTA)
    elif procedure_id == "bonferroni_split":
        edited["tested"] = _move_stop_to_front(edited["tested"], DELTA / 2)
    elif procedure_id == "bonferroni":
        _certify_one_more(edited, DELTA / m)
    else:  # holm: above its first critical value δ/m, but Holm stops before it
        _certify_one_more(edited, DELTA / m)
    problems = certificate_problems(Certificate.model_validate(raw))
    assert any(procedure_id in p for p in problems), problems


def test_old_procedure_strings_still_read():
    """Certificates of 0.1 recorded the max-p rule under a longer name; it maps to the same object."""
    assert procedure_by_id("fixed_sequence(max_p, opt p-value order)") is REGISTRY["max_p"]
    assert procedure_by_id("fixed_sequence(max_p)") is REGISTRY["max_p"]
    cert = _joint("max_p")
    raw = cert.model_dump(mode="json", exclude={"integrity"})
    raw["results"][0]["procedure"] = "fixed_sequence(max_p, opt p-value order)"
    assert certificate_problems(Certificate.model_validate(raw)) == []
    raw["results"][0]["tested"] = _move_stop_to_front(raw["results"][0]["tested"], DELTA)
    assert any("max_p" in p for p in certificate_problems(Certificate.model_validate(raw)))


def test_an_unknown_procedure_is_refused():
    raw = _budget_only("fixed_sequence").model_dump(mode="json", exclude={"integrity"})
    raw["results"][0]["procedure"] = "sidak"
    problems = certificate_problems(Certificate.model_validate(raw))
    assert any("unknown procedure 'sidak'" in p for p in problems), problems

"""Certificates: golden structure, strict JSON with "inf", round trip, checks, Cascade."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ctd_stats.certificate.cascade import Cascade
from ctd_stats.certificate.checks import load_certificate
from ctd_stats.certificate.model import SCHEMA_VERSION, Certificate
from ctd_stats.cli.entry import main
from ctd_stats.errors import CTDInputError

TOP_KEYS = [
    "schema_version",
    "cascade",
    "created_at",
    "package_version",
    "seed",
    "spec_sha256",
    "data_sha256",
    "n",
    "assumption",
    "groups",
    "results",
    "integrity",
]
RESULT_KEYS = [
    "expert",
    "budget",
    "delta",
    "method",
    "procedure",
    "pvalue_kind",
    "threshold",
    "certified",
    "n_test",
    "reason",
    "guarantee",
    "tested",
    "tested_scope",
    "pareto_front",
    "error_level",
    "joint",
    "split",
    "score_reference",
    "randomization",
]
TESTED_KEYS = ["threshold", "pvalue", "rejected", "ht_rate", "ht_count", "opt_rate", "opt_error"]


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory, table_tools):
    """Calibrate a small Pareto spec with one certifiable and one impossible budget (once)."""
    d = tmp_path_factory.mktemp("golden")
    score_frame, write_frame = table_tools
    table = write_frame(score_frame(800), d / "scores.parquet")
    spec = d / "spec.yaml"
    spec.write_text(
        "cascade: {name: golden}\n"
        "data: {table: scores.parquet}\n"
        "calibration: {budget: [0.001, 0.3], delta: 0.1}\n"
        "outputs: {directory: out, formats: [json]}\n"
    )
    code = main(["calibrate", str(spec)])
    return code, spec, table, d / "out" / "certificate.json"


def test_golden_structure(calibrated):
    code, _, _, path = calibrated
    assert code == 1  # budget 0.001 cannot be certified from 800 rows
    raw = json.loads(path.read_text())
    assert list(raw) == TOP_KEYS
    assert raw["schema_version"] == SCHEMA_VERSION and raw["cascade"] == "golden"
    assert raw["created_at"].endswith("Z") and raw["seed"] == 0
    assert set(raw["n"]) == {"opt", "ht", "eval"} and sum(raw["n"].values()) == 800
    assert len(raw["results"]) == 2
    for r in raw["results"]:
        assert list(r) == RESULT_KEYS
        assert r["method"] == "ctd_pareto" and r["procedure"] == "fixed_sequence"
        assert r["split"] == "none"  # budget-only default: front and test on all calibration rows
        assert r["tested"] and list(r["tested"][0]) == TESTED_KEYS
        assert r["pareto_front"] and set(r["pareto_front"][0]) == {
            "threshold",
            "opt_rate",
            "opt_error",
        }
        assert len(r["score_reference"]["quantiles"]) == 201
    impossible, ok = raw["results"]
    assert (
        impossible["threshold"] == "inf"
        and impossible["certified"] is False
        and impossible["reason"]
    )
    assert isinstance(ok["threshold"], float) and ok["certified"] is True and ok["reason"] is None
    assert "0.9" in ok["guarantee"] and "0.3" in ok["guarantee"] and "i.i.d." in ok["guarantee"]
    # tested thresholds in test order: descending τ (least delegation first)
    taus = [t["threshold"] for t in ok["tested"]]
    assert taus == sorted(taus, reverse=True)
    # strict JSON: no NaN/Infinity literals anywhere
    json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))


def test_round_trip_and_hash_checks(calibrated, tmp_path):
    _, spec, table, path = calibrated
    cert = load_certificate(path, spec_path=spec, data_path=table)
    assert isinstance(cert, Certificate)
    assert math.isinf(cert.result(budget=0.001).threshold)
    assert Certificate.model_validate_json(json.dumps(cert.to_dict())) == cert
    changed = tmp_path / "changed.parquet"
    changed.write_bytes(table.read_bytes() + b"\n")
    with pytest.raises(CTDInputError, match=r"score table .* changed since calibration"):
        load_certificate(path, data_path=changed)


def test_result_selection(calibrated):
    cert = load_certificate(calibrated[3])
    assert cert.result(budget=0.3, expert="expert").budget == 0.3
    with pytest.raises(CTDInputError, match=r"2 results"):
        cert.result()
    with pytest.raises(CTDInputError, match=r"no result for budget=0.2"):
        cert.result(budget=0.2)


def test_cascade_from_certificate(calibrated):
    path = calibrated[3]
    c = Cascade.from_certificate(path, budget=0.3)
    assert c.certified and math.isfinite(c.threshold)
    d = c.delegate(np.array([c.threshold, c.threshold + 1.0]))
    assert d.dtype == bool and d.tolist() == [False, True]
    with pytest.raises(ValueError, match="NaN"):
        c.delegate([0.1, float("nan")])
    never = Cascade.from_certificate(path, budget=0.001)
    assert not never.certified and not never.delegate(np.array([1e300])).any()


def test_bad_certificates(tmp_path, calibrated):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CTDInputError, match=r"bad.json:1:2: invalid JSON"):
        load_certificate(bad)
    raw = json.loads(calibrated[3].read_text())
    raw["schema_version"] = "ctd.certificate/99"
    bad.write_text(json.dumps(raw))
    with pytest.raises(CTDInputError, match=r"schema_version is 'ctd.certificate/99', expected"):
        load_certificate(bad)
    raw["schema_version"] = SCHEMA_VERSION
    del raw["results"][0]["threshold"]
    bad.write_text(json.dumps(raw))
    with pytest.raises(CTDInputError, match=r"invalid certificate: results.0.threshold"):
        load_certificate(bad)
    with pytest.raises(CTDInputError, match="certificate not found"):
        load_certificate(tmp_path / "none.json")

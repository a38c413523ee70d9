"""Edited certificates are refused: digest, HMAC signature, and internal consistency."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from ctd_stats.certificate.cascade import Cascade
from ctd_stats.certificate.checks import certificate_problems, load_certificate
from ctd_stats.certificate.seal import KEY_ENV, KEY_FILE_ENV, canonical_bytes, key_id
from ctd_stats.cli.entry import main
from ctd_stats.errors import EXIT_BAD_INPUT, EXIT_NOT_CERTIFIED, EXIT_OK, CTDInputError


def _calibrate(d, table_tools, extra: str = "", n: int = 1500, name: str = "sealed"):
    score_frame, write_frame = table_tools
    write_frame(score_frame(n), d / "scores.parquet")
    spec = d / "spec.yaml"
    spec.write_text(
        f"cascade: {{name: {name}}}\n"
        "data: {table: scores.parquet}\n"
        f"calibration: {{budget: [0.05, 0.3], delta: 0.1{extra}}}\n"
        "outputs: {directory: out, formats: [json]}\n"
    )
    assert main(["calibrate", str(spec)]) in (EXIT_OK, EXIT_NOT_CERTIFIED)
    return d / "out" / "certificate.json"


@pytest.fixture(scope="module")
def cert_path(tmp_path_factory, table_tools):
    return _calibrate(tmp_path_factory.mktemp("sealed"), table_tools)


def _reseal_plain(raw: dict) -> dict:
    """What a deliberate editor does: recompute the plain digest after editing."""
    raw["integrity"] = {
        "algorithm": "sha256",
        "digest": hashlib.sha256(canonical_bytes(raw)).hexdigest(),
        "key_id": None,
    }
    return raw


def _write(tmp_path, raw: dict, name: str = "edited.json"):
    p = tmp_path / name
    p.write_text(json.dumps(raw, indent=1))
    return p


def test_sealed_certificate_loads_whatever_its_formatting(cert_path, tmp_path):
    raw = json.loads(cert_path.read_text())
    assert raw["integrity"]["algorithm"] == "sha256" and len(raw["integrity"]["digest"]) == 64
    reordered = {k: raw[k] for k in reversed(list(raw))}  # key order and indentation do not matter
    p = tmp_path / "reordered.json"
    p.write_text(json.dumps(reordered, indent=7, sort_keys=True))
    assert load_certificate(p) == load_certificate(cert_path)
    assert certificate_problems(load_certificate(p)) == []


def test_hand_edited_budget_is_refused(cert_path, tmp_path):
    raw = json.loads(cert_path.read_text())
    raw["results"][1]["budget"] = 0.9
    with pytest.raises(CTDInputError, match=r"edited\.json: .*does not match its digest"):
        load_certificate(_write(tmp_path, raw))


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda r: r["results"][1].update(budget=0.9), "gives"),  # recorded p-values no longer fit
        (  # claim a higher confidence than the recorded p-values support
            lambda r: r["results"][1].update(
                delta=max(t["pvalue"] for t in r["results"][1]["tested"] if t["rejected"]) / 2
            ),
            "p-value > delta|procedure does not give",
        ),
        (
            lambda r: r["results"][0]["tested"][0].update(
                ht_count=r["results"][0]["tested"][0]["ht_count"] + 1
            ),
            "disagree with the recorded counts",
        ),
        (
            lambda r: r["results"][1].update(threshold=-1.0),
            "not among the certified|not the smallest",
        ),
        (lambda r: r["results"][0].update(threshold="inf", certified=False), "certified but"),
        (
            lambda r: r["results"][0]["tested"][-1].update(rejected=True),
            "p-value > delta|procedure",
        ),
    ],
)
def test_edits_with_a_recomputed_digest_are_refused(cert_path, tmp_path, edit, needle):
    raw = json.loads(cert_path.read_text())
    assert raw["results"][0]["certified"] and raw["results"][1]["certified"]
    edit(raw)
    with pytest.raises(CTDInputError, match=rf"inconsistent certificate: .*({needle})"):
        load_certificate(_write(tmp_path, _reseal_plain(raw)))


def test_edited_budget_makes_ctd_audit_exit_2_not_compliant(cert_path, tmp_path, capsys):
    """The issue's scenario: budget 0.3 -> 0.9 made a log delegating ~53% COMPLIANT."""
    cert = load_certificate(cert_path)
    tau = cert.result(budget=0.3).threshold
    rng = np.random.default_rng(0)
    scores = np.where(rng.random(5000) < 0.53, tau + 1.0, tau - 1.0)
    log = tmp_path / "log.csv"
    log.write_text(
        "timestamp,dv_score,delegated\n"
        + "".join(
            f"2026-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z,{s},{s > tau}\n"
            for i, s in enumerate(scores)
        )
    )
    raw = json.loads(cert_path.read_text())
    raw["results"][1]["budget"] = 0.9
    for edited in (raw, _reseal_plain(json.loads(json.dumps(raw)))):
        path = _write(tmp_path, edited, "audit-edited.json")
        code = main(["audit", "--certificate", str(path), "--log", str(log), "--budget", "0.9"])
        err = capsys.readouterr().err
        assert code == EXIT_BAD_INPUT and "Traceback" not in err
        assert "audit-edited.json" in err and (
            "does not match its digest" in err or "inconsistent" in err
        )
    # the untouched certificate gives the honest verdict: a violation of budget 0.3
    out = tmp_path / "audit-out"
    code = main(
        [
            "audit",
            "--certificate",
            str(cert_path),
            "--log",
            str(log),
            "--budget",
            "0.3",
            "--out",
            str(out),
        ]
    )
    assert code == EXIT_NOT_CERTIFIED  # 1 = violation found


def test_hmac_signed_certificates(tmp_path_factory, table_tools, monkeypatch, tmp_path):
    monkeypatch.setenv(KEY_ENV, "s3cret-deployment-key")
    path = _calibrate(tmp_path_factory.mktemp("signed"), table_tools)
    raw = json.loads(path.read_text())
    assert raw["integrity"]["algorithm"] == "hmac-sha256"
    assert raw["integrity"]["key_id"] == key_id(b"s3cret-deployment-key")
    assert "s3cret" not in path.read_text()
    assert certificate_problems(load_certificate(path)) == []
    # a plain digest recomputed by an editor does not pass while signatures are required
    raw["results"][1]["budget"] = 0.31
    with pytest.raises(CTDInputError, match=r"not signed, but .*is set"):
        load_certificate(_write(tmp_path, _reseal_plain(raw)))
    # a wrong key is named as such
    monkeypatch.setenv(KEY_ENV, "another-key")
    with pytest.raises(CTDInputError, match=r"signed with key id [0-9a-f]{16}.*wrong key"):
        load_certificate(path)
    # no key: cannot verify, says which variable to set
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(CTDInputError, match=rf"set {KEY_ENV} or {KEY_FILE_ENV}"):
        load_certificate(path)
    # the key from a file (trailing newline ignored) verifies
    key_file = tmp_path / "key"
    key_file.write_text("s3cret-deployment-key\n")
    monkeypatch.setenv(KEY_FILE_ENV, str(key_file))
    assert certificate_problems(load_certificate(path)) == []
    # a signed certificate whose content was edited fails the signature
    signed = json.loads(path.read_text())
    signed["results"][0]["budget"] = 0.5
    with pytest.raises(CTDInputError, match="does not match its signature"):
        load_certificate(_write(tmp_path, signed, "signed-edited.json"))


def test_certificate_without_integrity_is_refused(cert_path, tmp_path):
    raw = json.loads(cert_path.read_text())
    del raw["integrity"]
    with pytest.raises(CTDInputError, match="no integrity digest"):
        load_certificate(_write(tmp_path, raw))
    raw["schema_version"] = "ctd.certificate/1"
    with pytest.raises(CTDInputError, match=r"older ctd.*recalibrate"):
        load_certificate(_write(tmp_path, raw))


def test_inconsistent_certificate_object_is_refused_by_cascade(cert_path):
    cert = load_certificate(cert_path)
    r = cert.results[1]
    forged = cert.model_copy(
        update={"results": [cert.results[0], r.model_copy(update={"budget": 0.9})]}
    )
    with pytest.raises(CTDInputError, match="certificate object: inconsistent certificate"):
        Cascade.from_certificate(forged, budget=0.9)
    assert Cascade.from_certificate(cert, budget=0.3).certified


@pytest.mark.parametrize(
    "extra",
    [
        "",
        ", pareto: false",
        ", pareto: false, procedure: bonferroni",
        ", pareto: false, procedure: holm, pvalue: hb",
        ", pvalue: hoeffding",
        ", split: opt_ht",
        ", split: none, pvalue: hb",
        ", error_level: 0.3",
        ", error_level: 0.3, joint: max_p",
        ", error_level: 0.3, joint: bonferroni_split",
    ],
)
def test_every_calibration_yields_a_consistent_certificate(tmp_path, table_tools, extra):
    """No false alarms: what calibrate writes passes its own checks, for every procedure."""
    path = _calibrate(tmp_path, table_tools, extra=extra, n=600)
    cert = load_certificate(path)
    assert certificate_problems(cert) == []
    assert all(r.tested for r in cert.results)
    for r in cert.results:  # counts are integers that reproduce the recorded rates exactly
        assert all(t.ht_count == round(t.ht_rate * r.n_test) for t in r.tested)


@pytest.mark.parametrize("extra", [", pareto: false", ""])
def test_large_grid_records_the_fixed_sequence_boundary(tmp_path, table_tools, extra, monkeypatch):
    """5,000 rows, budget-only: the grid has thousands of thresholds; the certificate keeps the two
    that decide everything, stays consistent, and a forged boundary is still caught."""
    monkeypatch.setattr(
        "ctd_stats.certificate.build.MAX_RECORDED_TESTS", 1000 if extra else 20
    )  # fronts are short
    path = _calibrate(tmp_path, table_tools, extra=extra, n=5000)
    raw = json.loads(path.read_text())
    for r in raw["results"]:
        assert r["tested_scope"] == "fixed_sequence_boundary" and len(r["tested"]) == 2
        last_ok, first_fail = r["tested"]
        assert last_ok["rejected"] and not first_fail["rejected"]
        assert (
            last_ok["threshold"] == r["threshold"]
            and last_ok["pvalue"] <= r["delta"] < first_fail["pvalue"]
        )
        assert first_fail["ht_count"] > last_ok["ht_count"]
        assert r["pareto_front"] is None or len(r["pareto_front"]) <= 20
    assert certificate_problems(load_certificate(path)) == []
    raw["results"][1]["tested"][1]["rejected"] = True  # claim the next threshold passed too
    raw["results"][1]["threshold"] = raw["results"][1]["tested"][1]["threshold"]
    with pytest.raises(CTDInputError, match="inconsistent certificate"):
        load_certificate(_write(tmp_path, _reseal_plain(raw)))


def test_audit_warns_when_the_certificate_is_not_the_one_its_run_wrote(
    tmp_path, table_tools, capsys
):
    """A valid certificate copied over another run's: usable, but the manifest mismatch is reported."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = _calibrate(tmp_path / "a", table_tools, name="a")
    b = _calibrate(tmp_path / "b", table_tools, n=1600, name="b")
    b.write_bytes(a.read_bytes())  # run b's folder now holds run a's certificate
    log = tmp_path / "log.jsonl"
    log.write_text(
        "".join(
            json.dumps({"timestamp": f"2026-01-01T00:00:{i % 60:02d}Z", "dv_score": -5.0}) + "\n"
            for i in range(200)
        )
    )
    capsys.readouterr()
    code = main(
        [
            "audit",
            "--certificate",
            str(b),
            "--budget",
            "0.3",
            "--log",
            str(log),
            "--out",
            str(tmp_path / "aud"),
        ]
    )
    err = capsys.readouterr().err
    assert code == EXIT_OK
    assert "warning:" in err and "changed since the run that wrote it" in err


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda r: r.update(error_level=0.2), "certifies the budget only"),
        (
            lambda r: r["tested"][1].update(opt_rate=r["tested"][1]["opt_rate"] + 0.01),
            "opt rates differ",
        ),
        (
            lambda r: r["tested"][2].update(opt_error=r["tested"][0]["opt_error"] + 0.01),
            "not a Pareto front",
        ),
        (lambda r: r.update(method="budget_only"), "only Pareto calibration has a split"),
    ],
)
def test_no_split_certificate_rules(cert_path, tmp_path, edit, needle):
    """The default budget-only Pareto certificate records split 'none'; edits that break its rules
    (same rows for front and test, no error claim, a Pareto family) are refused."""
    raw = json.loads(cert_path.read_text())
    r = raw["results"][1]
    assert r["split"] == "none" and r["certified"] and len(r["tested"]) >= 3
    assert all(t["opt_rate"] == t["ht_rate"] for t in r["tested"])
    edit(r)
    with pytest.raises(CTDInputError, match=rf"inconsistent certificate: .*({needle})"):
        load_certificate(_write(tmp_path, _reseal_plain(raw)))


def test_spec_refuses_no_split_with_an_error_level(tmp_path, table_tools, capsys):
    d = tmp_path
    score_frame, write_frame = table_tools
    write_frame(score_frame(300), d / "scores.parquet")
    spec = d / "spec.yaml"
    spec.write_text(
        "data: {table: scores.parquet}\ncalibration: {budget: 0.3, split: none, error_level: 0.2}\n"
    )
    assert main(["calibrate", str(spec)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "calibration.split" in err and "error_level" in err and err.count("\n") <= 2

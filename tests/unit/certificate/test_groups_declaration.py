"""``calibration.groups``: strata or clusters, declared in the spec and recorded in the certificate.

The correlation diagnostic sees a group effect, which sampling clusters and strata of a mixture both
produce; only the spec can say which design produced the rows. ``strata`` silences the warning and
writes the mixture assumption into the certificate and the calibration report; ``unknown`` (the
default) keeps the warning, which names both remedies; ``strata`` next to ``cluster`` and
``clusters`` without ``cluster`` are refused naming the field. Certificates written before the
field existed still load, and re-serialise to the digest they were sealed with.
"""

from __future__ import annotations

import hashlib
import json
import warnings

import numpy as np
import pandas as pd
import pytest

from ctd_stats.certificate.checks import certificate_problems, load_certificate
from ctd_stats.certificate.model import ASSUMPTION
from ctd_stats.certificate.seal import canonical_bytes
from ctd_stats.cli.entry import main
from ctd_stats.errors import EXIT_OK, CTDInputError
from ctd_stats.spec.cascade_spec import load_spec
from ctd_stats.stats.cluster import ClusterCorrelationWarning

STRATA_TEXT = (
    "rows drawn independently from a mixture of groups (declared: groups are strata, not sampling "
    "clusters)"
)


def _grouped_table(path, m: int = 60, size: int = 10, sa: float = 1.0, seed: int = 1) -> None:
    """Scores with a strong group effect a_g (so the diagnostic fires), half ht, half eval."""
    rng = np.random.default_rng(seed)
    n = m * size
    pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(n)],
            "split": np.where(np.arange(n) % 2 == 0, "ht", "eval"),
            "group": np.repeat([f"g{j}" for j in range(m)], size),
            "dv_score": np.repeat(rng.normal(0.0, sa, m), size) + rng.normal(0.0, 1.0, n),
        }
    ).to_parquet(path, index=False)


def _spec(tmp_path, calibration: str, name: str = "s.yaml"):
    p = tmp_path / name
    p.write_text(
        "data: {table: t.parquet}\n"
        "outputs: {directory: out, formats: [md, json]}\n"
        f"calibration: {{budget: 0.3, pareto: false{calibration}}}\n"
    )
    return p


def _calibrate_warnings(spec_path) -> list[str]:
    from ctd_stats.certificate.build import calibrate_spec

    spec = load_spec(spec_path)
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        calibrate_spec(spec, spec.load_table())
    return [str(w.message) for w in got if issubclass(w.category, ClusterCorrelationWarning)]


def test_strata_silences_the_warning_unknown_names_both_remedies(tmp_path):
    _grouped_table(tmp_path / "t.parquet")
    assert _calibrate_warnings(_spec(tmp_path, ", groups: strata")) == []
    for extra in ("", ", groups: unknown"):
        (msg,) = _calibrate_warnings(_spec(tmp_path, extra))
        assert "design effect" in msg and "cannot tell" in msg
        assert "`calibration.cluster: COLUMN`" in msg and "sampled into calibration" in msg
        assert "`calibration.groups: strata`" in msg and "drawn independently" in msg


@pytest.mark.parametrize(
    ("calibration", "needle"),
    [
        (", cluster: group, groups: strata", "calibration.groups: `strata`"),
        (", groups: clusters", "calibration.groups: `clusters`"),
        (", groups: sources", "calibration.groups"),
    ],
)
def test_conflicting_or_unknown_declarations_are_refused_naming_the_field(
    tmp_path, calibration, needle
):
    with pytest.raises(CTDInputError, match=needle) as err:
        load_spec(_spec(tmp_path, calibration))
    assert "s.yaml:" in str(err.value)


def test_cluster_implies_clusters_and_may_say_so():
    from ctd_stats.spec.calibration import CalibrationSpec

    assert CalibrationSpec().groups_declared == "unknown"
    assert CalibrationSpec(groups="strata").groups_declared == "strata"
    for extra in ({}, {"groups": "clusters"}):
        c = CalibrationSpec(pareto=False, cluster="conv", **extra)
        assert c.groups_declared == "clusters"


@pytest.mark.parametrize(
    ("calibration", "groups"),
    [(", groups: strata", "strata"), ("", "unknown"), (", cluster: group", "clusters")],
)
def test_certificate_and_report_record_the_declaration(tmp_path, calibration, groups):
    _grouped_table(tmp_path / "t.parquet")
    assert main(["calibrate", str(_spec(tmp_path, calibration))]) == EXIT_OK
    cert = load_certificate(tmp_path / "out" / "certificate.json")  # checks run on load
    assert certificate_problems(cert) == []
    assert cert.groups == groups
    report = (tmp_path / "out" / "report.md").read_text()
    assert f"Assumption: {cert.assumption}" in report
    if groups == "strata":
        assert STRATA_TEXT in cert.assumption
    elif groups == "unknown":
        assert cert.assumption == ASSUMPTION
    else:
        assert "column 'group'" in cert.assumption and "clusters (not" not in cert.assumption
        assert "population of clusters" in cert.assumption and STRATA_TEXT not in cert.assumption


def test_older_certificate_without_the_field_loads_and_keeps_its_digest(tmp_path):
    """An older writer: no ``groups`` key, the i.i.d. assumption, sealed over exactly that."""
    _grouped_table(tmp_path / "t.parquet")
    assert main(["calibrate", str(_spec(tmp_path, ", groups: strata"))]) == EXIT_OK
    raw = json.loads((tmp_path / "out" / "certificate.json").read_text())
    assert (
        raw["groups"] == "strata" and list(raw).index("groups") == list(raw).index("assumption") + 1
    )
    del raw["groups"]
    raw["assumption"] = ASSUMPTION
    raw["integrity"] = {
        "algorithm": "sha256",
        "digest": hashlib.sha256(canonical_bytes(raw)).hexdigest(),
        "key_id": None,
    }
    old = tmp_path / "old.json"
    old.write_text(json.dumps(raw, indent=2))
    cert = load_certificate(old)
    assert cert.groups is None and certificate_problems(cert) == []
    again = cert.to_dict()
    assert "groups" not in again and again["integrity"]["digest"] == raw["integrity"]["digest"]


def _reseal(raw: dict) -> dict:
    """``raw`` with a plain sha256 digest recomputed over its content (what an editor can do)."""
    out = {k: v for k, v in raw.items() if k != "integrity"}
    out["integrity"] = {
        "algorithm": "sha256",
        "digest": hashlib.sha256(canonical_bytes(out)).hexdigest(),
        "key_id": None,
    }
    return out


@pytest.mark.parametrize(
    ("calibration", "flip", "how"),
    [
        (", groups: strata", "clusters", "row by row"),
        ("", "clusters", "row by row"),
        (", cluster: group", "strata", "with clusters as the sampling unit"),
        (", cluster: group", "unknown", "with clusters as the sampling unit"),
    ],
)
def test_flipped_declaration_is_caught_by_the_seal_and_by_the_checks(
    tmp_path, calibration, flip, how
):
    """An edited ``groups`` changes the sealed content: refused by the digest. Re-sealed with a plain
    digest, a declaration that contradicts how the results were certified (``clusters`` on row-level
    results, ``strata``/``unknown`` on cluster results) is refused by the consistency check; before
    it was checked, such a certificate loaded with no problem (red-team, 2026-12-03)."""
    _grouped_table(tmp_path / "t.parquet")
    assert main(["calibrate", str(_spec(tmp_path, calibration))]) == EXIT_OK
    raw = json.loads((tmp_path / "out" / "certificate.json").read_text())
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps({**raw, "groups": flip}))
    with pytest.raises(CTDInputError, match="does not match its digest"):
        load_certificate(edited)
    edited.write_text(json.dumps(_reseal({**raw, "groups": flip})))
    with pytest.raises(
        CTDInputError, match=f"groups = '{flip}' is recorded, but the result was "
    ) as err:
        load_certificate(edited)
    assert how in str(err.value) and "inconsistent certificate" in str(err.value)
    if flip == "clusters":  # strata <-> unknown on row-level results: consistent, loads
        other = "unknown" if raw["groups"] == "strata" else "strata"
        ok = tmp_path / "ok.json"
        ok.write_text(json.dumps(_reseal({**raw, "groups": other})))
        assert load_certificate(ok).groups == other


@pytest.mark.parametrize(
    ("lines", "where"),
    [
        (["cluster: conv", "groups: strata"], "s.yaml:6:11: calibration.groups: `strata` declares"),
        (["groups: strata", "cluster: conv"], "s.yaml:5:11: calibration.groups: `strata` declares"),
        (["groups: clusters"], "s.yaml:5:11: calibration.groups: `clusters` declares"),
        (["randomize: 5"], "s.yaml:5:14: calibration.randomize: the randomised boundary step"),
    ],
)
def test_a_rule_over_the_block_points_at_the_field_it_names(tmp_path, lines, where):
    """A rule checked over the calibration block (a model validator) is located at the line of the
    field its message names, which is named once; it pointed at the block's first key and read
    'calibration: calibration.groups: …' (red-team, 2026-12-03)."""
    p = tmp_path / "s.yaml"
    p.write_text(
        "data: {table: t.parquet}\noutputs: {directory: out}\ncalibration:\n  budget: 0.3\n"
        + "".join(f"  {x}\n" for x in lines)
    )
    with pytest.raises(CTDInputError) as err:
        load_spec(p)
    assert where in str(err.value), str(err.value)
    assert "calibration: calibration." not in str(err.value)

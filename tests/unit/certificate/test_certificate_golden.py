"""Pinned certificates: the statistical content of ``ctd calibrate`` on three specs over the shipped
example table (``specs/data/example-scores.csv``), compared with ``golden/<case>.json``.

The pinned values were checked equal, field by field and every p-value exactly, to the certificates
of the code before the pipeline-stage restructure (commit ac9fa42, package 0.1.0; see issue 17).
Compared: ``n``, ``seed``, ``data_sha256`` and every result (threshold, certified flag, reason,
guarantee text, every tested threshold with its p-value and counts, Pareto front, score
reference, randomisation/joint fields). Left out: ``created_at``, ``package_version`` and
``integrity`` (volatile), ``spec_sha256`` (the spec text written here) and the sampling declaration
(``assumption``, ``groups``), which is not statistical content. Floats are compared to a relative
1e-12 (``tests/_support/golden.py``). To regenerate after an *intended* change of behaviour:
``CTD_REGEN_CERT_GOLDEN=1 python -m pytest tests/unit/certificate/test_certificate_golden.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from ctd_stats.cli.entry import main
from tests._support.golden import assert_matches_golden

ROOT = Path(__file__).resolve().parents[3]
TABLE = ROOT / "specs" / "data" / "example-scores.csv"
GOLDEN = Path(__file__).parent / "golden"
PINNED = ("n", "seed", "data_sha256", "results")

# Each case: the calibration block (and its exit code). The budget 0.001 cannot be certified from
# 900 ht rows, so the budget-only case also pins a fail-closed entry.
CASES: dict[str, tuple[str, int]] = {
    "budget_only_fixed_sequence": (
        "{budget: [0.001, 0.2], delta: 0.1, pareto: false, procedure: fixed_sequence}",
        1,
    ),
    "pareto_opt_ht": ("{budget: [0.05, 0.3], delta: 0.1, pareto: true, split: opt_ht}", 0),
    "joint_max_p": ("{budget: [0.3], delta: 0.1, error_level: 0.2, joint: max_p}", 0),
}


def _calibrate(tmp_path: Path, name: str, calibration: str, expected_code: int) -> dict[str, Any]:
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(
        f"cascade: {{name: {name}}}\n"
        f"data: {{table: {json.dumps(str(TABLE))}}}\n"
        "splits: {opt: 0.25, ht: 0.45, eval: 0.3, seed: 3}\n"
        f"calibration: {calibration}\n"
        "outputs: {directory: out, formats: [json]}\n"
    )
    assert main(["calibrate", str(spec)]) == expected_code
    raw = json.loads((tmp_path / "out" / "certificate.json").read_text())
    return {key: raw[key] for key in PINNED}


@pytest.mark.parametrize("name", sorted(CASES))
def test_certificate_matches_golden(tmp_path: Path, name: str) -> None:
    calibration, code = CASES[name]
    got = _calibrate(tmp_path, name, calibration, code)
    path = GOLDEN / f"{name}.json"
    if os.environ.get("CTD_REGEN_CERT_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(json.dumps(got, indent=1, allow_nan=False) + "\n")
    assert_matches_golden(got, json.loads(path.read_text()), label=name)


def test_golden_covers_each_path() -> None:
    """The pinned files exercise what they claim: a fail-closed entry, an opt/ht Pareto front,
    the max-p joint procedure and the fixed-sequence boundary listing."""
    load = {name: json.loads((GOLDEN / f"{name}.json").read_text()) for name in CASES}
    impossible, ok = load["budget_only_fixed_sequence"]["results"]
    assert impossible["certified"] is False and impossible["threshold"] == "inf"
    assert ok["certified"] is True and ok["tested_scope"] == "fixed_sequence_boundary"
    for r in load["pareto_opt_ht"]["results"]:
        assert r["split"] == "opt_ht" and r["pareto_front"] and r["certified"] is True
    (joint,) = load["joint_max_p"]["results"]
    assert joint["procedure"] == "max_p" and joint["error_level"] == 0.2 and joint["tested"]

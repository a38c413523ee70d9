"""Pinned audit output: the full JSON result of ``audit_log`` and of ``ctd audit`` on small fixed,
seeded logs, compared with ``data/audit_pinned.json``.

The expected file was generated from the code before the audit module was split into pieces; it
guards against any change of behaviour (numbers, warnings, wording, field order). Floats are
compared to a relative 1e-12 (``tests/_support/golden.py``): their last bits depend on the installed
numpy/scipy/pandas builds, not on our code. Volatile fields
(creation time, package version, file paths) are dropped. To regenerate after an *intended* change:
``CTD_REGEN_AUDIT_PINNED=1 python -m pytest tests/unit/audit/test_audit_pinned.py``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from audit_fixtures import BUDGET, TAU, make_certificate, make_log

from ctd_stats.audit import audit_log, reference_from_scores
from ctd_stats.cli.entry import main
from ctd_stats.errors import CTDInputError
from tests._support.golden import assert_matches_golden

EXPECTED = Path(__file__).parent / "data" / "audit_pinned.json"
VOLATILE = ("created_at", "package_version", "log", "certificate")


def _stable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in VOLATILE}


def _reference(seed: int, n: int = 3000, power: float = 1.0) -> dict[str, Any]:
    return reference_from_scores(np.random.default_rng(seed).random(n) ** power).model_dump()


def _unsorted_log() -> pd.DataFrame:
    """Violating rate, numeric timestamps with a reversed block, mismatches and missing scores."""
    df = make_log(800, rate=0.16, seed=4)
    df["timestamp"] = 1_700_000_000.0 + 7.5 * np.arange(len(df))
    ts = df["timestamp"].to_numpy().copy()
    ts[600:650] = ts[600:650][::-1]
    df["timestamp"] = ts
    delegated = df["delegated"].to_numpy().copy()
    for i in (5, 100, 333, 450, 701, 790):
        delegated[i] = not delegated[i]
    df["delegated"] = delegated
    score = df["dv_score"].to_numpy().copy()
    score[[17, 18, 500]] = np.nan
    df["dv_score"] = score
    return df


def _library_cases() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    r = audit_log(
        make_log(2100, rate=0.09, seed=3),
        threshold=TAU,
        budget=BUDGET,
        score_reference=_reference(10),
        chunk_rows=400,
    )
    out["grouped_drift_auto"] = _stable(r.to_dict())
    unsorted = _unsorted_log()
    r = audit_log(unsorted, threshold=TAU, budget=BUDGET, window="200rows", chunk_rows=256)
    out["unsorted_mismatch_rows"] = _stable(r.to_dict())
    r = audit_log(
        unsorted,
        threshold=TAU,
        budget=BUDGET,
        alpha=0.1,
        window="30min",
        decision_rule="fixed_n",
        fail_on_mismatch=False,
        max_mismatch_rows=3,
        score_reference=_reference(11, power=0.7),
    )
    out["unsorted_fixed_n_time"] = _stable(r.to_dict())
    derived = make_log(600, rate=0.12, seed=5).drop(columns=["delegated"])
    r = audit_log(
        derived,
        threshold=TAU,
        budget=BUDGET,
        window="15min",
        score_reference=_reference(12, power=0.5),
        chunk_rows=300,
    )
    out["derived_decisions_drift"] = _stable(r.to_dict())
    decisions_only = make_log(500, rate=0.05, seed=6).drop(columns=["dv_score"])
    r = audit_log(decisions_only, threshold=TAU, budget=BUDGET, window="200rows", chunk_rows=150)
    out["decisions_only"] = _stable(r.to_dict())
    never = make_log(400, rate=0.1, seed=7, groups=False)
    r = audit_log(never, threshold=math.inf, budget=BUDGET, score_reference=_reference(13))
    out["never_delegate"] = _stable(r.to_dict())
    big = make_log(2100, rate=0.2, seed=8)
    r = audit_log(big, threshold=TAU, budget=BUDGET, chunk_rows=700, group_column="group")
    out["alarm_strided_trace"] = _stable(r.to_dict())
    return out


def _error_cases() -> dict[str, str]:
    out: dict[str, str] = {}
    cases: dict[str, tuple[pd.DataFrame, dict[str, Any]]] = {
        "empty": (make_log(10, seed=1).iloc[:0], {}),
        "missing_score_no_decision": (
            make_log(50, seed=1)
            .drop(columns=["delegated"])
            .assign(dv_score=lambda d: d["dv_score"].where(d.index != 7)),
            {},
        ),
        "bad_budget": (make_log(10, seed=1), {"budget": 1.5}),
        "bad_alpha": (make_log(10, seed=1), {"alpha": 0.0}),
        "bad_rule": (make_log(10, seed=1), {"decision_rule": "daily"}),
        "nan_threshold": (make_log(10, seed=1), {"threshold": math.nan}),
    }
    for name, (df, kw) in cases.items():
        args: dict[str, Any] = {"threshold": TAU, "budget": BUDGET, **kw}
        with pytest.raises(CTDInputError) as info:
            audit_log(df, **args)
        out[name] = str(info.value)
    return out


def _cli_cases(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    log = tmp_path / "log.parquet"
    make_log(500, rate=0.08, seed=9).to_parquet(log, index=False)
    cert = tmp_path / "certificate.json"
    ref = np.random.default_rng(14).random(4000)
    cert.write_text(json.dumps(make_certificate(reference=ref)))
    runs = {
        "cli_compliant_1h": ["--window", "1h"],
        "cli_fixed_n": ["--decision-rule", "fixed_n", "--alpha", "0.2"],
    }
    for name, extra in runs.items():
        folder = tmp_path / name
        argv = ["--json", "audit", "--certificate", str(cert), "--log", str(log)]
        code = main([*argv, "--out", str(folder), *extra])
        printed = json.loads(capsys.readouterr().out)
        printed.pop("outputs")
        data = json.loads((folder / "audit.json").read_text())
        out[name] = {"exit_code": code, "stdout": printed, "audit": _stable(data)}
    return out


def _dump(got: dict[str, dict[str, Any]]) -> str:
    """One line per case, so that a change shows up as a diff of the cases it touches."""
    lines = ["{"]
    for i, (section, cases) in enumerate(got.items()):
        lines.append(f" {json.dumps(section)}: {{")
        for j, (case, value) in enumerate(cases.items()):
            comma = "," if j + 1 < len(cases) else ""
            lines.append(f"  {json.dumps(case)}: {json.dumps(value, ensure_ascii=False)}{comma}")
        lines.append(" }," if i + 1 < len(got) else " }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def test_audit_output_is_pinned(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    got = {
        "library": _library_cases(),
        "errors": _error_cases(),
        "cli": _cli_cases(tmp_path, capsys),
    }
    got = json.loads(json.dumps(got))  # same JSON types as the file (tuples -> lists)
    if os.environ.get("CTD_REGEN_AUDIT_PINNED"):
        EXPECTED.parent.mkdir(parents=True, exist_ok=True)
        EXPECTED.write_text(_dump(got), encoding="utf-8")
    expected = json.loads(EXPECTED.read_text(encoding="utf-8"))
    assert list(got) == list(expected)
    for section in expected:
        assert list(got[section]) == list(expected[section]), section
        for case in expected[section]:
            assert_matches_golden(
                got[section][case], expected[section][case], label=f"{section}/{case}"
            )

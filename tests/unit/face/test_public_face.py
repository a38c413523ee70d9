"""The public face: ~20 lazy names; every result type is immutable and has to_dict()."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

import ctd_stats

RESULTS = (
    "Calibration",
    "CascadeCalibration",
    "Certificate",
    "Cascade",
    "AuditResult",
    "SimulationResult",
    "CascadeSimulationResult",
)
INPUTS = ("CascadeData", "ScoreTable")


def test_the_face_is_small_and_every_name_resolves():
    assert 15 <= len(ctd_stats.__all__) <= 22
    for name in ctd_stats.__all__:
        assert getattr(ctd_stats, name) is not None, name
    for name in ("load_certificate", "read_score_table", "audit_log", "CascadeSimulationResult"):
        assert name in ctd_stats.__all__


@pytest.mark.parametrize("name", RESULTS + INPUTS)
def test_result_and_input_types_are_frozen(name: str):
    cls = getattr(ctd_stats, name)
    if dataclasses.is_dataclass(cls):
        assert cls.__dataclass_params__.frozen, name  # type: ignore[attr-defined]
    else:
        assert cls.model_config.get("frozen"), name
    if name in RESULTS:
        assert callable(getattr(cls, "to_dict", None)), name


def test_import_is_lazy():
    code = (
        "import sys, ctd_stats; print(sorted(m for m in ('scipy', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_py_typed_ships():
    from importlib import resources

    assert resources.files("ctd_stats").joinpath("py.typed").is_file()


def test_certificate_to_json_dict_is_a_deprecated_alias_of_to_dict():
    import inspect

    src = inspect.getsource(ctd_stats.Certificate.to_json_dict)
    assert "DeprecationWarning" in src and "self.to_dict()" in src

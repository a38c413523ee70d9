"""Spec loading: valid specs, and one clear message per bad input (file:line:col: field: ...)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from ctd_stats.cli.entry import main
from ctd_stats.errors import EXIT_BAD_INPUT, CTDInputError
from ctd_stats.spec.cascade_spec import CascadeSpec, load_spec, spec_json_schema
from ctd_stats.spec.loader import parse_yaml

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((ROOT / "specs").glob("*.yaml"))


def _error(path: Path) -> str:
    with pytest.raises(CTDInputError) as info:
        load_spec(path)
    return str(info.value)


def test_minimal_spec_defaults(write_spec):
    spec = load_spec(write_spec("data: {table: scores.parquet}\n"))
    assert spec.calibration.budget == [0.3]
    assert spec.calibration.delta == 0.1
    assert spec.calibration.procedure == "fixed_sequence"
    assert spec.evaluation.repeats == 200 and spec.evaluation.batch_size == 128
    assert spec.table_path() == spec.base_dir / "scores.parquet"
    assert spec.sha256 is not None and len(spec.sha256) == 64


def test_scalar_budget_becomes_list(write_spec):
    spec = load_spec(write_spec("data: {table: t.csv}\ncalibration: {budget: 0.2}\n"))
    assert spec.calibration.budget == [0.2]
    assert spec.simulation_budgets() == [0.2]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_specs_validate(path, capsys, monkeypatch):
    """Every shipped spec is valid; model packages are pretended present (their absence is tested apart)."""
    from probes.spec import ProbesSpec

    monkeypatch.setattr(ProbesSpec, "missing_requirements", lambda self: ([], []))
    assert main(["validate", str(path)]) == 0
    assert "OK" in capsys.readouterr().out


def test_budget_out_of_range(write_spec):
    p = write_spec(
        """
        data:
          table: t.csv
        calibration:
          budget: 1.5
        """
    )
    msg = _error(p)
    assert msg.startswith(f"{p}:4:11: calibration.budget: ")
    assert "strictly between 0 and 1" in msg and "(got 1.5)" in msg


def test_budget_list_item_out_of_range(write_spec):
    p = write_spec("data: {table: t.csv}\ncalibration:\n  budget: [0.1, 0.0]\n")
    assert _error(p).startswith(f"{p}:3:17: calibration.budget[1]: ")


def test_negative_delta(write_spec):
    p = write_spec("data: {table: t.csv}\ncalibration:\n  delta: -0.1\n")
    msg = _error(p)
    assert msg.startswith(f"{p}:3:10: calibration.delta: ") and "(got -0.1)" in msg


def test_unknown_key_names_allowed_keys(write_spec):
    p = write_spec("data: {table: t.csv}\ncalibration:\n  budgett: 0.2\n")
    msg = _error(p)
    assert msg.startswith(f"{p}:3:3: calibration.budgett: unknown key 'budgett'")
    assert "budget" in msg and "delta" in msg


def test_wrong_type_and_enum(write_spec):
    p = write_spec(
        "data: {table: t.csv}\ncalibration: {procedure: bonf}\nsimulation: {trials: true}\n"
    )
    msg = _error(p)
    assert (
        "calibration.procedure: expected 'fixed_sequence', 'bonferroni' or 'holm' (got 'bonf')"
        in msg
    )
    assert "simulation.trials: expected a valid integer (got True)" in msg


def test_fractions_must_sum_to_at_most_one(write_spec):
    p = write_spec("data: {table: t.csv}\nsplits: {opt: 0.6, ht: 0.6}\n")
    msg = _error(p)
    assert f"{p}:2:9: splits: " in msg and "≤ 1" in msg


def test_population_params_checked(write_spec):
    p = write_spec(
        "data: {table: t.csv}\nsimulation:\n  population: {distribution: normal, params: {sd: 1}}\n"
    )
    assert "unknown parameter(s) sd for normal (expected: loc, scale)" in _error(p)


def test_data_or_probes_required(write_spec):
    p = write_spec("calibration: {budget: 0.2}\n")
    assert "expected `data.table`" in _error(p)


def test_malformed_yaml_reports_yaml_line(write_spec):
    p = write_spec("data:\n  table: t.csv\ncalibration: [0.1,\n")
    msg = _error(p)
    assert msg.startswith(f"{p}:4:1: invalid YAML")


def test_duplicate_key(write_spec):
    p = write_spec("data: {table: t.csv}\ndata: {table: u.csv}\n")
    assert _error(p) == f"{p}:2:1: data: duplicate key 'data'"


def test_unsafe_tags_are_rejected(write_spec):
    p = write_spec("data: !!python/object/apply:os.system ['true']\n")
    assert "invalid YAML" in _error(p)


def test_missing_file(tmp_path):
    assert _error(tmp_path / "nope.yaml") == f"{tmp_path / 'nope.yaml'}: file not found"


def test_empty_and_non_mapping(write_spec):
    assert "empty" in _error(write_spec(""))
    assert "expected a mapping at the top level" in _error(write_spec("- 1\n- 2\n"))


@pytest.mark.parametrize(
    "text, needle",
    [
        ("data: {table: t.csv}\ncalibration: {budget: 1.5}\n", "calibration.budget"),
        ("data: {table: t.csv}\ncalibration: {delta: -0.1}\n", "calibration.delta"),
        ("data: {table: t.csv}\nbogus: 1\n", "unknown key 'bogus'"),
        ("data: {table: t.csv\n", "invalid YAML"),
    ],
)
def test_cli_validate_bad_spec_exit_2(write_spec, capsys, text, needle):
    p = write_spec(text)
    assert main(["validate", str(p)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith(f"ctd: error: {p}:") and needle in err


def test_cli_validate_missing_spec(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "x.yaml")]) == EXIT_BAD_INPUT
    assert "file not found" in capsys.readouterr().err


def test_positions_of_nested_values():
    doc = parse_yaml("a:\n  b: [1, 2]\n", "x.yaml")
    assert doc.resolve(("a", "b", 1))[1].line == 2
    path, pos, exists = doc.resolve(("a", "c"))
    assert path == ("a", "c") and not exists and pos.line == 2


def test_schema_command_prints_json_schema(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "CascadeSpec"
    assert schema["additionalProperties"] is False
    assert {"data", "calibration", "simulation", "outputs", "probes"} <= set(schema["properties"])
    budget = schema["$defs"]["CalibrationSpec"]["properties"]["budget"]
    assert budget["default"] == [0.3] and "anyOf" in budget


def test_every_field_documented():
    def walk(model: type) -> None:
        for name, field in model.model_fields.items():  # type: ignore[attr-defined]
            assert field.description, f"{model.__name__}.{name} has no description"
            sub = getattr(field.annotation, "model_fields", None)
            if sub is not None:
                walk(field.annotation)  # type: ignore[arg-type]

    walk(CascadeSpec)
    assert spec_json_schema()["$defs"]


def test_spec_reference_is_up_to_date():
    path = ROOT / "scripts" / "gen_spec_reference.py"
    module_spec = importlib.util.spec_from_file_location("gen_spec_reference", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    current = (ROOT / "docs" / "spec-reference.md").read_text(encoding="utf-8")
    assert current == module.render(), "run: python scripts/gen_spec_reference.py"

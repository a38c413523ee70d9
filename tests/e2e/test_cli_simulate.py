"""``ctd simulate``: the built-in example and spec-driven simulations."""

from __future__ import annotations

import csv
import json

from ctd_stats.cli.entry import main
from ctd_stats.errors import EXIT_BAD_INPUT, EXIT_OK


def test_builtin_example_prints_table(capsys):
    assert main(["simulate", "--trials", "200"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "Built-in example" in out and "fixed_sequence" in out and "bonferroni" in out
    assert "violations" in out


def test_builtin_example_json(capsys):
    assert main(["simulate", "--trials", "300", "--json"]) == EXIT_OK
    payload = json.loads(capsys.readouterr().out)
    rows = payload["rows"]
    assert [r["procedure"] for r in rows] == ["fixed_sequence", "bonferroni"]
    for r in rows:
        assert r["n"] == 1000 and r["budget"] == 0.3 and r["delta"] == 0.1 and r["trials"] == 300
        assert r["ci_low"] <= r["violation_frequency"] <= r["ci_high"]
        assert r["ci_low"] <= 0.1  # the guarantee: violation frequency ≤ δ up to sampling error
        assert r["realized_q95"] <= 0.35


def test_spec_simulation_writes_outputs(write_spec, capsys):
    spec = write_spec(
        """
        data: {table: unused.parquet}
        calibration: {budget: [0.1, 0.3], delta: 0.1}
        simulation:
          population: {distribution: discrete, params: {values: [0, 1, 2], probs: [0.5, 0.3, 0.2]}}
          trials: 300
          sizes: [100, 400]
          procedures: [fixed_sequence]
        outputs: {directory: sim, formats: [md, html]}
        """
    )
    assert main(["simulate", str(spec)]) == EXIT_OK
    d = spec.parent / "sim"
    names = sorted(p.name for p in d.iterdir())
    assert names == [
        "manifest.json",
        "simulation.csv",
        "simulation.html",
        "simulation.json",
        "simulation.md",
        "simulation.png",
    ]
    with open(d / "simulation.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 and {r["n"] for r in rows} == {"100", "400"}
    assert (d / "simulation.png").read_bytes()[:4] == b"\x89PNG"
    assert "violation" in capsys.readouterr().out


def test_table_population(make_table, write_spec):
    make_table(n=400)
    spec = write_spec(
        """
        data: {table: scores.parquet}
        calibration: {budget: 0.2}
        simulation: {population: {kind: table}, trials: 200, sizes: [150], procedures: [bonferroni]}
        outputs: {directory: sim, formats: [json]}
        """
    )
    assert main(["--json", "simulate", str(spec)]) == EXIT_OK
    data = json.loads((spec.parent / "sim" / "simulation.json").read_text())
    assert "resampled" in data["population"] and data["rows"][0]["procedure"] == "bonferroni"


def test_bad_simulation_spec(write_spec, capsys):
    spec = write_spec("data: {table: t.csv}\nsimulation: {sizes: [0]}\n")
    assert main(["simulate", str(spec)]) == EXIT_BAD_INPUT
    assert "simulation.sizes[0]" in capsys.readouterr().err

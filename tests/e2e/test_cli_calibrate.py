"""``ctd calibrate`` end to end, in-process, on small generated tables (Parquet and CSV)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ctd_stats.certificate.checks import load_certificate
from ctd_stats.cli.entry import main
from ctd_stats.errors import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_NOT_CERTIFIED, EXIT_OK


@pytest.mark.parametrize("name", ["scores.parquet", "scores.csv"])
def test_calibrate_end_to_end(make_table, write_spec, capsys, name):
    table = make_table(name, n=700)
    spec = write_spec(
        f"""
        cascade: {{name: e2e, description: end-to-end test}}
        data: {{table: {name}}}
        calibration: {{budget: [0.2, 0.4], delta: 0.1}}
        outputs: {{directory: out}}
        """
    )
    assert main(["calibrate", str(spec)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "certified" in out and "wrote" in out
    d = spec.parent / "out"
    assert sorted(p.name for p in d.iterdir()) == [
        "certificate.json",
        "manifest.json",
        "report.html",
        "report.json",
        "report.md",
    ]
    cert = load_certificate(d / "certificate.json", spec_path=spec, data_path=table)
    assert [r.budget for r in cert.results] == [0.2, 0.4] and cert.any_certified
    html = (d / "report.html").read_text()
    # one figure for the expert's two budgets, one of the held-out evaluation
    assert html.count("data:image/png;base64,") == 2 and "end-to-end test" in html
    assert "Budget 0.2" in html and "Budget 0.4" in html
    md = (d / "report.md").read_text()
    assert md.startswith("# Calibration report — e2e") and "Pareto front" in md
    rep = json.loads((d / "report.json").read_text())
    assert rep["results"][0]["eval"]["n"] > 0


def test_budget_only_multi_expert_json(make_table, write_spec, capsys):
    make_table(weak=True, n=500, edit=lambda f: f.drop(columns=["label", "probe_prob"]))
    spec = write_spec(
        """
        data:
          table: scores.parquet
          experts: {strong: {expert_prob: expert_prob, dv_score: dv_score}, weak: {}}
        calibration: {budget: 0.3, pareto: false}
        outputs: {directory: out, formats: [json]}
        """
    )
    assert main(["--json", "calibrate", str(spec)]) == EXIT_OK
    payload = json.loads(capsys.readouterr().out)
    assert [r["expert"] for r in payload["results"]] == ["strong", "weak"]
    assert all(r["certified"] and r["method"] == "budget_only" for r in payload["results"])
    assert payload["exit_code"] == 0
    assert sorted(p.name for p in (spec.parent / "out").iterdir()) == [
        "certificate.json",
        "manifest.json",
        "report.json",
    ]


def test_nothing_certified_exit_1_still_writes_fail_closed(make_table, write_spec, capsys):
    make_table(n=60)
    spec = write_spec(
        """
        data: {table: scores.parquet}
        calibration: {budget: [0.01, 0.3], delta: 0.05, pareto: false}
        outputs: {directory: out, formats: [md, json]}
        """
    )
    assert main(["calibrate", str(spec)]) == EXIT_NOT_CERTIFIED
    assert "fail closed" in capsys.readouterr().out
    cert = load_certificate(spec.parent / "out" / "certificate.json")
    r = cert.result(budget=0.01)
    assert not r.certified and np.isinf(r.threshold) and r.reason
    assert cert.result(budget=0.3).certified
    assert "NOTHING CERTIFIED" in (spec.parent / "out" / "report.md").read_text()


def test_too_few_rows_for_every_budget_is_bad_input(make_table, write_spec, capsys):
    """n = 60 rows cannot certify budget 0.01 at δ = 0.05 even with no delegation (needs 299)."""
    make_table(n=60)
    spec = write_spec(
        """
        data: {table: scores.parquet}
        calibration: {budget: 0.01, delta: 0.05, pareto: false}
        outputs: {directory: out}
        """
    )
    assert main(["calibrate", str(spec)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "needs at least 299 rows" in err and "scores.parquet" in err
    assert not (spec.parent / "out" / "certificate.json").exists()


@pytest.mark.parametrize(
    "table_edit, spec_extra, needle",
    [
        (lambda f: f.drop(columns=["dv_score"]), "", "missing column 'dv_score'"),
        (lambda f: f.assign(dv_score=np.where(f.index == 3, np.nan, f.dv_score)), "", "row 3"),
        (
            lambda f: f.assign(label=np.where(f.index == 4, 3, f.label)),
            "",
            "expected labels 0 or 1",
        ),
        (lambda f: f.assign(expert_prob=f.expert_prob + 1), "", "expected probabilities in [0, 1]"),
        (None, "calibration: {budget: 1.5}\n", "calibration.budget"),
        (None, "calibration: {delta: -0.1}\n", "calibration.delta"),
        (None, "calibratoin: {}\n", "unknown key 'calibratoin'"),
    ],
    ids=["missing-column", "nan-dv", "labels", "probabilities", "budget", "delta", "unknown-key"],
)
def test_bad_input_exit_2_and_output_untouched(
    make_table, write_spec, capsys, table_edit, spec_extra, needle
):
    make_table(n=300, edit=table_edit)
    out = write_spec("x", name="placeholder").parent / "out"
    out.mkdir()
    (out / "certificate.json").write_text("previous")
    spec = write_spec(f"data: {{table: scores.parquet}}\noutputs: {{directory: out}}\n{spec_extra}")
    assert main(["calibrate", str(spec)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert needle in err and (str(spec) in err or "scores.parquet" in err)
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".out")] == []
    assert (out / "certificate.json").read_text() == "previous"


def test_failure_while_writing_leaves_nothing(make_table, write_spec, monkeypatch, capsys):
    make_table(n=300)
    spec = write_spec("data: {table: scores.parquet}\noutputs: {directory: out}\n")

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("ctd_stats.reports.calibration.build_calibration_report", boom)
    assert main(["calibrate", str(spec)]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: disk full" in err and "Traceback" not in err
    out = spec.parent / "out"
    left = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert left == [], left  # no certificate, no report, no staged temp file
    assert not [p for p in spec.parent.iterdir() if p.name.startswith(".out")]


def test_pareto_without_labels_is_bad_input(make_table, write_spec, capsys):
    def edit(f):
        f["split"] = np.where(f.index < 100, "ht", "eval")
        f["label"] = f["label"].astype(float)
        f.loc[5, "label"] = np.nan

    make_table(n=300, edit=edit)
    spec = write_spec("data: {table: scores.parquet}\n")
    assert main(["calibrate", str(spec)]) == EXIT_BAD_INPUT
    assert "needs label on every row it uses; row 5" in capsys.readouterr().err

"""Issue 21: flags and spec keys that would be ignored are refused, run sizes are capped and long runs
announce their duration, warnings are one line each, figure drawing shows progress, paths are
normalised."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from ctd_stats.cli.entry import main
from ctd_stats.cli.estimate import SplitEstimate, pilot_estimate
from ctd_stats.errors import EXIT_BAD_INPUT, EXIT_OK
from ctd_stats.limits import MAX_REPEATS, MAX_TRIALS
from tests.e2e.test_bad_inputs import _certificate, _log


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.mark.parametrize(
    "block, field, limit",
    [
        ("evaluation: {repeats: 100000000000000000000}", "evaluation.repeats", MAX_REPEATS),
        ("simulation: {trials: 100000000000000000000}", "simulation.trials", MAX_TRIALS),
    ],
)
def test_huge_repeats_and_trials_are_refused_by_validate(
    make_table, write_spec, capsys, block, field, limit
):
    """Before: `repeats: 100000000000000000000` passed validate and `ctd run` never ended."""
    make_table()
    spec = write_spec(f"data: {{table: scores.parquet}}\n{block}\n")
    assert main(["validate", str(spec)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"{spec}:2:" in err and field in err and f"{limit}" in err, err


def test_command_line_caps(make_table, write_spec, capsys):
    make_table()
    spec = write_spec("data: {table: scores.parquet}\n")
    assert main(["run", str(spec), "--repeats", str(MAX_REPEATS + 1)]) == EXIT_BAD_INPUT
    assert f"at most {MAX_REPEATS:,} repeats" in capsys.readouterr().err
    assert main(["simulate", "--trials", str(MAX_TRIALS + 1)]) == EXIT_BAD_INPUT
    assert f"at most {MAX_TRIALS:,} trials" in capsys.readouterr().err


def test_opt_fraction_without_pareto_is_refused(make_table, write_spec, capsys):
    """Before: `opt_fraction` with `pareto: false` was silently ignored."""
    make_table()
    spec = write_spec(
        "data: {table: scores.parquet}\ncalibration: {pareto: false, opt_fraction: 0.4}\n"
    )
    assert main(["validate", str(spec)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "calibration.opt_fraction" in err and "pareto: true" in err and f"{spec}:2:" in err
    spec = write_spec(
        "data: {table: scores.parquet}\ncalibration: {pareto: true, opt_fraction: 0.4}\n"
    )
    assert main(["validate", str(spec)]) == EXIT_OK


def test_detect_rate_with_fixed_n_is_refused(tmp_path, capsys):
    """Before: `--detect-rate` was ignored under `--decision-rule fixed_n`."""
    cert, log = _certificate(tmp_path), _log(tmp_path)
    capsys.readouterr()
    args = [
        "audit",
        "--certificate",
        str(cert),
        "--log",
        str(log),
        "--budget",
        "0.3",
        "--out",
        str(tmp_path / "a"),
    ]
    assert main([*args, "--decision-rule", "fixed_n", "--detect-rate", "2"]) == EXIT_BAD_INPUT
    assert "--detect-rate" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
    assert main([*args, "--detect-rate", "2"]) in (0, 1)


def test_split_estimate_announces_a_long_study_once() -> None:
    clock, lines = _Clock(), []
    est = SplitEstimate(10_000, 2, clock=clock, emit=lines.append)
    clock.t = 3.0  # the guarantee check, then the first piece of 25 splits
    est.update(25)
    clock.t = 4.0  # 25 more splits in 1 s
    est.update(25)
    assert est.estimate_s == pytest.approx(2 * (3.0 + (10_000 - 25) * 0.04))
    assert len(lines) == 1 and "10,000 splits × 2 experts" in lines[0] and "min" in lines[0]
    clock.t = 5.0
    est.update(25)
    assert len(lines) == 1


def test_split_estimate_is_quiet_for_a_short_study() -> None:
    clock, lines = _Clock(), []
    est = SplitEstimate(200, 1, clock=clock, emit=lines.append)
    for _ in range(8):
        clock.t += 0.1
        est.update(25)
    assert est.estimate_s is not None and est.estimate_s < 2 and lines == []


def test_pilot_estimate_scales_and_announces() -> None:
    clock, lines = _Clock(), []

    def pilot(trials: int) -> None:
        clock.t += 0.001 * trials

    assert pilot_estimate(
        pilot, 200, 1_000_000, "sets", clock=clock, emit=lines.append
    ) == pytest.approx(1000)
    assert len(lines) == 1 and "1,000,000 sets" in lines[0] and "16.7 min" in lines[0]


def test_large_simulation_announces_its_duration(monkeypatch, capsys):
    import ctd_stats.cli.estimate as est

    seen: list[int] = []

    def fake(pilot, units, total, what, **kw):
        seen.append(total)
        return 0.0

    monkeypatch.setattr(est, "pilot_estimate", fake)
    monkeypatch.setattr(
        "ctd_stats.study.simulation_grid.simulate_grid",
        lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt),
    )
    assert main(["simulate", "--trials", "50000"]) == 130
    assert seen == [50_000 * 2]


def test_library_warnings_are_one_line_each(make_table, write_spec, monkeypatch, capsys):
    """Before: numpy/matplotlib warnings reached stderr in Python's two-line form with source lines."""
    make_table()
    spec = write_spec("data: {table: scores.parquet}\n")
    import ctd_stats.cli.validate as validate

    real = validate.check

    def noisy(path: str):
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            np.mean(np.array([]))
            np.mean(np.array([]))
            warnings.warn("first line\n   second line", UserWarning, stacklevel=1)
        return real(path)

    monkeypatch.setattr(validate, "check", noisy)
    assert main(["validate", str(spec)]) == EXIT_OK
    err = capsys.readouterr().err.splitlines()
    assert err.count("ctd: warning: Mean of empty slice (RuntimeWarning from numpy)") == 1, err
    assert "ctd: warning: first line second line (UserWarning)" in err
    assert all(line.startswith("ctd: warning: ") for line in err), err


def test_drawing_figures_shows_progress(make_table, write_spec, monkeypatch, capsys):
    """Before: a 1,000-budget calibrate drew figures for minutes with no progress line."""
    import ctd_stats.cli.progress as prog

    make_table(n=1200)
    budgets = ", ".join(f"{b:.2f}" for b in np.linspace(0.2, 0.5, 6))
    spec = write_spec(
        f"data: {{table: scores.parquet}}\ncalibration: {{budget: [{budgets}], pareto: false}}\n"
        "outputs: {directory: out, formats: [md]}\n"
    )
    monkeypatch.setenv("CI", "1")
    monkeypatch.setattr(prog, "QUIET_FOR", 0.0)
    assert main(["calibrate", str(spec)]) == EXIT_OK
    err = capsys.readouterr().err
    # six budgets of one expert: two figures (four budgets, then two)
    assert "ctd: drawing figures: 1/2" in err and "ctd: drawing figures: done, 2" in err, err


def test_ctd_run_shows_progress_while_drawing_study_figures(
    make_table, write_spec, monkeypatch, capsys
):
    """Before: `ctd run` drew the study's figures with no progress line (only calibrate had one)."""
    import ctd_stats.cli.progress as prog

    make_table(n=1200)
    spec = write_spec(
        "data: {table: scores.parquet}\ncalibration: {budget: [0.2, 0.3], pareto: false}\n"
        "evaluation: {repeats: 4, budgets: [0.2, 0.3]}\n"
        "outputs: {directory: out, formats: [md]}\n"
    )
    monkeypatch.setenv("CI", "1")
    monkeypatch.setattr(prog, "QUIET_FOR", 0.0)
    assert main(["run", str(spec)]) == EXIT_OK
    err = capsys.readouterr().err
    assert "ctd: drawing study figures: done" in err, err


def test_paths_in_reports_are_normalised(make_table, write_spec, tmp_path):
    """Before: the report showed `…/specs/../data/scores.parquet`."""
    from ctd_stats.spec.cascade_spec import load_spec

    make_table()
    (tmp_path / "specs").mkdir()
    spec = write_spec(
        "data: {table: ../scores.parquet}\noutputs: {directory: ../out}\n", name="specs/s.yaml"
    )
    s = load_spec(spec)
    assert s.table_path() == tmp_path.resolve() / "scores.parquet"
    assert s.output_dir() == tmp_path.resolve() / "out"
    assert main(["calibrate", str(spec)]) == EXIT_OK
    report = (tmp_path / "out" / "report.md").read_text().replace("\\", "")  # Markdown escapes
    assert "/../" not in report and str(tmp_path.resolve() / "scores.parquet") in report

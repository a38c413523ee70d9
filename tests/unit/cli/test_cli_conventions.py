"""Issue 21: the command-line conventions people expect: -V/--version, python -m ctd_stats, global
-q/-v anywhere on the line, bare `ctd` prints the help and exits 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ctd_stats import __version__
from ctd_stats.cli.entry import main
from ctd_stats.errors import EXIT_BAD_INPUT, EXIT_OK

ROOT = Path(__file__).resolve().parents[3]
SPEC = "data: {table: scores.parquet}\ncalibration: {budget: [0.2, 0.3, 0.4], pareto: false}\noutputs: {formats: [md]}\n"


def test_bare_ctd_prints_help_and_exits_0(capsys) -> None:
    """Before: exit 2. Convention chosen: pip's (help on stdout, exit 0); a usage error stays 2."""
    assert main([]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith("Usage: ctd") and "calibrate" in out
    assert main(["no-such-command"]) == EXIT_BAD_INPUT


def test_short_version_flag(capsys) -> None:
    assert main(["-V"]) == EXIT_OK
    assert capsys.readouterr().out.strip() == f"ctd {__version__}"


def test_python_dash_m() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ctd_stats", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0 and proc.stdout.strip() == f"ctd {__version__}", proc.stderr


def test_quiet_and_verbose_anywhere_on_the_line(
    make_table, write_spec, monkeypatch, capsys, tmp_path
) -> None:
    make_table(n=1200)
    spec = write_spec(SPEC)
    monkeypatch.setenv("CI", "1")
    # -v: plain progress lines from the start of every stage (the default waits 5 s)
    assert main(["calibrate", str(spec), "-o", str(tmp_path / "v"), "-v"]) == EXIT_OK
    assert "ctd: drawing figures: 1/1" in capsys.readouterr().err  # 3 budgets: one figure
    assert main(["calibrate", str(spec), "-o", str(tmp_path / "d")]) == EXIT_OK
    assert "drawing figures" not in capsys.readouterr().err
    # -q: no progress and no warnings, even where they would show
    monkeypatch.setattr("ctd_stats.cli.progress.QUIET_FOR", 0.0)
    assert main(["-q", "calibrate", str(spec), "-o", str(tmp_path / "q")]) == EXIT_OK
    assert capsys.readouterr().err == ""
    assert main(["calibrate", str(spec), "--quiet", "-o", str(tmp_path / "q2")]) == EXIT_OK
    assert capsys.readouterr().err == ""

"""The click command line (issue 21): typed values refused in one line before anything runs,
``--help`` of every command, database URLs passed through as text, argparse plug-ins still run.

Before the port (argparse by hand): a usage error printed the usage block and then the error (two
lines or more); ``ctd serve --port 70000`` was checked only after the serve extra and the token; the
help started with ``usage:``.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path

import pytest

from ctd_stats.cli.entry import COMMAND_MODULES, main
from ctd_stats.errors import EXIT_BAD_INPUT, EXIT_OK, CTDInputError

COMMANDS = [m.rsplit(".", 1)[1] for m in COMMAND_MODULES]
URL = "postgresql://ctd@db.internal:5432/decisions"


@pytest.mark.parametrize("name", COMMANDS)
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_every_command_has_help(name: str, flag: str, capsys) -> None:
    assert main([name, flag]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith(f"Usage: ctd {name}"), out
    assert "Options:" in out and "--help" in out


def test_top_level_help_lists_every_command_in_order(capsys) -> None:
    assert main(["--help"]) == EXIT_OK
    out = capsys.readouterr().out
    section = out.split("Commands:")[1].splitlines()
    listed = [line.split()[0] for line in section if line[:2] == "  " and line[2:3] != " "]
    assert listed[: len(COMMANDS)] == COMMANDS, out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["serve"], "missing option --certificate"),
        (["run"], "missing argument SPEC"),
        (["run", "s.yaml", "--engine", "spark"], "--engine: 'spark' is not one of"),
        (["run", "s.yaml", "--repeats", "0"], "--repeats: must be a positive integer"),
        (["simulate", "--seed", "-3"], "--seed: a seed must be ≥ 0, got -3"),
        (["audit", "--certificate", "c.json", "--log", "l", "--alpha", "1"], "--alpha: must be in (0, 1)"),
        (["audit", "--decision-rule", "bayes"], "--decision-rule: 'bayes' is not one of"),
        (["serve", "--certificate", "nowhere.json"], "--certificate: nowhere.json: certificate not found"),
        (["serve", "--certificate", "c.json", "--keep-alive-timeout", "0"], "--keep-alive-timeout: must be a finite number > 0"),
        (["serve", "--certificate", "c.json", "--max-batch", "0"], "--max-batch"),
        (["serve", "--certificate", "c.json", "--probes", "m", "--scores-only"], "not allowed with argument --probes"),
        (["completion", "tcsh"], "SHELL"),
        (["calibrate", "s.yaml", "--frobnicate"], "No such option"),
        (["no-such-command"], "No such command"),
    ],
)  # fmt: skip
def test_usage_errors_are_one_line_exit_2_naming_the_option(
    argv: list[str], needle: str, capsys, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.json").write_text("{}")
    assert main(argv) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("ctd: error: ") and needle in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json"]  # nothing created


def test_bad_port_is_refused_first_and_before_anything_is_created(
    capsys, tmp_path: Path, monkeypatch
) -> None:
    """The port is typed (1-65535): refused before the serve extra, the token or the log."""
    monkeypatch.delenv("CTD_SERVE_TOKEN", raising=False)  # would be the first error before
    cert = tmp_path / "certificate.json"
    cert.write_text("{}")
    db = tmp_path / "sub" / "gateway.db"
    for port in ("70000", "0", "-1", "http"):
        code = main(["serve", "--certificate", str(cert), "--db", str(db), "--port", port])
        err = capsys.readouterr().err.strip()
        assert (
            code == EXIT_BAD_INPUT
            and err.count("\n") == 0
            and f"--port {port}" in err.replace("'", "")
        ), err
        assert not db.parent.exists()
    assert main(["serve", "--help"]) == EXIT_OK
    assert "[1<=x<=65535]" in capsys.readouterr().out


def test_json_error_on_stdout_for_a_usage_error(capsys) -> None:
    assert main(["--json", "simulate", "--trials", "0"]) == EXIT_BAD_INPUT
    out = capsys.readouterr()
    assert json.loads(out.out)["exit_code"] == EXIT_BAD_INPUT
    assert "--trials" in out.err


def test_serve_passes_a_database_url_through_as_text(capsys, tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    import serve.config

    seen: dict[str, object] = {}

    def capture(**kw: object) -> None:
        seen.update(kw)
        raise CTDInputError("stop here")

    monkeypatch.setattr(serve.config, "GatewayConfig", capture)
    monkeypatch.setenv("CTD_SERVE_TOKEN", "t" * 32)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.json").write_text("{}")
    assert main(["serve", "--certificate", "c.json", "--db", URL]) == EXIT_BAD_INPUT
    assert seen["db"] == URL and isinstance(seen["db"], str)
    assert main(["serve", "--certificate", "c.json", "--db", "logs/d.db"]) == EXIT_BAD_INPUT
    assert seen["db"] == Path("logs/d.db")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json"]


def test_audit_passes_a_database_url_through_as_text(capsys, tmp_path: Path, monkeypatch) -> None:
    import ctd_stats.audit.run
    import ctd_stats.cli.audit as audit_cli

    seen: list[object] = []

    def capture(log: object, **kw: object) -> None:
        seen.append(log)
        raise CTDInputError("stop here")

    rule = types.SimpleNamespace(threshold=0.5, budget=0.2, expert="e", result=None)
    monkeypatch.setattr(audit_cli, "load_rule", lambda *a, **k: rule)
    monkeypatch.setattr(audit_cli, "check_manifest", lambda *a: None)
    monkeypatch.setattr(ctd_stats.audit.run, "audit_log", capture)
    cert = tmp_path / "c.json"
    cert.write_text("{}")
    assert main(["audit", "--certificate", str(cert), "--log", URL]) == EXIT_BAD_INPUT
    assert seen == [URL]


def test_an_argparse_plugin_still_runs(monkeypatch, capsys) -> None:
    """A plug-in written for 0.2 (``register(subparsers)``) runs unchanged: its options, its help,
    its usage errors as one line, and the global --json."""

    def register(subparsers: object) -> None:
        p = subparsers.add_parser("hello", help="say hello", description="Say hello N times.")  # type: ignore[attr-defined]
        p.add_argument("--n", type=int, default=1)
        p.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
        p.set_defaults(func=lambda a: 10 + a.n + 5 * getattr(a, "json", False))

    plugin = types.ModuleType("fake_ctd_plugin")
    plugin.register = register  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_ctd_plugin", plugin)
    monkeypatch.setattr("ctd_stats.cli.entry.load_plugins", lambda: ("fake_ctd_plugin",))
    assert main(["hello", "--n", "3"]) == 13
    assert main(["--json", "hello"]) == 16
    assert main(["hello", "--n", "x"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--n" in err and "invalid int value" in err, err
    assert main(["hello", "--help"]) == EXIT_OK
    assert "Say hello N times." in capsys.readouterr().out
    assert main(["--help"]) == EXIT_OK
    assert "say hello" in capsys.readouterr().out


def test_the_cli_reference_is_current() -> None:
    """docs/cli.md is the commands' own help (regenerate: python -m ctd_stats.cli.reference)."""
    from ctd_stats.cli.reference import markdown

    root = Path(__file__).resolve().parents[3]
    assert (root / "docs" / "cli.md").read_text(encoding="utf-8") == markdown(), (
        "run: python -m ctd_stats.cli.reference > docs/cli.md"
    )


def test_validate_imports_only_its_own_command_module() -> None:
    """Commands are imported on first use: `ctd validate` loads neither the other commands nor
    the report writers (the argparse CLI imported every command module to build its parser)."""
    import subprocess

    root = Path(__file__).resolve().parents[3]
    code = (
        "import json, sys\nfrom ctd_stats.cli.entry import main\n"
        f"rc = main(['validate', {str(root / 'specs' / 'demo.yaml')!r}])\n"
        "mods = [m for m in ('ctd_stats.cli.run', 'ctd_stats.cli.serve', 'ctd_stats.cli.audit', "
        "'ctd_stats.cli.simulate', 'ctd_stats.reports.outputs') if m in sys.modules]\n"
        "print(json.dumps([rc, mods]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=root
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1]) == [0, []]

"""``ctd serve`` on the command line, and the layering rule: the core never imports the gateway."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from gateway_fixtures import TOKEN

from ctd_stats.cli.entry import main

ROOT = Path(__file__).resolve().parents[3]
GATEWAY_MODULES = ("serve", "fastapi", "uvicorn", "starlette")


def test_help_does_not_import_the_gateway():
    code = (
        "import sys\nfrom ctd_stats.cli.entry import help_text\nhelp_text()\n"
        f"print([m for m in {GATEWAY_MODULES!r} if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_core_modules_import_the_gateway_only_lazily_in_the_serve_command():
    """No module of ctd_stats imports serve/fastapi/uvicorn at module level."""
    offenders = []
    for f in sorted((ROOT / "ctd_stats").rglob("*.py")):
        tree = ast.parse(f.read_text(encoding="utf-8"))
        for node in tree.body:  # module level only
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{f.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in GATEWAY_MODULES
            ]
    assert offenders == []


def test_missing_fastapi_is_one_line_exit_2(monkeypatch, capsys, certificate):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "fastapi" else real(name, *a)
    )
    assert main(["serve", "--certificate", str(certificate)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pip install -e '.[serve]'" in err


def test_no_token_is_exit_2(monkeypatch, capsys, certificate):
    monkeypatch.delenv("CTD_SERVE_TOKEN", raising=False)
    assert main(["serve", "--certificate", str(certificate)]) == 2
    assert "CTD_SERVE_TOKEN" in capsys.readouterr().err


def test_short_token_and_token_file(monkeypatch, capsys, certificate, tmp_path):
    monkeypatch.setenv("CTD_SERVE_TOKEN", "short")
    assert main(["serve", "--certificate", str(certificate)]) == 2
    assert "at least 16 characters" in capsys.readouterr().err
    from serve.config import Token

    f = tmp_path / "token"
    f.write_text(TOKEN + "\n")
    token = Token.load(f)
    assert token.matches(f"Bearer {TOKEN}") and not token.matches(f"Bearer {TOKEN}x")
    assert TOKEN not in repr(token)


def test_missing_certificate_is_exit_2(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("CTD_SERVE_TOKEN", TOKEN)
    assert (
        main(
            ["serve", "--certificate", str(tmp_path / "nope.json"), "--db", str(tmp_path / "d.db")]
        )
        == 2
    )
    assert "certificate not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flag", "needle"),
    [
        (["--probes", "nowhere"], "no monitor bundle here"),
        (["--probes", "nowhere", "--scores-only"], "not allowed with argument --probes"),
    ],
)
def test_text_mode_needs_a_monitor_bundle(monkeypatch, capsys, certificate, flag, needle):
    monkeypatch.setenv("CTD_SERVE_TOKEN", TOKEN)
    assert main(["serve", "--certificate", str(certificate), *flag]) == 2
    assert needle in capsys.readouterr().err


#: Every ``--expert-*`` option of ``ctd serve`` but ``--expert-url``, with a value to give it. The
#: mode and the timeout are given their default values: a flag the user typed is refused even when
#: it repeats the default (the check is on click's parameter source, not on the value).
EXPERT_FLAGS = [
    ("--expert-model", "gpt-x"),
    ("--expert-mode", "chat"),
    ("--expert-key-env", "EXPERT_KEY"),
    ("--expert-timeout", "10"),
]


@pytest.fixture
def started(monkeypatch) -> list[int]:
    """``ctd serve`` runs up to the server loop, which returns at once (no port, no waiting)."""
    import socket

    import uvicorn

    from ctd_stats.cli import serve as serve_cli

    runs: list[int] = []
    monkeypatch.setenv("CTD_SERVE_TOKEN", TOKEN)
    monkeypatch.setattr(serve_cli, "bind_listener", lambda host, port: socket.socket())
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: runs.append(1))
    return runs


def test_every_expert_option_is_covered():
    from ctd_stats.cli.serve import command

    names = {o for p in command.params for o in p.opts if o.startswith("--expert-")}
    assert names - {"--expert-url"} == {flag for flag, _ in EXPERT_FLAGS}


@pytest.mark.parametrize(("flag", "value"), EXPERT_FLAGS)
def test_expert_options_without_expert_url_are_refused(
    capsys, tmp_path, certificate, started, flag, value
):
    """Issue 21 item 7. Before: the option was silently ignored (no URL, no expert) and the
    gateway started; now exit 2, one line naming it, before the log or its lock is created."""
    db = tmp_path / "d.db"
    code = main(["serve", "--certificate", str(certificate), "--db", str(db), flag, value])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.count("\n") == 0 and flag in err and "--expert-url" in err
    assert started == [] and sorted(tmp_path.glob("d.db*")) == []


def test_several_expert_options_are_named_together(capsys, tmp_path, certificate, started):
    db = tmp_path / "d.db"
    args = ["serve", "--certificate", str(certificate), "--db", str(db)]
    assert main([*args, "--expert-model", "m", "--expert-timeout", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--expert-model" in err and "--expert-timeout" in err
    assert sorted(tmp_path.glob("d.db*")) == []


def test_expert_options_with_expert_url_start_the_gateway(
    monkeypatch, capsys, tmp_path, certificate, started
):
    monkeypatch.setenv("EXPERT_KEY", "not-a-real-key")
    db = tmp_path / "d.db"
    flags = [x for pair in EXPERT_FLAGS for x in pair]
    args = ["serve", "--certificate", str(certificate), "--db", str(db)]
    assert main([*args, "--expert-url", "http://127.0.0.1:9/v1", *flags]) == 0, (
        capsys.readouterr().err
    )
    assert started == [1] and db.is_file()


def test_expert_url_without_expert_model_is_refused_before_anything_starts(
    monkeypatch, capsys, tmp_path, certificate, started
):
    """Before: refused only inside the server start-up (after the port was bound and a --probes
    model loaded); now exit 2, one line, no port bound, nothing created."""
    from ctd_stats.cli import serve as serve_cli

    bound: list[int] = []
    monkeypatch.setattr(serve_cli, "bind_listener", lambda host, port: bound.append(port))
    db = tmp_path / "d.db"
    args = ["serve", "--certificate", str(certificate), "--db", str(db)]
    assert main([*args, "--expert-url", "http://127.0.0.1:9/v1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--expert-url needs --expert-model" in err
    assert bound == [] and started == [] and sorted(tmp_path.glob("d.db*")) == []

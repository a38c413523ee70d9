"""``ctd completion bash|zsh|fish`` (issue 21): click's own completion, wired to every command.

The scripts ask ``ctd`` itself at each TAB (``_CTD_COMPLETE=<shell>_complete``), so the tests drive
that protocol through :func:`ctd_stats.cli.entry.main` for each shell, and once end to end in bash
(the generated function, sourced, calling a real ``ctd``). Before the click port the command
accepted only bash and zsh and the answers came from a hand-written bash function.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ctd_stats.cli.entry import main

ROOT = Path(__file__).resolve().parents[3]


def _script(shell: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["completion", shell]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("bash", "complete -o nosort -F _ctd_completion ctd"),
        ("zsh", "compdef _ctd_completion ctd"),
        ("fish", "complete --no-files --command ctd"),
    ],
)
def test_each_shell_gets_clicks_script(shell: str, marker: str, capsys) -> None:
    text = _script(shell, capsys)
    assert marker in text and f"_CTD_COMPLETE={shell}_complete" in text, text
    checker = {"bash": ["bash", "-n"], "zsh": ["zsh", "-n"], "fish": ["fish", "--no-execute"]}
    if shutil.which(checker[shell][0]):  # the syntax, where the shell is installed
        assert subprocess.run(checker[shell], input=text, text=True).returncode == 0


def test_unknown_shell_is_one_line_exit_2(capsys) -> None:
    assert main(["completion", "tcsh"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "SHELL" in err and "tcsh" in err, err


def _ask(monkeypatch, capsys, shell: str, words: list[str]) -> list[str]:
    """What ``ctd`` answers the shell for ``words`` (the last one being completed): the values."""
    monkeypatch.setenv("_CTD_COMPLETE", f"{shell}_complete")
    monkeypatch.setenv("COMP_WORDS", " ".join(words))
    # fish passes the incomplete word itself, bash and zsh its index
    monkeypatch.setenv("COMP_CWORD", words[-1] if shell == "fish" else str(len(words) - 1))
    assert main([]) == 0
    out = capsys.readouterr().out
    if shell == "bash":  # "type,value" per line
        return [line.split(",", 1)[1] for line in out.splitlines() if line]
    if shell == "zsh":  # type, value, help: three lines per item
        lines = out.splitlines()
        return [lines[i + 1] for i in range(0, len(lines), 3)]
    return [line.split(",", 1)[1].split("\t")[0] for line in out.splitlines() if line]  # fish


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completes_commands_options_and_choices(monkeypatch, capsys, shell: str) -> None:
    def ask(*words: str) -> list[str]:
        return _ask(monkeypatch, capsys, shell, ["ctd", *words])

    assert ask("cal") == ["calibrate"]
    assert set(ask("-")) >= {"--version", "-V", "--quiet", "-q", "--verbose", "-v", "--json"}
    assert ask("calibrate", "--fo") == ["--force"]
    assert ask("audit", "--decision-rule", "f") == ["fixed_n"]
    assert ask("run", "--engine", "") == ["local", "ray"]
    assert ask("completion", "") == ["bash", "zsh", "fish"]
    assert ask("serve", "--on-alarm", "") == ["never-delegate", "continue"]
    # -q/-v after the command do not break the completion of what follows
    assert ask("calibrate", "-q", "--fo") == ["--force"]


def test_paths_complete_as_files_or_folders(monkeypatch, capsys) -> None:
    monkeypatch.setenv("_CTD_COMPLETE", "bash_complete")

    def kinds(*words: str) -> list[str]:
        monkeypatch.setenv("COMP_WORDS", " ".join(["ctd", *words]))
        monkeypatch.setenv("COMP_CWORD", str(len(words)))
        assert main([]) == 0
        lines = capsys.readouterr().out.splitlines()
        return [line.split(",", 1)[0] for line in lines if line]

    assert kinds("validate", "sp") == ["file"]
    assert kinds("run", "s.yaml", "-o", "ou") == ["dir"]
    assert kinds("audit", "--certificate", "ce") == ["file"]
    assert kinds("serve", "--probes", "mo") == ["dir"]
    assert kinds("audit", "--log", "postgresql://") == []  # a URL is not a file name


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_bash_script_completes_through_a_real_ctd(tmp_path: Path, capsys) -> None:
    """The generated function, sourced in bash, runs ``ctd`` and fills COMPREPLY."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    wrapper = bindir / "ctd"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m ctd_stats "$@"\n')
    wrapper.chmod(0o755)
    script = _script("bash", capsys)
    code = (
        f"{script}\nCOMP_WORDS=(ctd audit --decision-rule f); COMP_CWORD=3\n"
        "_ctd_completion ctd 2>/dev/null; printf '%s\\n' \"${COMPREPLY[@]}\""
    )
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(["bash", "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["fixed_n"]

"""``ctd completion bash`` (issue 21): a valid bash script that completes commands, options and choices."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from ctd_stats.cli.completion import bash_script
from ctd_stats.cli.entry import main

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _complete(words: list[str]) -> list[str]:
    """What the generated function offers for ``words`` (the last one being completed)."""
    script = bash_script()
    quoted = " ".join(f"'{w}'" for w in words)
    code = f"{script}\nCOMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; _ctd; printf '%s\\n' \"${{COMPREPLY[@]}}\""
    out = subprocess.run(["bash", "-c", code], capture_output=True, text=True, timeout=30, cwd="/")
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_script_is_valid_bash_and_printed_by_the_command(capsys) -> None:
    assert main(["completion", "bash"]) == 0
    text = capsys.readouterr().out
    assert "complete -o filenames -F _ctd ctd" in text
    assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0
    assert main(["completion", "zsh"]) == 0
    assert capsys.readouterr().out.startswith("autoload -U +X bashcompinit && bashcompinit")


def test_completes_commands_options_and_choices() -> None:
    assert _complete(["ctd", "cal"]) == ["calibrate"]
    assert set(_complete(["ctd", "-"])) >= {"--version", "-V", "--quiet", "-q", "--verbose", "-v"}
    assert _complete(["ctd", "calibrate", "--fo"]) == ["--force"]
    assert _complete(["ctd", "audit", "--decision-rule", "f"]) == ["fixed_n"]
    assert _complete(["ctd", "run", "--engine", ""]) == ["local", "ray"]

"""The command-line reference (``docs/cli.md``), generated from the click commands themselves.

``python -m ctd_stats.cli.reference > docs/cli.md`` rewrites it; a test checks that it is current,
so the reference never documents an option the command line does not have.
"""

from __future__ import annotations

import click

from ctd_stats.cli.entry import COMMAND_MODULES, build_cli

#: Help text width of the reference (fixed, so the file does not depend on the terminal).
WIDTH = 100

INTRO = """\
# Command-line reference

Generated from the command line itself (`python -m ctd_stats.cli.reference > docs/cli.md`; a test
checks that this file is current). Every command also answers `--help` (or `-h`).

Conventions: bare `ctd` prints the help (exit 0); `ctd -V` prints the version; `-q` (no progress
lines, estimates or warnings), `-v` (progress from the first second) and `--debug` (the traceback
of an error) go anywhere on the line; `--json` goes before or after the command. A bad value
(a port outside 1-65535, `--trials 0`, an unknown `--engine`) is refused in one line naming the
option, with exit code 2, before anything runs. Exit codes: 0 ok, 1 not certified / violation found
(outputs still written), 2 bad input or usage error, 3 internal error, 130 interrupted, 143
terminated. `python -m ctd_stats` is the same command line. `ctd scores` (the probes layer's
plug-in, `pip install -e '.[probes]'`) documents itself: `ctd scores --help`.

Shell completion (click's own): `source <(ctd completion bash)`, `source <(ctd completion zsh)`
(after `compinit`), or `ctd completion fish > ~/.config/fish/completions/ctd.fish`.
"""


def _help(command: click.Command, parent: click.Context | None, name: str) -> str:
    ctx = click.Context(command, parent=parent, info_name=name, terminal_width=WIDTH)
    return command.get_help(ctx)


def markdown() -> str:
    """The reference: the top-level help, then each built-in command's help, in ``--help`` order."""
    cli = build_cli(plugins=False)
    root = click.Context(cli, info_name="ctd", terminal_width=WIDTH, **cli.context_settings)
    parts = [INTRO, "## ctd\n\n```text\n" + cli.get_help(root) + "\n```\n"]
    for module in COMMAND_MODULES:
        name = module.rsplit(".", 1)[1]
        command = cli.get_command(root, name)
        assert command is not None
        parts.append(f"## ctd {name}\n\n```text\n{_help(command, root, name)}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":  # pragma: no cover
    print(markdown(), end="")

"""``ctd completion bash|zsh|fish``: print click's shell completion script for ``ctd``.

The script asks ``ctd`` itself what to offer at each TAB (click's completion protocol: the shell
runs ``ctd`` with ``_CTD_COMPLETE=<shell>_complete`` and the words typed so far), so it completes
the commands, each command's options, the choices of options that have them (``--engine`` ->
``local ray``) and file or folder names where a path is expected, and never offers an option the
command line does not accept. Install: ``ctd completion bash > ~/.local/share/bash-completion/completions/ctd``
(or ``source <(ctd completion bash)``; zsh: ``source <(ctd completion zsh)`` after ``compinit``;
fish: ``ctd completion fish > ~/.config/fish/completions/ctd.fish``).
"""

from __future__ import annotations

import click

from ctd_stats.errors import EXIT_OK

#: The shells click writes a completion script for.
SHELLS: tuple[str, ...] = ("bash", "zsh", "fish")
#: The environment variable through which the shell asks ``ctd`` for completions.
COMPLETE_VAR = "_CTD_COMPLETE"
#: The program name the scripts complete.
PROG_NAME = "ctd"


def script(cli: click.Command, shell: str) -> str:
    """The completion script of ``cli`` (the ``ctd`` group) for ``shell``."""
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    if cls is None:  # pragma: no cover - SHELLS are click's own
        raise click.BadParameter(f"no completion for {shell!r}")
    return cls(cli, {}, PROG_NAME, COMPLETE_VAR).source()


@click.command(
    "completion",
    short_help="print a shell completion script (bash, zsh or fish)",
    help="Print the shell completion script for bash, zsh or fish on stdout. Install it:\n\n"
    "\b\n"
    "  bash: source <(ctd completion bash)   # or: > ~/.local/share/bash-completion/completions/ctd\n"
    "  zsh:  source <(ctd completion zsh)    # after compinit\n"
    "  fish: ctd completion fish > ~/.config/fish/completions/ctd.fish",
)
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def command(ctx: click.Context, shell: str) -> int:
    text = script(ctx.find_root().command, shell)
    click.echo(text, nl=not text.endswith("\n"))
    return EXIT_OK

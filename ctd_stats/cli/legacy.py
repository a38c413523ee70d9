"""Plug-in commands written for argparse (``register(subparsers)``, the protocol of ctd 0.2), run
under the click command line unchanged.

Each sub-parser a plug-in registers becomes a :class:`ArgparseCommand`: click hands it the words
after the command name, its own parser reads them (so its options, defaults, ``--help`` and
checks stay as written) and its ``func(args)`` runs. A parser error is a :class:`click.UsageError`
(one line, exit 2), as for the built-in commands. A plug-in may instead expose ``command`` (a
:class:`click.Command`), which is used as is.
"""

from __future__ import annotations

import argparse
from types import ModuleType
from typing import Any, NoReturn

import click
from click.shell_completion import CompletionItem


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is raised (click prints it as one line) instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise click.UsageError(f"{message} (see `{self.prog} --help`)")


def _complete_files(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    return [CompletionItem(incomplete, type="file")]


class ArgparseCommand(click.Command):
    """A click command that passes its words to an argparse sub-parser and runs its ``func``."""

    def __init__(self, name: str, parser: argparse.ArgumentParser, short_help: str | None) -> None:
        super().__init__(
            name,
            short_help=short_help,
            help=parser.description,
            add_help_option=False,  # argparse answers --help itself
            context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
            callback=self._run,
            params=[
                click.Argument(
                    ["words"], nargs=-1, type=click.UNPROCESSED, shell_complete=_complete_files
                )
            ],
        )
        self.parser = parser

    def _run(self, words: tuple[str, ...]) -> int:
        try:
            args = self.parser.parse_args(list(words))
        except SystemExit as exc:  # --help (0)
            raise click.exceptions.Exit(exc.code if isinstance(exc.code, int) else 2) from None
        if click.get_current_context().find_root().params.get("json"):
            args.json = True
        return int(args.func(args))

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        """The sub-parser's option strings (click knows only the words argument)."""
        found = [
            CompletionItem(opt, help=action.help)
            for action in self.parser._actions
            if action.help != argparse.SUPPRESS
            for opt in action.option_strings
            if opt.startswith(incomplete)
        ]
        return found or super().shell_complete(ctx, incomplete)


def commands_of(module: ModuleType) -> list[click.Command]:
    """The click commands a plug-in module contributes (its ``command``, or its argparse
    ``register(subparsers)`` commands wrapped in :class:`ArgparseCommand`)."""
    command = getattr(module, "command", None)
    if isinstance(command, click.Command):
        return [command]
    parent = _Parser(prog="ctd", add_help=False)
    sub = parent.add_subparsers(dest="command")
    module.register(sub)
    helps = {a.dest: a.help for a in getattr(sub, "_choices_actions", [])}
    return [ArgparseCommand(name, p, helps.get(name)) for name, p in sub.choices.items()]

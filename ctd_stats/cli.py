"""The ``ctd`` command line.

Every sub-command lives in its own module under :mod:`ctd_stats.commands` (or a package that plugs in)
and exposes ``register(subparsers)``; ``register`` adds a parser whose ``func(args) -> int`` runs the
command and returns the exit code. :class:`~ctd_stats.errors.CTDInputError` becomes exit code 2 with a
one-line message on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence

from ctd_stats._version import __version__
from ctd_stats.commands._plugins import load_plugins
from ctd_stats.errors import EXIT_BAD_INPUT, CTDInputError

#: Modules that provide sub-commands, in the order they appear in ``ctd --help``.
COMMAND_MODULES: tuple[str, ...] = (
    "ctd_stats.commands.run",
    "ctd_stats.commands.validate",
    "ctd_stats.commands.calibrate",
    "ctd_stats.commands.simulate",
    "ctd_stats.commands.audit",
    "ctd_stats.commands.schema",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every available sub-command."""
    parser = argparse.ArgumentParser(
        prog="ctd",
        description="Calibrate-Then-Delegate: certified delegation budgets for LLM safety cascades.",
    )
    parser.add_argument("--version", action="version", version=f"ctd {__version__}")
    parser.add_argument(
        "--json", action="store_true", help="machine-readable JSON on stdout instead of tables"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in (*COMMAND_MODULES, *load_plugins()):
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ctd`` script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return int(args.func(args))
    except CTDInputError as exc:
        if getattr(args, "json", False):
            print(json.dumps({"error": str(exc), "exit_code": EXIT_BAD_INPUT}))
        print(f"ctd: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

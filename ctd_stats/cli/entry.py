"""The ``ctd`` command line.

Every sub-command lives in its own module under :mod:`ctd_stats.cli` (or a package that plugs in)
and exposes ``register(subparsers)``; ``register`` adds a parser whose ``func(args) -> int`` runs the
command and returns the exit code. :class:`~ctd_stats.errors.CTDInputError` becomes exit code 2 with a
one-line message on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator, Sequence
from typing import Any

from ctd_stats._version import __version__
from ctd_stats.cli import progress as _progress
from ctd_stats.cli.plugins import load_plugins
from ctd_stats.errors import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, CTDInputError

#: Modules that provide sub-commands, in the order they appear in ``ctd --help``.
COMMAND_MODULES: tuple[str, ...] = (
    "ctd_stats.cli.run",
    "ctd_stats.cli.validate",
    "ctd_stats.cli.calibrate",
    "ctd_stats.cli.simulate",
    "ctd_stats.cli.audit",
    "ctd_stats.cli.schema",
    "ctd_stats.cli.serve",
    "ctd_stats.cli.completion",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every available sub-command."""
    parser = argparse.ArgumentParser(
        prog="ctd",
        description="Calibrate-Then-Delegate: certified delegation budgets for LLM safety cascades.",
    )
    parser.add_argument("-V", "--version", action="version", version=f"ctd {__version__}")
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress lines, estimates or warnings on stderr (errors still; anywhere on the line)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="progress lines from the first second, not only for long stages (anywhere on the line)",
    )
    parser.add_argument(
        "--json", action="store_true", help="machine-readable JSON on stdout instead of tables"
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="print the Python traceback of an error (anywhere on the line)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in (*COMMAND_MODULES, *load_plugins()):
        importlib.import_module(name).register(sub)
    return parser


def _one_line(exc: BaseException) -> str:
    """The error's message (spec errors keep one line per problem)."""
    return str(exc).strip() or type(exc).__name__


def _environment_error(exc: BaseException) -> str | None:
    """A one-line cause-and-fix for errors of the environment, or None for a genuine bug."""
    if isinstance(exc, ModuleNotFoundError):
        top = (exc.name or "").split(".")[0]
        extra = {
            "torch": "probes",
            "transformers": "probes",
            "gguf": "probes",
            "accelerate": "probes",
            "fastapi": "serve",
            "uvicorn": "serve",
            "ray": "ray",
        }.get(top)
        fix = f"pip install -e '.[{extra}]'" if extra else f"pip install {top}"
        return f"a required package is missing: {top!r} ({exc}); install it with: {fix}"
    if isinstance(exc, PermissionError):
        return f"permission denied: {exc.filename or exc} ; choose a path you can write to"
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror or exc}{where}; check the path and free space"
    if isinstance(exc, MemoryError):
        return "out of memory; use a smaller table or more memory"
    return None


def _origin(category: type[Warning], filename: str) -> str:
    """The library a warning comes from (``numpy``, ``matplotlib``...), or "" when unknown."""
    module = getattr(category, "__module__", "") or ""
    top = module.split(".")[0]
    if top in ("builtins", "warnings", ""):
        package = os.path.dirname(os.path.abspath(__file__)) + os.sep
        if os.path.abspath(filename).startswith(package):
            return "ctd_stats"
        parts = os.path.normpath(filename).split(os.sep)
        top = next((p for p in reversed(parts[:-1]) if p in _LIBRARIES), "")
    return top


_LIBRARIES = ("numpy", "scipy", "pandas", "matplotlib", "pyarrow", "sklearn", "statsmodels")


def _take_verbosity(args: list[str]) -> tuple[list[str], int]:
    """Strip the global ``-q/--quiet`` and ``-v/--verbose`` from anywhere on the line (before a
    lone ``--``); -1 quiet, 0 normal, 1 verbose (the last one given wins)."""
    out: list[str] = []
    level = 0
    for i, a in enumerate(args):
        if a == "--":
            out += args[i:]
            break
        if a in ("-q", "--quiet"):
            level = -1
        elif a in ("-v", "--verbose"):
            level = 1
        else:
            out.append(a)
    return out, level


@contextlib.contextmanager
def one_line_warnings(quiet: bool = False) -> Iterator[None]:
    """Every warning raised while a command runs becomes one line on stderr, once per message:
    ``ctd: warning: <message> (<Category> from <library>)`` (Python's default form is two lines with
    a source line, and a library's wording). ctd's own warnings are shown without the origin."""
    import warnings

    seen: set[tuple[str, str]] = set()

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: Any = None,
        line: str | None = None,
    ) -> None:
        text = " ".join(str(message).split())
        key = (category.__name__, text)
        if key in seen or quiet:
            return
        seen.add(key)
        origin = _origin(category, filename)
        suffix = (
            ""
            if origin == "ctd_stats"
            else f" ({category.__name__} from {origin})"
            if origin
            else f" ({category.__name__})"
        )
        with contextlib.suppress(OSError, ValueError):
            print(f"ctd: warning: {text}{suffix}", file=sys.stderr, flush=True)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


#: Exit code after SIGTERM (128 + 15, as shells report it).
EXIT_TERMINATED = 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that ``finally``/``except`` blocks clean up (temporaries)."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


#: Commands that keep SIGTERM's default action (the gateway: its server handles the signal itself,
#: shuts down cleanly and re-raises it, and a supervisor expects the process to end by it).
KEEP_DEFAULT_SIGTERM = frozenset({"serve"})


@contextlib.contextmanager
def _sigterm_unwinds(enabled: bool = True) -> Iterator[None]:
    """While the command runs, SIGTERM raises :class:`Terminated` instead of killing the process
    outright (only in the main thread, and only where SIGTERM still has its default action)."""
    if (
        not enabled
        or threading.current_thread() is not threading.main_thread()
        or (signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL)
    ):
        yield
        return
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ctd`` script; returns the process exit code (see :func:`_main`)."""
    return _main(argv)


def _main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ctd`` script; returns the process exit code.

    Exit codes: 0 ok; 1 not certified / violation found (outputs still written); 2 bad input or
    environment (one line on stderr naming the cause and the fix); 3 internal error (a bug: one line,
    and the traceback with ``--debug``); 130 interrupted (Ctrl-C); 143 terminated (SIGTERM: temporaries
    removed as for Ctrl-C). No traceback without ``--debug``.
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args_list
    args_list = [a for a in args_list if a != "--debug"]  # accepted anywhere on the line
    args_list, verbosity = _take_verbosity(args_list)
    as_json = "--json" in args_list
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(args_list)
        except SystemExit as exc:  # argparse: usage error (2) or --help/--version (0)
            return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
        if not getattr(args, "func", None):
            # Bare `ctd`: the help on stdout and exit 0, as pip and most git-style tools do (a usage
            # *error*, such as an unknown command, is still exit 2).
            parser.print_help()
            return EXIT_OK
        unwind = getattr(args, "command", None) not in KEEP_DEFAULT_SIGTERM
        with (
            _sigterm_unwinds(unwind),
            one_line_warnings(quiet=verbosity < 0),
            _progress.verbosity(verbosity),
        ):
            return int(args.func(args))
    except CTDInputError as exc:
        return _fail(EXIT_BAD_INPUT, _one_line(exc), as_json, debug)
    except KeyboardInterrupt as exc:
        what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        print(f"ctd: {what}; nothing half-written was left behind", file=sys.stderr)
        return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (e.g. `ctd ... | head`): stop quietly, as Unix tools do.
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")
        return EXIT_OK
    except Exception as exc:
        env = _environment_error(exc)
        if env is not None:
            return _fail(EXIT_BAD_INPUT, env, as_json, debug)
        return _fail(
            EXIT_INTERNAL,
            f"internal error: {type(exc).__name__}: {exc} (a bug; rerun with --debug for the traceback "
            "and report it)",
            as_json,
            debug,
        )


def _fail(code: int, message: str, as_json: bool, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    if as_json:
        with contextlib.suppress(BrokenPipeError):
            print(json.dumps({"error": message, "exit_code": code}))
    print(f"ctd: error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

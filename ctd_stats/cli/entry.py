"""The ``ctd`` command line, on click.

Every sub-command lives in its own module under :mod:`ctd_stats.cli` and exposes ``command`` (a
:class:`click.Command` whose callback returns the exit code); the modules are imported only when
their command runs or a listing needs them (``ctd --help``, completion). Plug-ins (the probes
layer's ``ctd scores``) may expose a click ``command`` or the argparse ``register(subparsers)`` of
0.2 (:mod:`.legacy`). :class:`~ctd_stats.errors.CTDInputError` and usage errors (a bad option
value, a missing argument) become exit code 2 with a one-line message on stderr.
"""

from __future__ import annotations

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

import click

from ctd_stats._version import __version__
from ctd_stats.cli import progress as _progress
from ctd_stats.cli.completion import COMPLETE_VAR, PROG_NAME
from ctd_stats.cli.plugins import load_plugins
from ctd_stats.errors import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, CTDInputError

#: Modules that provide sub-commands (``command``), in the order they appear in ``ctd --help``;
#: the command's name is the module's last component.
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

#: Global flags accepted anywhere on the line (taken out before click parses it; see :func:`_main`).
_ANYWHERE_FLAGS: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("-q", "--quiet"),
        "no progress lines, estimates or warnings on stderr (errors still; anywhere on the line)",
    ),
    (
        ("-v", "--verbose"),
        "progress lines from the first second, not only for long stages (anywhere on the line)",
    ),
    (("--debug",), "print the Python traceback of an error (anywhere on the line)"),
)


class CommandGroup(click.Group):
    """The ``ctd`` group: built-in commands imported on first use, plug-in commands, and the
    global flags also accepted after the command (hidden there, for completion)."""

    def __init__(self, modules: Sequence[str], plugins: Sequence[click.Command], **kw: Any):
        super().__init__(**kw)
        self._modules = {m.rsplit(".", 1)[1]: m for m in modules}
        self._plugins = {c.name: c for c in plugins if c.name is not None}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*self._modules, *(n for n in self._plugins if n not in self._modules)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._modules:
            cmd = importlib.import_module(self._modules[cmd_name]).command
        else:
            cmd = self._plugins.get(cmd_name)
        if cmd is not None and not any(p.name == "quiet" for p in cmd.params):
            for opts, text in _ANYWHERE_FLAGS:
                cmd.params.append(
                    click.Option(
                        list(opts), is_flag=True, hidden=True, expose_value=False, help=text
                    )
                )
        return cmd


@click.pass_context
def _start(ctx: click.Context, **_: Any) -> None:
    """Before the command runs: SIGTERM unwinds (but for ``serve``), warnings one line each,
    progress at the verbosity of ``-q``/``-v`` (all undone when the command returns)."""
    verbosity = ctx.obj if isinstance(ctx.obj, int) else 0
    ctx.with_resource(_sigterm_unwinds(ctx.invoked_subcommand not in KEEP_DEFAULT_SIGTERM))
    ctx.with_resource(one_line_warnings(quiet=verbosity < 0))
    ctx.with_resource(_progress.verbosity(verbosity))


def build_cli(*, plugins: bool = True) -> CommandGroup:
    """The ``ctd`` click group with every available sub-command (and the installed plug-ins'
    commands, their spec blocks registered, unless ``plugins`` is false)."""
    from ctd_stats.cli.legacy import commands_of

    extra = (
        [c for name in load_plugins() for c in commands_of(importlib.import_module(name))]
        if plugins
        else []
    )
    params: list[click.Parameter] = [
        click.Option(
            ["-V", "--version"],
            is_flag=True,
            expose_value=False,
            is_eager=True,
            callback=_print_version,
            help="print the version and exit",
        ),
        *(
            click.Option(list(opts), is_flag=True, expose_value=False, help=text)
            for opts, text in _ANYWHERE_FLAGS
        ),
        click.Option(
            ["--json"], is_flag=True, help="machine-readable JSON on stdout instead of tables"
        ),
    ]
    return CommandGroup(
        COMMAND_MODULES,
        extra,
        name=PROG_NAME,
        help="Calibrate-Then-Delegate: certified delegation budgets for LLM safety cascades.",
        params=params,
        callback=_start,
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    )


def help_text() -> str:
    """``ctd --help`` as text (imports every command module, as the listing does)."""
    cli = build_cli()
    with click.Context(cli, info_name=PROG_NAME, **cli.context_settings) as ctx:
        return cli.get_help(ctx)


def _print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"{PROG_NAME} {__version__}")
        ctx.exit(EXIT_OK)


def _param_name(param: click.Parameter | None) -> str:
    """``--trials`` for an option (its longest name), ``SPEC`` for an argument."""
    if param is None:
        return ""
    if isinstance(param, click.Option):
        return max(param.opts, key=len)
    return param.human_readable_name.upper()


def usage_line(exc: click.UsageError) -> str:
    """A usage error as one line naming the option: ``--trials: must be ... (see `ctd simulate --help`)``."""
    if isinstance(exc, click.MissingParameter):
        kind = exc.param_type or (exc.param.param_type_name if exc.param else "parameter")
        text = f"missing {kind} {_param_name(exc.param)}".rstrip()
    elif isinstance(exc, click.BadParameter):
        name, message = _param_name(exc.param), exc.message
        text = message if not name or message.startswith(name) else f"{name}: {message}"
    else:
        text = exc.format_message()
    text = " ".join(text.split())
    if exc.ctx is not None and "--help" not in text:
        text = f"{text.rstrip('.')} (see `{exc.ctx.command_path} --help`)"
    return text


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
    instruction = os.environ.get(COMPLETE_VAR)
    if instruction:  # the shell asks what to offer at a TAB (see ctd_stats.cli.completion)
        from click.shell_completion import shell_complete

        return shell_complete(build_cli(), {}, PROG_NAME, COMPLETE_VAR, instruction)
    try:
        cli = build_cli()
        try:
            with cli.make_context(PROG_NAME, args_list, obj=verbosity) as ctx:
                return int(cli.invoke(ctx))
        except click.exceptions.NoArgsIsHelpError as exc:
            # Bare `ctd`: the help on stdout and exit 0, as pip and most git-style tools do (a usage
            # *error*, such as an unknown command, is still exit 2).
            click.echo(exc.ctx.get_help())
            return EXIT_OK
        except click.exceptions.Exit as exc:  # --help, --version
            return exc.exit_code
        except click.UsageError as exc:
            return _fail(EXIT_BAD_INPUT, usage_line(exc), as_json, debug)
        except click.ClickException as exc:
            return _fail(EXIT_BAD_INPUT, " ".join(exc.format_message().split()), as_json, debug)
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

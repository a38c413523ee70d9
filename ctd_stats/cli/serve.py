"""``ctd serve``: run the monitoring gateway (the ``serve`` package) on uvicorn.

This module is part of the composition root: it imports the gateway, FastAPI and uvicorn only when
the command runs, so ``ctd --help`` and the statistical core never import them. A missing FastAPI
or uvicorn is an environment error (exit 2) naming ``pip install -e '.[serve]'``.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click
from click.core import ParameterSource

from ctd_stats.cli.argtypes import (
    FILE,
    FOLDER,
    ExistingFile,
    LogLocation,
    Port,
    PositiveFloat,
    arguments,
    is_database_url,
)
from ctd_stats.errors import EXIT_OK, CTDInputError


def _require_serve_extra() -> None:
    for name in ("fastapi", "uvicorn"):
        if importlib.util.find_spec(name) is None:
            raise CTDInputError(
                f"ctd serve needs the package {name!r}; install it with: pip install -e '.[serve]'"
            )


def _expert(args: SimpleNamespace) -> Any:
    """The HTTP expert of ``--expert-url`` (from the probes layer's public names), or None."""
    if args.expert_url is None:
        return None
    if args.expert_model is None:
        raise CTDInputError(
            "--expert-url needs --expert-model (the model name the endpoint serves)"
        )
    from probes.experts import HTTPExpert

    try:
        return HTTPExpert(
            args.expert_url,
            args.expert_model,
            mode=args.expert_mode,
            timeout_s=args.expert_timeout,
            max_retries=0,
            api_key_env=args.expert_key_env,
            name=args.expert,
        )
    except ValueError as exc:
        raise CTDInputError(f"--expert-url: {exc}") from exc


def bind_listener(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``, made before anything else is created.

    Raises
    ------
    CTDInputError
        The host does not resolve or is not an address of this machine, or the port is taken.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise CTDInputError(f"--host {host!r}: not a valid host name or address ({exc})") from None
    family, kind, proto, _, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise CTDInputError(f"--port {port}: address {host}:{port} is already in use") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise CTDInputError(f"--host {host!r}: not an address of this machine") from None
        if exc.errno == errno.EACCES:
            raise CTDInputError(
                f"--port {port}: permission denied (ports < 1024 need root)"
            ) from None
        raise CTDInputError(f"cannot listen on {host}:{port} ({exc.strerror})") from None
    sock.set_inheritable(True)
    return sock


def run(args: SimpleNamespace) -> int:
    _require_serve_extra()
    args.port = parse_port(args.port)
    from serve.config import ADMIN_TOKEN_ENV, GatewayConfig, Token

    token = Token.load(args.token_file)
    admin_token = None
    if args.admin_token_file is not None or os.environ.get(ADMIN_TOKEN_ENV):
        admin_token = Token.load(args.admin_token_file, env=ADMIN_TOKEN_ENV)
        if admin_token.same_as(token):
            raise CTDInputError("the admin token must differ from the decision token")
    config = GatewayConfig(
        certificate=Path(args.certificate),
        db=args.db if is_database_url(args.db) else Path(args.db),
        budget=args.budget,
        expert=args.expert,
        scores_only=args.probes is None,
        expert_failure=args.on_expert_failure,
        on_alarm=args.on_alarm,
        alpha=args.alpha,
        expert_timeout_s=args.expert_timeout,
        max_batch=args.max_batch,
        max_body_bytes=args.max_body_bytes,
        sync=args.sync,
    )
    if not config.certificate.is_file():
        raise CTDInputError(f"{config.certificate}: certificate not found")
    # SIGHUP (a closed terminal, a reload by habit) must never kill the gateway: ignored.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # The address is checked (and held) before the log or the model is touched.
    sock = bind_listener(args.host, args.port)
    try:
        return _serve(args, config, token, admin_token, sock)
    finally:
        sock.close()


def _serve(
    args: SimpleNamespace, config: Any, token: Any, admin_token: Any, sock: socket.socket
) -> int:
    scorer = None
    if args.probes is not None:
        try:
            from probes.monitor import TextMonitor
        except ImportError as exc:
            raise CTDInputError(
                f"--probes: text scoring needs the probes layer ({exc}); install it with: pip install -e '.[probes]'"
            ) from exc
        scorer = TextMonitor(
            args.probes, expert=args.expert
        )  # the probed model is loaded once, here
    import uvicorn

    from serve.app import create_app
    from serve.gateway import Gateway
    from serve.protocol import guarded_protocol

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    gateway = Gateway(config, expert=_expert(args), scorer=scorer)
    c = gateway.cascade
    logging.getLogger("ctd.serve").info(
        "serving %s (expert=%s budget=%g threshold=%.6g certified=%s) on http://%s:%d, log %s%s",
        config.certificate,
        c.expert,
        gateway.budget,
        c.threshold,
        c.certified,
        args.host,
        args.port,
        config.db_name,
        "" if admin_token is not None else " (no admin token: POST /v1/admin/reset is disabled)",
    )
    app = create_app(gateway, token, admin_token, max_in_flight=args.max_connections)

    class Server(uvicorn.Server):
        """uvicorn's server, but a signal that stopped it is not raised again afterwards (that
        re-raise printed a KeyboardInterrupt traceback on Ctrl-C)."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            stops = (signal.SIGINT, signal.SIGTERM)
            before = {sig: signal.signal(sig, self.handle_exit) for sig in stops}
            try:
                yield
            finally:
                for sig, handler in before.items():
                    signal.signal(sig, handler)

    server = Server(
        uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            http=guarded_protocol(args.header_timeout, args.body_timeout, args.max_connections),
            timeout_keep_alive=args.keep_alive_timeout,
            lifespan="off",  # the log is closed below, after the last request (also on a 2nd Ctrl-C)
            backlog=2048,
        )
    )
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown: no traceback
        pass
    finally:
        gateway.close()
    return EXIT_OK


def parse_port(text: str | int) -> int:
    """``--port`` as an integer in 1-65535 (checked in :func:`run`: one line, exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise CTDInputError(f"--port {text!r}: not an integer") from None
    if not 1 <= value <= 65535:
        raise CTDInputError(f"--port {value}: a TCP port is 1-65535")
    return value


@click.command(
    "serve",
    short_help="run the monitoring gateway: decide, log every decision, watch the budget",
    help=(
        "HTTP gateway for a certificate: POST /v1/decide delegates iff dv_score > τ, logs every "
        "decision durably (SQLite file, or PostgreSQL with a postgresql:// URL) before answering "
        "(ctd audit --log reads it), and watches the delegation rate with the anytime-valid "
        "monitor. Needs the 'serve' extra and a bearer token (env CTD_SERVE_TOKEN or --token-file)."
    ),
)
@click.option(
    "--certificate",
    required=True,
    type=ExistingFile("certificate"),
    help="certificate JSON written by ctd calibrate/run",
)
@click.option("--budget", type=float, default=None, help="which certified budget (if several)")
@click.option("--expert", default=None, help="which expert's entry (if several)")
@click.option(
    "--scores-only",
    is_flag=True,
    help="inputs carry probe_prob and dv_score (the default without --probes)",
)
@click.option(
    "--probes",
    type=FOLDER,
    default=None,
    metavar="DIR",
    help="score texts with the monitor bundle written by `ctd scores SPEC --save-monitor DIR` "
    "(not with --scores-only)",
)
@click.option("--host", default="127.0.0.1", help="bind address (default loopback)")
@click.option("--port", type=Port(), default=8080, help="port 1-65535 (default 8080)")
@click.option(
    "--db",
    type=LogLocation(),
    default="ctd-decisions.db",
    help="decision log: a SQLite file (default ./ctd-decisions.db) or a postgresql:// URL",
)
@click.option(
    "--token-file",
    type=FILE,
    default=None,
    help="file holding the bearer token (else env CTD_SERVE_TOKEN)",
)
@click.option(
    "--admin-token-file",
    type=FILE,
    default=None,
    help="file holding the admin token for POST /v1/admin/reset (else env "
    "CTD_SERVE_ADMIN_TOKEN; without one the reset endpoint is disabled)",
)
@click.option(
    "--sync",
    type=click.Choice(("full", "normal")),
    default="full",
    help="log durability: full = fsync at every group commit, an acknowledged decision "
    "survives power loss (default); normal = survives any crash of the process (kill -9) but "
    "a power cut may lose the last commits; several times the throughput on slow disks",
)
@click.option(
    "--keep-alive-timeout",
    type=PositiveFloat(),
    default=5.0,
    help="seconds an idle keep-alive connection stays open (default 5)",
)
@click.option(
    "--header-timeout",
    type=PositiveFloat(),
    default=10.0,
    help="seconds to receive a request's headers, from the connection or its first byte "
    "(default 10)",
)
@click.option(
    "--body-timeout",
    type=PositiveFloat(),
    default=30.0,
    help="seconds to receive a request's body after its headers (default 30)",
)
@click.option(
    "--max-connections",
    type=click.IntRange(min=1),
    metavar="N",
    default=512,
    help="open connections (more are closed at once) and requests in flight (more get a JSON "
    "503); keep it below the file-descriptor limit (default 512)",
)
@click.option("--expert-url", default=None, help="OpenAI-compatible expert endpoint (optional)")
@click.option("--expert-model", default=None, help="model name at --expert-url")
@click.option("--expert-mode", type=click.Choice(("chat", "moderation")), default="chat")
@click.option("--expert-key-env", default=None, help="env variable with the expert's API key")
@click.option("--expert-timeout", type=float, default=10.0, help="seconds (default 10)")
@click.option(
    "--on-expert-failure",
    type=click.Choice(("probe", "503")),
    default="probe",
    help="expert timeout/error: answer with the probe's verdict, the weaker model (default), "
    "or return 503 (the input is not decided; the client retries)",
)
@click.option(
    "--on-alarm",
    type=click.Choice(("never-delegate", "continue")),
    default="never-delegate",
    help="budget monitor alarm: stop delegating until POST /v1/admin/reset (default), or continue",
)
@click.option("--alpha", type=float, default=0.05, help="level of the live monitor (default 0.05)")
@click.option(
    "--max-batch",
    type=click.IntRange(min=1),
    metavar="N",
    default=256,
    help="items per batch (default 256)",
)
@click.option(
    "--max-body-bytes",
    type=click.IntRange(min=1),
    metavar="BYTES",
    default=1 << 20,
    help="default 1 MiB",
)
@click.pass_context
def command(ctx: click.Context, **values: Any) -> int:
    if values["scores_only"] and values["probes"] is not None:
        raise click.UsageError("--scores-only: not allowed with argument --probes", ctx)
    refuse_incomplete_expert_options(ctx)
    return run(arguments(ctx, values))


def refuse_incomplete_expert_options(ctx: click.Context) -> None:
    """Refuse ``--expert-*`` options given without ``--expert-url`` (they would be ignored), and
    ``--expert-url`` without ``--expert-model`` (the request names the model).

    Without a URL there is no expert to call, so ``--expert-model``, ``--expert-mode``,
    ``--expert-key-env`` and ``--expert-timeout`` would have no effect. An option counts as given
    when its value did not come from its default (click's parameter source), so
    ``--expert-timeout 10`` is refused like ``--expert-timeout 3``. Checked before anything is
    created (no log, no lock).

    Raises
    ------
    click.UsageError
        One line naming every such option (exit 2).
    """
    if ctx.params.get("expert_url") is not None:
        if ctx.params.get("expert_model") is None:
            raise click.UsageError(
                "--expert-url needs --expert-model (the model name the endpoint serves)", ctx
            )
        return
    given = [
        p.opts[0]
        for p in ctx.command.params
        if p.name is not None
        and p.name.startswith("expert_")
        and p.name != "expert_url"
        and ctx.get_parameter_source(p.name) not in (None, ParameterSource.DEFAULT)
    ]
    if given:
        need, it = ("needs", "it") if len(given) == 1 else ("need", "they")
        raise click.UsageError(
            f"{', '.join(given)}: {need} --expert-url (without it there is no expert to call, "
            f"so {it} would be ignored)",
            ctx,
        )

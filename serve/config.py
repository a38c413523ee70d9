"""Gateway settings and the bearer token (read from an environment variable or a file, never logged)."""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ctd_stats.audit.logs.postgres import postgres_url, redact
from ctd_stats.errors import CTDInputError

#: Environment variable read for the bearer token when no token file is given.
TOKEN_ENV = "CTD_SERVE_TOKEN"
#: Environment variable read for the admin token (``POST /v1/admin/reset``) without a file.
ADMIN_TOKEN_ENV = "CTD_SERVE_ADMIN_TOKEN"
#: Shortest token accepted (a guessable token is no protection).
MIN_TOKEN_CHARS = 16

ExpertFailure = Literal["probe", "503"]
Sync = Literal["full", "normal"]
OnAlarm = Literal["never-delegate", "continue"]


@dataclass(frozen=True)
class GatewayConfig:
    """Everything ``ctd serve`` is configured with (the token is kept apart, in :class:`Token`).

    Parameters
    ----------
    certificate : Path
        The certificate JSON; the gateway applies its entry for ``budget``/``expert``.
    db : Path or str
        The decision log: a SQLite file (one gateway per file, enforced by a lock), or a
        PostgreSQL URL ``postgresql://user@host:port/dbname`` (any number of gateways share the log
        and one monitor state: :mod:`serve.pglog`). A URL that went through :class:`~pathlib.Path`
        is recognised too (:func:`~ctd_stats.audit.logs.postgres.postgres_url`).
    budget, expert : optional
        Which certificate entry (may be omitted when the certificate has one).
    scores_only : bool
        Accept only ``probe_prob``/``dv_score`` inputs (no text scoring at the gateway).
    expert_failure : {"probe", "503"}
        When the expert times out or fails: answer with the probe's verdict (the weaker model:
        the input is decided without the expert) or return 503 (the input is not decided; the
        client retries).
    on_alarm : {"never-delegate", "continue"}
        What the budget monitor's alarm does: stop delegating until ``POST /v1/admin/reset``, or
        only report it.
    alpha : float
        Level of the live monitor and of the budget interval.
    verdict_threshold : float
        A probability at or above it is reported as ``"unsafe"``.
    expert_timeout_s : float
        Longest wait for the expert per request.
    max_batch, max_body_bytes, max_text_chars : int
        Input limits (413 / 422 beyond them).
    sync : {"full", "normal"}
        Commit durability of the decision log (:data:`serve.decisionlog.SYNC_MODES`): ``full``
        survives power loss, ``normal`` survives any crash of the process (``kill -9``).
    """

    certificate: Path
    db: Path | str
    budget: float | None = None
    expert: str | None = None
    scores_only: bool = True
    expert_failure: ExpertFailure = "probe"
    on_alarm: OnAlarm = "never-delegate"
    alpha: float = 0.05
    verdict_threshold: float = 0.5
    expert_timeout_s: float = 10.0
    max_batch: int = 256
    max_body_bytes: int = 1 << 20
    max_text_chars: int = 20_000
    sync: Sync = "full"

    @property
    def db_url(self) -> str | None:
        """The PostgreSQL URL of the log, or None for a SQLite file."""
        return postgres_url(self.db)

    @property
    def db_name(self) -> str:
        """The log for messages (a URL without its password)."""
        url = self.db_url
        return str(self.db) if url is None else redact(url)

    def __post_init__(self) -> None:
        if self.db_url is None and not isinstance(self.db, Path):
            object.__setattr__(self, "db", Path(self.db))
        if not 0.0 < self.alpha < 1.0:
            raise CTDInputError(f"alpha must be in (0, 1), got {self.alpha}")
        if not 0.0 <= self.verdict_threshold <= 1.0:
            raise CTDInputError(
                f"verdict threshold must be in [0, 1], got {self.verdict_threshold}"
            )
        if not self.expert_timeout_s > 0:
            raise CTDInputError(f"expert timeout must be > 0 seconds, got {self.expert_timeout_s}")
        if self.max_batch < 1 or self.max_body_bytes < 1024 or self.max_text_chars < 1:
            raise CTDInputError("limits: max batch >= 1, max body >= 1024 bytes, max text >= 1")


class Token:
    """The bearer token; compared in constant time, and never shown by ``repr``."""

    def __init__(self, value: str) -> None:
        value = value.strip()
        if len(value) < MIN_TOKEN_CHARS:
            raise CTDInputError(
                f"the bearer token must have at least {MIN_TOKEN_CHARS} characters "
                "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        self._value = value.encode("utf-8")

    @classmethod
    def load(cls, token_file: str | os.PathLike[str] | None = None, env: str = TOKEN_ENV) -> Token:
        """From ``token_file`` when given, else from the environment variable ``env``."""
        if token_file is not None:
            p = Path(token_file)
            try:
                return cls(p.read_text(encoding="utf-8"))
            except OSError as exc:
                raise CTDInputError(f"{p}: cannot read the token file ({exc.strerror})") from None
        value = os.environ.get(env)
        if not value:
            raise CTDInputError(
                f"no bearer token: set the environment variable {env} or pass --token-file "
                "(every endpoint except /healthz requires it)"
            )
        return cls(value)

    def matches(self, header: str | None) -> bool:
        """Whether an ``Authorization`` header carries this token (``Bearer <token>``)."""
        if not header:
            return False
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(given.strip().encode("utf-8"), self._value)

    def same_as(self, other: Token) -> bool:
        """Whether two tokens are equal (constant time)."""
        return hmac.compare_digest(self._value, other._value)

    def __repr__(self) -> str:
        return "Token(***)"

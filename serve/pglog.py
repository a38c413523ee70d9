"""The gateway's decision log in PostgreSQL: many gateway replicas, one log, one monitor state.

``ctd serve --db postgresql://user@host:port/dbname`` logs to the table ``decisions``
(:data:`~ctd_stats.audit.logs.schema.POSTGRES_DECISIONS_DDL`: the SQLite log's columns and values)
behind the same interface as :class:`serve.decisionlog.DecisionLog` (group commit on one writer
thread, :class:`~serve.decisionlog.GroupCommitLog`). Any number of gateways may write one log.

**One serialisation point.** The single row of ``monitor_state`` holds the budget monitor's state
(:class:`~ctd_stats.audit.change_monitor.ChangeMonitor` with the decision counts) and a ``version``.
Every group commit, of every gateway, is one transaction that

1. locks that row (``SELECT ... FOR UPDATE``; the other gateways' commits wait for it),
2. inserts its rows (``INSERT ... ON CONFLICT (request_id) DO NOTHING`` under the ``UNIQUE``
   constraint on ``request_id``),
3. asks the gateway for the monitor state after those rows, starting from the stored state when
   the stored ``version`` is not the one this gateway wrote last (another gateway committed since),
4. writes the new state with ``version + 1`` and commits.

Hence: ``seq`` order is commit order across all gateways, the stored state is always the monitor
fed with *every* row of the log in ``seq`` order (the detector sees the combined traffic: two
gateways each within budget on their own inputs cannot hide a combined rate over budget), and a
restart reads the state row instead of replaying the log. A state and its rows commit together or
not at all.

**Idempotency across replicas.** Under the lock, the commit reads the logged rows of its request
ids (every other gateway's insert of those ids has committed or has not started), so the same id
with the same payload digest answers the logged decision (``new=False``) and with another digest
is refused (:class:`~serve.decisionlog.IdConflict`, HTTP 409) whichever gateway logged it first. The
``UNIQUE`` constraint stays the last word: a row the insert did not return fails the commit.
Expert failures under the ``503`` policy go to ``request_failures``, never to ``decisions``.

**Durability.** A request is answered after its transaction committed. ``sync="full"`` keeps
PostgreSQL's ``synchronous_commit=on`` (the commit record is flushed to the server's disk);
``sync="normal"`` sets it ``off`` for this gateway's sessions (the commit survives any crash of the
gateway, ``kill -9`` included, since the server has it; a crash of the *server* may lose the last
commits). Timestamps are the server's clock taken under the lock, so they increase with ``seq``.

The writer lock file of the SQLite log has no equivalent here: several writers are the point.
``psycopg`` (3.x, the ``postgres`` extra) is imported when such a log is opened.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import Any, Final

from ctd_stats.audit.logs.postgres import connect, redact, require_psycopg
from ctd_stats.audit.logs.schema import DECISIONS_TABLE, POSTGRES_DECISIONS_DDL
from ctd_stats.errors import CTDInputError
from serve.decisionlog import (
    DECISION_COLUMNS,
    LOG_SCHEMA_VERSION,
    SELECT_DECISIONS,
    SYNC_MODES,
    CommitResult,
    DecisionRow,
    GroupCommitLog,
    IdConflict,
    LoggedDecision,
    PendingRequest,
    decision_from_record,
)

SCHEMA: Final = (
    POSTGRES_DECISIONS_DDL
    + """
CREATE TABLE IF NOT EXISTS gateway_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS gateway_events (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    timestamp TEXT NOT NULL,
    kind TEXT NOT NULL,
    after_decision BIGINT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS request_failures (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    timestamp TEXT NOT NULL,
    request_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    dv_score DOUBLE PRECISION NOT NULL,
    payload_sha256 TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS monitor_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL,
    after_seq BIGINT NOT NULL,
    state TEXT
);
INSERT INTO monitor_state (id, version, after_seq, state) VALUES (1, 0, 0, NULL)
    ON CONFLICT (id) DO NOTHING;
"""
)
#: Serialises schema creation between gateways starting together (an advisory lock key).
_SCHEMA_LOCK: Final = 0x63746431  # "ctd1"
#: The server's clock, in the SQLite log's timestamp format.
_NOW: Final = """to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
_PG_TYPES: Final = {"str": "text", "float": "float8", "bool": "int"}


def _lock_state(cur: Any) -> tuple[int, str | None, str]:
    """Lock the shared state row for this transaction (other gateways' commits wait) and read its
    version, the stored monitor state and the server's clock (the rows' timestamp)."""
    cur.execute(f"SELECT version, state, {_NOW} FROM monitor_state WHERE id = 1 FOR UPDATE")
    version, state, ts = cur.fetchone()
    return int(version), state, str(ts)


def _array_type(annotation: str) -> str:
    base = annotation.replace(" | None", "").strip()
    return _PG_TYPES[base] + "[]"


_INSERT: Final = (
    f"INSERT INTO {DECISIONS_TABLE} (timestamp, "
    + ", ".join('"group"' if c == "group" else c for c in DECISION_COLUMNS)
    + ") SELECT %s, * FROM unnest("
    + ", ".join(f"%s::{_array_type(str(f.type))}" for f in fields(DecisionRow))
    + ") ON CONFLICT (request_id) DO NOTHING RETURNING seq, request_id"
)


class _Replay:
    """A row whose id an earlier request of the same commit inserts (same payload)."""

    __slots__ = ("request_id",)

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id


#: A row of a request in a commit plan: logged before, to insert, or inserted by an earlier request.
_Planned = LoggedDecision | DecisionRow | _Replay

#: The gateway's hook inside a commit: (stored version, stored state, new rows) -> new state.
Advance = Callable[[int, str | None, list[LoggedDecision]], str]
#: A state-only update: (stored version, stored state, last seq) -> (new state, event or None).
StateUpdate = Callable[[int, str | None, int], tuple[str, tuple[str, str] | None]]


class PostgresDecisionLog(GroupCommitLog):
    """Append-only decision log in PostgreSQL shared by many gateways, with one monitor state.

    Parameters
    ----------
    url : str
        ``postgresql://user[:password]@host:port/dbname`` (libpq parameters allowed).
    identity : dict of str to str
        What this log belongs to (certificate digest, threshold, expert, budget, monitor level);
        stored by the first gateway, and a gateway with another identity is refused.
    advance : callable
        Called on the writer thread inside every commit that adds rows, under the state row's
        lock, with ``(stored version, stored state JSON or None, new rows in seq order)``;
        returns the state JSON after them (stored with ``version + 1``).
    aborted : callable, optional
        Called when a commit failed after ``advance`` ran (the gateway's copy is then stale).
    on_commit : callable, optional
        Called on the writer thread after each commit with its new rows.
    sync : {"full", "normal"}
        ``synchronous_commit`` on or off for this gateway (module docstring).

    Raises
    ------
    CTDInputError
        The server cannot be reached, the database holds no gateway log of this kind, or the log
        belongs to another certified rule.
    """

    def __init__(
        self,
        url: str,
        identity: dict[str, str],
        advance: Advance,
        aborted: Callable[[], None] | None = None,
        on_commit: Callable[[list[LoggedDecision]], None] | None = None,
        sync: str = "full",
    ) -> None:
        if sync not in SYNC_MODES:
            raise CTDInputError(f"sync must be one of {sorted(SYNC_MODES)}, got {sync!r}")
        self.psycopg = require_psycopg()
        self.url = url
        self.name = redact(url)
        self.sync = sync
        self._con = self._writer_connection()
        try:
            self._create_schema()
            self._check_identity(identity)
            self._read = connect(url, autocommit=True)
        except self.psycopg.Error as exc:
            self._con.close()
            raise CTDInputError(f"{self.name}: cannot open the decision log ({exc})") from exc
        except BaseException:
            self._con.close()
            raise
        self._read_lock = threading.Lock()
        self._advance = advance
        self._aborted = aborted
        self._on_commit = on_commit
        self._init_group_commit()

    # ------------------------------------------------------------------ opening
    def _writer_connection(self) -> Any:
        con = connect(self.url, autocommit=True)
        if self.sync == "normal":
            con.execute("SET synchronous_commit = off")
        return con

    def _writer_con(self) -> Any:
        """The write connection, reopened when the last one broke (server restart, failover,
        a killed backend): the commit that saw it break failed; the next one reconnects."""
        if self._con.closed or self._con.broken:
            self._con.close()
            self._con = self._writer_connection()
        return self._con

    def _create_schema(self) -> None:
        with self._con.transaction():
            self._con.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            self._con.execute(SCHEMA)

    def _check_identity(self, identity: dict[str, str]) -> None:
        wanted = {"schema_version": LOG_SCHEMA_VERSION, "backend": "postgres", **identity}
        with self._con.transaction():
            self._con.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            stored = dict(self._con.execute("SELECT key, value FROM gateway_meta").fetchall())
            if not stored:
                with self._con.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO gateway_meta (key, value) VALUES (%s, %s)",
                        sorted(wanted.items()),
                    )
                return
        for key, value in wanted.items():
            if stored.get(key) != value:
                raise CTDInputError(
                    f"{self.name}: this decision log was written with {key}={stored.get(key)!r}, "
                    f"not {value!r}; every gateway sharing a log must serve the same certified "
                    "rule with the same monitor level (use another database for another rule)"
                )

    # ------------------------------------------------------------------ writing
    def _commit(self, batch: list[PendingRequest]) -> list[CommitResult]:
        """One transaction for every request of ``batch``, under the state row lock (writer thread)."""
        advanced = False
        try:
            con = self._writer_con()
            with con.transaction(), con.cursor() as cur:
                version, state, ts = _lock_state(cur)
                results, new_rows = self._plan(cur, batch)
                fresh = self._insert(cur, ts, new_rows)
                failures = [(ts, f.request_id, f.outcome, f.dv_score, f.payload_sha256)
                            for req in batch for f in req.failures]  # fmt: skip
                if failures:
                    cur.executemany(
                        "INSERT INTO request_failures (timestamp, request_id, outcome, dv_score, "
                        "payload_sha256) VALUES (%s, %s, %s, %s, %s)",
                        failures,
                    )
                if fresh:
                    advanced = True
                    new_state = self._advance(int(version), state, fresh)
                    cur.execute(
                        "UPDATE monitor_state SET version = %s, after_seq = %s, state = %s "
                        "WHERE id = 1",
                        (int(version) + 1, fresh[-1].seq, new_state),
                    )
        except BaseException as exc:
            if advanced and self._aborted is not None:
                self._aborted()
            self._failed(exc)
            raise
        self._succeeded(fresh)
        return [self._resolve(r, fresh) for r in results]

    def _plan(
        self, cur: Any, batch: list[PendingRequest]
    ) -> tuple[list[list[_Planned] | IdConflict], list[DecisionRow]]:
        """Per request: its rows (logged ones, or rows to insert) or a conflict; and the inserts.

        Runs under the state lock, so the logged rows read here are every gateway's.
        """
        ids = list({row.request_id for req in batch for row in req.rows})
        logged: dict[str, LoggedDecision] = {}
        if ids:
            cur.execute(SELECT_DECISIONS + " WHERE request_id = ANY(%s)", (ids,))
            for rec in cur.fetchall():
                d = decision_from_record(rec, new=False)
                logged[d.row.request_id] = d
        planned: dict[str, DecisionRow] = {}  # ids inserted by earlier requests of this batch
        results: list[list[_Planned] | IdConflict] = []
        inserts: list[DecisionRow] = []
        for req in batch:
            out: list[_Planned] = []
            mine: dict[str, DecisionRow] = {}
            conflict: IdConflict | None = None
            for row in req.rows:
                rid = row.request_id
                known = logged.get(rid)
                earlier = planned.get(rid) or mine.get(rid)
                digest = known.row.payload_sha256 if known is not None else None
                if known is None and earlier is not None:
                    digest = earlier.payload_sha256
                if known is None and earlier is None:
                    mine[rid] = row
                    out.append(row)
                elif digest is None or digest != row.payload_sha256:
                    conflict = IdConflict(rid)
                    break
                else:
                    out.append(known if known is not None else _Replay(rid))
            if conflict is not None:
                results.append(conflict)
                continue
            planned.update(mine)
            inserts.extend(mine.values())
            results.append(out)
        return results, inserts

    def _insert(self, cur: Any, ts: str, rows: list[DecisionRow]) -> list[LoggedDecision]:
        """Insert ``rows`` in one statement; their logged form, in ``seq`` order."""
        if not rows:
            return []
        columns = [
            [int(v) if isinstance(v, bool) else v for v in (getattr(r, c) for r in rows)]
            for c in DECISION_COLUMNS
        ]
        cur.execute(_INSERT, (ts, *columns))
        seqs = {str(rid): int(seq) for seq, rid in cur.fetchall()}
        if len(seqs) != len(rows):
            raise RuntimeError(
                f"{len(rows) - len(seqs)} request id(s) appeared in the log during the commit, "
                "outside the monitor-state lock (a writer not following the protocol)"
            )
        fresh = [LoggedDecision(seq=seqs[r.request_id], timestamp=ts, row=r) for r in rows]
        fresh.sort(key=lambda d: d.seq)
        return fresh

    @staticmethod
    def _resolve(planned: list[_Planned] | IdConflict, fresh: list[LoggedDecision]) -> CommitResult:
        if isinstance(planned, IdConflict):
            return planned
        by_id = {d.row.request_id: d for d in fresh}
        out: list[LoggedDecision] = []
        for item in planned:
            if isinstance(item, LoggedDecision):
                out.append(item)
            elif isinstance(item, _Replay):  # logged by an earlier request of the same commit
                d = by_id[item.request_id]
                out.append(LoggedDecision(seq=d.seq, timestamp=d.timestamp, row=d.row, new=False))
            else:
                out.append(by_id[item.request_id])
        return out

    def update_state(self, update: StateUpdate) -> None:
        """A state-only transaction under the state lock (operator reset), on the writer thread.

        ``update(version, state, last seq)`` returns the new state and an optional event
        ``(kind, detail)`` logged in the same transaction after the last decision.
        """

        def run() -> None:
            done = False
            try:
                con = self._writer_con()
                with con.transaction(), con.cursor() as cur:
                    version, state, ts = _lock_state(cur)
                    cur.execute(f"SELECT COALESCE(MAX(seq), 0) FROM {DECISIONS_TABLE}")
                    (last,) = cur.fetchone()
                    done = True
                    new_state, event = update(int(version), state, int(last))
                    cur.execute(
                        "UPDATE monitor_state SET version = %s, after_seq = %s, state = %s "
                        "WHERE id = 1",
                        (int(version) + 1, int(last), new_state),
                    )
                    if event is not None:
                        cur.execute(
                            "INSERT INTO gateway_events (timestamp, kind, after_decision, detail) "
                            "VALUES (%s, %s, %s, %s)",
                            (ts, event[0], int(last), event[1]),
                        )
            except BaseException:
                if done and self._aborted is not None:
                    self._aborted()
                raise

        self._on_writer(run)

    def probe_write(self) -> None:
        """A small durable write (heartbeat in ``gateway_meta``); raises on failure (``/readyz``)."""

        def beat() -> None:
            con = self._writer_con()
            with con.transaction():
                con.execute(
                    "INSERT INTO gateway_meta (key, value) VALUES ('heartbeat', " + _NOW + ") "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
                )

        self._writer.submit(beat).result(timeout=30)

    def record_event(self, kind: str, detail: str) -> None:
        """Append an operator event (alarm, reset) to ``gateway_events`` after the logged rows."""

        def put() -> None:
            con = self._writer_con()
            with con.transaction():
                con.execute(
                    "INSERT INTO gateway_events (timestamp, kind, after_decision, detail) "
                    f"SELECT {_NOW}, %s, COALESCE(MAX(seq), 0), %s FROM {DECISIONS_TABLE}",
                    (kind, detail),
                )

        self._on_writer(put)

    def _on_writer(self, fn: Callable[[], None]) -> None:
        if threading.current_thread().name.startswith("ctd-decision-log"):
            fn()
        else:
            self._writer.submit(fn).result()

    # ------------------------------------------------------------------ reading
    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._read_lock:
            try:
                return list(self._read.execute(sql, params).fetchall())
            except self.psycopg.OperationalError:
                if not (self._read.closed or self._read.broken):
                    raise
            # The session was lost (server restart, failover): a read is safe to repeat.
            self._read.close()
            self._read = connect(self.url, autocommit=True)
            return list(self._read.execute(sql, params).fetchall())

    def find(self, request_id: str) -> LoggedDecision | None:
        """The logged decision for ``request_id`` (logged by any gateway), or None."""
        recs = self._query(SELECT_DECISIONS + " WHERE request_id = %s", (request_id,))
        return decision_from_record(recs[0], new=False) if recs else None

    def delegations(self, after_seq: int = 0) -> tuple[int, list[bool]]:
        """The last ``seq`` read and the ``delegated`` column in log order for ``seq > after_seq``."""
        recs = self._query(
            f"SELECT seq, delegated FROM {DECISIONS_TABLE} WHERE seq > %s ORDER BY seq",
            (after_seq,),
        )
        return (int(recs[-1][0]) if recs else after_seq), [bool(r[1]) for r in recs]

    def counts(self, after_seq: int = 0) -> tuple[int, int, int]:
        """``(last seq, rows, delegated rows)`` for ``seq > after_seq``."""
        ((n, k, last),) = self._query(
            "SELECT COUNT(*), COALESCE(SUM(delegated), 0), COALESCE(MAX(seq), %s) "
            f"FROM {DECISIONS_TABLE} WHERE seq > %s",
            (after_seq, after_seq),
        )
        return int(last), int(n), int(k)

    def last_event(self, kind: str) -> tuple[int, str] | None:
        """``(after_decision, detail)`` of the latest event of ``kind``, or None."""
        recs = self._query(
            "SELECT after_decision, detail FROM gateway_events WHERE kind = %s "
            "ORDER BY seq DESC LIMIT 1",
            (kind,),
        )
        return (int(recs[0][0]), str(recs[0][1])) if recs else None

    def load_state(self) -> tuple[int, str | None]:
        """``(version, state JSON or None)`` of the shared monitor state as committed now."""
        ((version, state),) = self._query("SELECT version, state FROM monitor_state WHERE id = 1")
        return int(version), state

    def close(self) -> None:
        """Finish the running commit, stop the writer, close the connections."""
        if self._closed:
            return
        self._closed = True
        self._writer.shutdown(wait=True)
        self._con.close()
        self._read.close()

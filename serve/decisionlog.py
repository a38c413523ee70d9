"""The gateway's decision log: one SQLite row per decision, committed before the answer is sent.

Why SQLite (in WAL mode) and not a file of JSON lines or DuckDB:

* **Embedded and in the standard library.** No server to run, no extra package; the log is one
  file that ``ctd audit --log gateway.db`` reads as is (:mod:`ctd_stats.audit.logs`).
* **Durable.** ``journal_mode=WAL`` with ``synchronous=FULL`` fsyncs the write-ahead log at every
  commit, so a decision whose commit returned survives ``kill -9`` and power loss; a half-written
  transaction is rolled back on the next open. A request is answered only after its row committed.
* **Readers never block the writer.** WAL lets ``ctd audit`` and ``GET /v1/budget`` read a
  consistent snapshot while the gateway appends.
* **One writer per log, enforced.** The gateway takes an exclusive ``flock`` on ``<db>.lock`` when it
  opens the log and holds it for its lifetime; a second gateway on the same file is refused before
  it serves anything (:class:`LogLocked`). The lock dies with the process (also on ``kill -9``), so
  a crash never leaves a stale lock. Several replicas need one log each.

Throughput comes from **group commit without a per-request thread hand-off**: requests append their
rows to a list owned by the event loop; one commit at a time takes every request queued since the
previous commit, inserts them in one transaction and syncs once; its completion resolves all the
waiting requests in the loop. With ``sync="full"`` (fsync per commit) the commit runs on a single
writer thread, one hand-off per commit, not per request (the hand-off per request was the
bottleneck: issue 19); with ``sync="normal"`` the commit does not wait for the disk and runs on the
loop itself (no hand-off at all).

**Idempotency bound to content.** ``request_id`` is UNIQUE and stored with ``payload_sha256``, the
SHA-256 of the request's canonical payload (:func:`payload_digest`). A request whose id is logged
with the same digest gets the logged decision (``new=False``); with another digest it is refused
(:class:`IdConflict`, HTTP 409) and nothing of that request is written (a savepoint per request).
Expert failures under the ``503`` policy are not decisions: they go to ``request_failures`` (for
the record), never to ``decisions``, so the retry of that id is evaluated again.

Schema (table ``decisions``; the columns ``ctd audit`` reads are ``timestamp``, ``dv_score``,
``delegated`` and ``group``): see :data:`SCHEMA`. ``delegated`` is the certified rule's decision
``dv_score > threshold``; what the gateway then did (expert answered, expert failed and the probe
answered, delegation suppressed after a monitor alarm, ...) is in ``outcome`` and ``expert_called``.
``monitor_checkpoint`` holds the live monitor's state after a given ``seq`` (written in the same
transaction as rows, so it is never ahead of the log): a restart replays only the rows after it.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from ctd_stats.audit.logs.schema import DECISIONS_DDL, DECISIONS_TABLE
from ctd_stats.errors import CTDInputError

log = logging.getLogger("ctd.serve")

LOG_SCHEMA_VERSION: Final = "ctd.gateway-log/2"
#: Schema versions this code opens (older ones are migrated in place).
_MIGRATABLE: Final = ("ctd.gateway-log/1",)

SCHEMA: Final = (
    DECISIONS_DDL
    + """
CREATE TABLE IF NOT EXISTS gateway_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS gateway_events (
    seq INTEGER PRIMARY KEY,
    timestamp TEXT NOT NULL,
    kind TEXT NOT NULL,
    after_decision INTEGER NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS request_failures (
    seq INTEGER PRIMARY KEY,
    timestamp TEXT NOT NULL,
    request_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    dv_score REAL NOT NULL,
    payload_sha256 TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS monitor_checkpoint (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    after_seq INTEGER NOT NULL,
    state TEXT NOT NULL
);
"""
)


def payload_digest(payload: dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of a request's payload (sorted keys, no spaces, UTF-8).

    Floats are written by ``repr`` (the shortest text that reads back to the same double), so two
    payloads get the same digest iff they carry the same values.
    """
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class DecisionRow:
    """One logged decision (the columns of ``decisions`` except ``seq`` and ``timestamp``)."""

    request_id: str
    dv_score: float
    probe_prob: float | None
    delegated: bool
    expert_called: bool
    expert_prob: float | None
    probability: float | None
    verdict: str | None
    outcome: str
    threshold: float
    certificate_sha256: str
    expert: str | None
    group: str | None
    input_kind: str
    expert_latency_ms: float | None
    payload_sha256: str | None = None


DECISION_COLUMNS: Final = [f.name for f in fields(DecisionRow)]
_INSERT: Final = (
    f"INSERT INTO {DECISIONS_TABLE} (timestamp, "
    + ", ".join('"group"' if c == "group" else c for c in DECISION_COLUMNS)
    + ") VALUES (?, "
    + ", ".join("?" for _ in DECISION_COLUMNS)
    + ") ON CONFLICT(request_id) DO NOTHING"
)
SELECT_DECISIONS: Final = (
    "SELECT seq, timestamp, "
    + ", ".join('"group"' if c == "group" else c for c in DECISION_COLUMNS)
    + f" FROM {DECISIONS_TABLE}"
)


@dataclass(frozen=True)
class LoggedDecision:
    """A row as stored: the decision, its position ``seq`` and its commit ``timestamp``."""

    seq: int
    timestamp: str
    row: DecisionRow
    #: False when the request id was already in the log (the stored row is returned instead).
    new: bool = True


class IdConflict(Exception):
    """A ``request_id`` already logged with another payload (HTTP 409); nothing was written."""

    def __init__(self, request_id: str) -> None:
        super().__init__(
            f"request_id {request_id!r} was already used with a different payload; a request id "
            "names one input (send a new id for a new input)"
        )
        self.request_id = request_id


class LogLocked(CTDInputError):
    """Another process holds the log's writer lock (a second gateway on the same ``--db``)."""


def utc_timestamp() -> str:
    """Now, ISO-8601 UTC with microseconds (sortable as text)."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def lock_path(db: Path) -> Path:
    """The lock file beside the log: ``<db>.lock``."""
    return db.with_name(db.name + ".lock")


def acquire_writer_lock(db: Path) -> int:
    """Take the exclusive writer lock of ``db`` (non-blocking); returns the open lock fd.

    Raises
    ------
    LogLocked
        Another process holds it.
    """
    path = lock_path(db)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "?"
        finally:
            os.close(fd)
        raise LogLocked(
            f"{db}: another gateway (pid {holder}) is writing this decision log (lock {path}); "
            "one process writes one log: stop it first, or give this one its own --db"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    return fd


#: ``--sync`` modes: ``full`` fsyncs the WAL at every group commit (an acknowledged decision
#: survives a crash of the process *and* of the machine); ``normal`` writes the WAL at every commit
#: but fsyncs only at checkpoints (an acknowledged decision survives ``kill -9`` and any crash of the
#: process, since the write is in the OS page cache; a power cut or kernel crash can lose the last
#: commits before the next checkpoint).
SYNC_MODES: Final = {"full": "FULL", "normal": "NORMAL"}


def _connect(path: Path, sync: str = "full") -> sqlite3.Connection:
    con = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute(f"PRAGMA synchronous={SYNC_MODES[sync]}")
    con.execute("PRAGMA busy_timeout=30000")
    return con


def decision_from_record(rec: Sequence[Any], new: bool = True) -> LoggedDecision:
    values = dict(zip(DECISION_COLUMNS, rec[2:], strict=True))
    values["delegated"] = bool(values["delegated"])
    values["expert_called"] = bool(values["expert_called"])
    return LoggedDecision(
        seq=int(rec[0]), timestamp=str(rec[1]), row=DecisionRow(**values), new=new
    )


@dataclass(frozen=True)
class FailedRequest:
    """An input the expert failed on under the ``503`` policy: recorded, but not a decision."""

    request_id: str
    outcome: str
    dv_score: float
    payload_sha256: str


#: What one request gets back from a commit: its logged rows, or the conflict that refused it.
CommitResult = list[LoggedDecision] | IdConflict


class PendingRequest:
    """One request's rows (and 503 failures) waiting for the next group commit."""

    __slots__ = ("failures", "future", "rows")

    def __init__(
        self,
        rows: list[DecisionRow],
        failures: Sequence[FailedRequest],
        future: asyncio.Future[CommitResult] | None,
    ) -> None:
        self.rows = rows
        self.failures = failures
        self.future = future


#: Stores the monitor checkpoint (one row): ``(after_seq, state)``.
_UPSERT_CHECKPOINT = (
    "INSERT INTO monitor_checkpoint (id, after_seq, state) VALUES (1, ?, ?) "
    "ON CONFLICT(id) DO UPDATE SET after_seq = excluded.after_seq, state = excluded.state"
)

#: Seconds during which a failed commit keeps ``/readyz`` failing even if a probe write succeeds.
FAILURE_MEMORY_S = 10.0


class GroupCommitLog:
    """Group commit on one writer thread, shared by the SQLite and the Postgres decision logs.

    A subclass opens its store, calls :meth:`_init_group_commit`, and implements :meth:`_commit`
    (one transaction for a batch of requests, on the writer thread) and :meth:`probe_write`.
    ``inline`` (commit on the event loop, no thread hand-off) is for commits that wait for no I/O.
    """

    inline = False
    #: Called with each commit's new rows once they are durable (set by the subclass).
    _on_commit: Callable[[list[LoggedDecision]], None] | None = None

    def _init_group_commit(self) -> None:
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ctd-decision-log")
        self._pending: list[PendingRequest] = []
        self._flushing = False
        self._closed = False
        self.commits = 0
        #: Commits that failed (disk full, I/O error, ...): ``ctd_log_write_failures_total``.
        self.write_failures = 0
        self.last_failure: float | None = None
        self.last_success: float | None = None
        self.last_error: str | None = None

    def _commit(
        self, batch: list[PendingRequest]
    ) -> list[CommitResult]:  # pragma: no cover - abstract
        raise NotImplementedError

    def probe_write(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _failed(self, exc: BaseException) -> None:
        """Bookkeeping of a failed commit (``/readyz`` and the write-failure metric)."""
        self.write_failures += 1
        self.last_failure = time.monotonic()
        self.last_error = f"{type(exc).__name__}: {exc}"
        log.error("decision log commit failed: %s", self.last_error)

    def _succeeded(self, fresh: list[LoggedDecision]) -> None:
        """Bookkeeping of a durable commit, then the commit hook on its new rows.

        The hook (e.g. the monitor's checkpoint) runs after the rows are durable: if it fails, the
        rows and their acknowledgement stand, and the failure is logged.
        """
        self.commits += 1
        self.last_success = time.monotonic()
        if self._on_commit is not None and fresh:
            try:
                self._on_commit(fresh)
            except Exception:  # the rows are durable: their acknowledgement stands
                log.exception("the commit hook failed (the rows are logged)")

    async def append(
        self, rows: list[DecisionRow], failures: Sequence[FailedRequest] = ()
    ) -> list[LoggedDecision]:
        """Log one request's rows in the next group commit; returns once they are durable.

        Must be awaited on the event loop that serves the requests (the pending list is the
        loop's; only the commit itself runs on the writer thread).

        Raises
        ------
        IdConflict
            An id of ``rows`` is logged with another payload (nothing of this request written).
        sqlite3.Error, OSError
            The commit failed (nothing of the commit written; nothing acknowledged).
        """
        if self._closed:
            raise RuntimeError("the decision log is closed")
        loop = asyncio.get_running_loop()
        req = PendingRequest(rows, failures, loop.create_future())
        self._pending.append(req)
        if not self._flushing:
            self._flushing = True
            # One loop iteration later: requests parsed in this iteration join the same commit.
            loop.call_soon(self._flush, loop)
        assert req.future is not None
        out = await req.future
        if isinstance(out, IdConflict):
            raise out
        return out

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        batch, self._pending = self._pending, []
        if self.inline:  # no fsync to wait for: commit on the loop, no thread hand-off at all
            results: list[CommitResult] | None = None
            error: BaseException | None = None
            try:
                results = self._commit(batch)
            except Exception as exc:
                error = exc
            for i, req in enumerate(batch):
                fut = req.future
                if fut is None or fut.done():
                    continue
                if error is not None:
                    fut.set_exception(error)
                else:
                    assert results is not None
                    fut.set_result(results[i])
            self._flushing = False
            return
        commit = loop.run_in_executor(self._writer, self._commit, batch)
        commit.add_done_callback(lambda f: self._committed(loop, batch, f))

    def _committed(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: list[PendingRequest],
        done: asyncio.Future[list[CommitResult]],
    ) -> None:
        exc = done.exception()
        for i, req in enumerate(batch):
            fut = req.future
            if fut is None or fut.done():  # a cancelled request (client gone)
                continue
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(done.result()[i])
        if self._pending:
            self._flush(loop)
        else:
            self._flushing = False

    def write(
        self, rows: list[DecisionRow], failures: Sequence[FailedRequest] = ()
    ) -> list[LoggedDecision]:
        """Synchronous :meth:`append` (one commit, from any thread but the writer)."""
        if self._closed:
            raise RuntimeError("the decision log is closed")
        (out,) = self._writer.submit(self._commit, [PendingRequest(rows, failures, None)]).result()
        if isinstance(out, IdConflict):
            raise out
        return out

    def writable(self) -> tuple[bool, str | None]:
        """Whether the log takes writes now: a probe write succeeds and no commit failed in the
        last :data:`FAILURE_MEMORY_S` seconds without a successful one since. ``(ok, reason)``."""
        try:
            self.probe_write()
        except Exception as exc:
            return False, f"the decision log cannot be written ({type(exc).__name__}: {exc})"
        failed, ok = self.last_failure, self.last_success
        if failed is not None and (ok is None or ok < failed):
            if time.monotonic() - failed < FAILURE_MEMORY_S:
                return False, f"the last decision-log commit failed ({self.last_error})"
        return True, None


class DecisionLog(GroupCommitLog):
    """Append-only, durable decision log with group commit on one writer thread.

    Parameters
    ----------
    path : path
        The SQLite file (created with its parent folder if missing).
    identity : dict of str to str
        What this log belongs to (certificate digest, threshold, expert, budget); stored on first
        use, and a mismatch on reopening is an error (one log audits against one certified rule).
    on_commit : callable, optional
        Called in the writer thread, in commit order, with each committed batch of new rows.
    sync : {"full", "normal"}
        Durability of a commit (:data:`SYNC_MODES`); ``full`` by default.
    checkpoint : callable, optional
        Called in the writer thread inside every commit's transaction, before the new rows are
        seen by ``on_commit``; returns ``(after_seq, state)`` to store in ``monitor_checkpoint``,
        or None to store nothing this time.

    Raises
    ------
    LogLocked
        Another process writes this log.
    CTDInputError
        When the file is not a gateway log, or was written for another certificate entry.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        identity: dict[str, str],
        on_commit: Callable[[list[LoggedDecision]], None] | None = None,
        checkpoint: Callable[[], tuple[int, str] | None] | None = None,
        sync: str = "full",
    ) -> None:
        if sync not in SYNC_MODES:
            raise CTDInputError(f"sync must be one of {sorted(SYNC_MODES)}, got {sync!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd: int | None = acquire_writer_lock(self.path)
        try:
            try:
                self._con = _connect(self.path, sync)
                self._con.executescript(SCHEMA)
                self._check_identity(identity)
            except sqlite3.DatabaseError as exc:
                raise CTDInputError(f"{self.path}: cannot open the decision log ({exc})") from exc
            self._read = _connect(self.path)
            self._read_lock = threading.Lock()
        except BaseException:
            self._release_lock()
            raise
        self._on_commit = on_commit
        self._checkpoint = checkpoint
        self._init_group_commit()
        #: With ``sync="normal"`` a commit does not wait for the disk (microseconds): it runs on
        #: the event loop itself. With ``"full"`` it waits for an fsync (milliseconds), so it runs
        #: on the writer thread while the loop keeps parsing the next requests.
        self.inline = sync == "normal"
        #: Serialises transactions on the write connection (the loop's inline commits, the writer
        #: thread's commits, probes and events).
        self._con_lock = threading.RLock()

    # ------------------------------------------------------------------ identity
    def _check_identity(self, identity: dict[str, str]) -> None:
        stored = dict(self._con.execute("SELECT key, value FROM gateway_meta").fetchall())
        wanted = {"schema_version": LOG_SCHEMA_VERSION, **identity}
        if not stored:
            self._con.execute("BEGIN IMMEDIATE")
            self._con.executemany(
                "INSERT INTO gateway_meta (key, value) VALUES (?, ?)", sorted(wanted.items())
            )
            self._con.execute("COMMIT")
            return
        if stored.get("schema_version") in _MIGRATABLE:
            self._migrate()
            stored["schema_version"] = LOG_SCHEMA_VERSION
        for key, value in wanted.items():
            if stored.get(key) != value:
                raise CTDInputError(
                    f"{self.path}: this decision log was written with {key}={stored.get(key)!r}, "
                    f"not {value!r}; one log holds the decisions of one certified rule, so use a new "
                    "--db for a new certificate (and audit each log against its own certificate)"
                )

    def _migrate(self) -> None:
        """Version 1 -> 2: add ``payload_sha256`` (NULL for old rows: their ids answer 409)."""
        cols = [r[1] for r in self._con.execute(f"PRAGMA table_info({DECISIONS_TABLE})")]
        self._con.execute("BEGIN IMMEDIATE")
        if "payload_sha256" not in cols:
            self._con.execute(f"ALTER TABLE {DECISIONS_TABLE} ADD COLUMN payload_sha256 TEXT")
        self._con.execute(
            "UPDATE gateway_meta SET value = ? WHERE key = 'schema_version'", (LOG_SCHEMA_VERSION,)
        )
        self._con.execute("COMMIT")

    # ------------------------------------------------------------------ writing
    def _commit(self, batch: list[PendingRequest]) -> list[CommitResult]:
        """One transaction for every request of ``batch`` (writer thread)."""
        con = self._con
        results: list[CommitResult] = []
        fresh: list[LoggedDecision] = []
        self._con_lock.acquire()
        try:
            con.execute("BEGIN IMMEDIATE")
            if self._checkpoint is not None:
                point = self._checkpoint()
                if point is not None:
                    con.execute(_UPSERT_CHECKPOINT, point)
            for req in batch:
                results.append(self._insert_request(con, req, fresh))
            con.execute("COMMIT")
        except BaseException as exc:
            if con.in_transaction:
                try:
                    con.execute("ROLLBACK")
                except sqlite3.Error:  # pragma: no cover - rollback of a broken connection
                    pass
            self._failed(exc)
            raise
        finally:
            self._con_lock.release()
        self._succeeded(fresh)
        return results

    def _insert_request(
        self, con: sqlite3.Connection, req: PendingRequest, fresh: list[LoggedDecision]
    ) -> CommitResult:
        con.execute("SAVEPOINT request")
        out: list[LoggedDecision] = []
        mine: list[LoggedDecision] = []
        for row in req.rows:
            ts = utc_timestamp()
            cur = con.execute(_INSERT, (ts, *(getattr(row, c) for c in DECISION_COLUMNS)))
            if cur.rowcount == 1:
                logged = LoggedDecision(seq=int(cur.lastrowid or 0), timestamp=ts, row=row)
                mine.append(logged)
            else:  # the id is logged: the same payload is a replay, another is a conflict
                rec = con.execute(
                    SELECT_DECISIONS + " WHERE request_id = ?", (row.request_id,)
                ).fetchone()
                logged = decision_from_record(rec, new=False)
                if logged.row.payload_sha256 is None or (
                    logged.row.payload_sha256 != row.payload_sha256
                ):
                    con.execute("ROLLBACK TO request")
                    con.execute("RELEASE request")
                    return IdConflict(row.request_id)
            out.append(logged)
        if req.failures:
            ts = utc_timestamp()
            con.executemany(
                "INSERT INTO request_failures (timestamp, request_id, outcome, dv_score, "
                "payload_sha256) VALUES (?, ?, ?, ?, ?)",
                [(ts, f.request_id, f.outcome, f.dv_score, f.payload_sha256) for f in req.failures],
            )
        con.execute("RELEASE request")
        fresh.extend(mine)
        return out

    def probe_write(self) -> None:
        """A small durable write (heartbeat in ``gateway_meta``) on the writer thread; raises on
        failure. Used by ``/readyz``."""

        def beat() -> None:
            con = self._con
            with self._con_lock:
                _beat(con)

        def _beat(con: sqlite3.Connection) -> None:
            try:
                con.execute("BEGIN IMMEDIATE")
                con.execute(
                    "INSERT INTO gateway_meta (key, value) VALUES ('heartbeat', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (utc_timestamp(),),
                )
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise

        self._writer.submit(beat).result(timeout=30)

    def record_event(self, kind: str, detail: str) -> None:
        """Append an operator event (alarm, reset) to ``gateway_events`` after the logged rows."""

        def put(con: sqlite3.Connection) -> None:
            (last,) = con.execute(f"SELECT COALESCE(MAX(seq), 0) FROM {DECISIONS_TABLE}").fetchone()
            con.execute(
                "INSERT INTO gateway_events (timestamp, kind, after_decision, detail) "
                "VALUES (?, ?, ?, ?)",
                (utc_timestamp(), kind, int(last), detail),
            )

        self._transaction(put)

    def store_checkpoint(self, after_seq: int, state: str) -> None:
        """Store the monitor's state after ``after_seq`` outside a commit of rows (a restart that
        replayed a long tail: the next restart starts from here, not from the same tail)."""
        self._transaction(lambda con: con.execute(_UPSERT_CHECKPOINT, (after_seq, state)))

    def _transaction(self, work: Callable[[sqlite3.Connection], object]) -> None:
        """``work(con)`` in one ``BEGIN IMMEDIATE`` transaction on the writer thread (waited for
        from any other thread), rolled back if it raises."""

        def run() -> None:
            with self._con_lock:
                con = self._con
                try:
                    con.execute("BEGIN IMMEDIATE")
                    work(con)
                    con.execute("COMMIT")
                except BaseException:
                    if con.in_transaction:
                        con.execute("ROLLBACK")
                    raise

        if self._in_writer():
            run()
        else:
            self._writer.submit(run).result()

    @staticmethod
    def _in_writer() -> bool:
        return threading.current_thread().name.startswith("ctd-decision-log")

    # ------------------------------------------------------------------ reading
    def find(self, request_id: str) -> LoggedDecision | None:
        """The logged decision for ``request_id``, or None."""
        with self._read_lock:
            rec = self._read.execute(
                SELECT_DECISIONS + " WHERE request_id = ?", (request_id,)
            ).fetchone()
        return None if rec is None else decision_from_record(rec, new=False)

    def delegations(self, after_seq: int = 0) -> tuple[int, list[bool]]:
        """The last ``seq`` read (``after_seq`` if none) and the ``delegated`` column in log order,
        for rows with ``seq > after_seq``."""
        with self._read_lock:
            recs = self._read.execute(
                f"SELECT seq, delegated FROM {DECISIONS_TABLE} WHERE seq > ? ORDER BY seq",
                (after_seq,),
            ).fetchall()
        return (int(recs[-1][0]) if recs else after_seq), [bool(r[1]) for r in recs]

    def counts(self, after_seq: int = 0) -> tuple[int, int, int]:
        """``(last seq, rows, delegated rows)`` for ``seq > after_seq``, counted by SQLite."""
        with self._read_lock:
            n, k, last = self._read.execute(
                "SELECT COUNT(*), COALESCE(SUM(delegated), 0), COALESCE(MAX(seq), ?) "
                f"FROM {DECISIONS_TABLE} WHERE seq > ?",
                (after_seq, after_seq),
            ).fetchone()
        return int(last), int(n), int(k)

    def last_event(self, kind: str) -> tuple[int, str] | None:
        """``(after_decision, detail)`` of the latest event of ``kind``, or None."""
        with self._read_lock:
            rec = self._read.execute(
                "SELECT after_decision, detail FROM gateway_events WHERE kind = ? "
                "ORDER BY seq DESC LIMIT 1",
                (kind,),
            ).fetchone()
        return None if rec is None else (int(rec[0]), str(rec[1]))

    def load_checkpoint(self) -> tuple[int, str] | None:
        """``(after_seq, state)`` of the stored monitor checkpoint, or None."""
        with self._read_lock:
            rec = self._read.execute("SELECT after_seq, state FROM monitor_checkpoint").fetchone()
        return None if rec is None else (int(rec[0]), str(rec[1]))

    def close(self) -> None:
        """Finish the running commit, stop the writer, close the connections, release the lock."""
        if self._closed:
            return
        self._closed = True
        self._writer.shutdown(wait=True)
        self._con.close()
        self._read.close()
        self._release_lock()

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

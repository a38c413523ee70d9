"""The gateway's decision log: one SQLite row per decision, committed before the answer is sent.

Why SQLite (in WAL mode) and not a file of JSON lines or DuckDB:

* **Embedded and in the standard library.** No server to run, no extra package; the log is one
  file that ``ctd audit --log gateway.db`` reads as is (:mod:`ctd_stats.audit.logs`).
* **Durable.** ``journal_mode=WAL`` with ``synchronous=FULL`` fsyncs the write-ahead log at every
  commit, so a decision whose commit returned survives ``kill -9`` and power loss; a half-written
  transaction is rolled back on the next open. A request is answered only after its row committed.
* **Readers never block the writer.** WAL lets ``ctd audit`` and ``GET /v1/budget`` read a
  consistent snapshot while the gateway appends.
* **Single writer fits one replica.** SQLite serialises writers; one gateway process owns its file.
  Several replicas need one log each (audit them one by one) or a shared server database.

Throughput comes from **group commit**: a single writer thread takes every row queued since its
last commit, inserts them in one transaction and fsyncs once, then wakes the waiting requests.
``request_id`` is UNIQUE: a retried request with the same id gets the row already logged
(idempotent), never a second row.

Schema (table ``decisions``; the columns ``ctd audit`` reads are ``timestamp``, ``dv_score``,
``delegated`` and ``group``): see :data:`SCHEMA`. ``delegated`` is the certified rule's decision
``dv_score > threshold``; what the gateway then did (expert answered, expert failed and the probe
answered, delegation suppressed after a monitor alarm, ...) is in ``outcome`` and ``expert_called``.
"""

from __future__ import annotations

import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from ctd_stats.errors import CTDInputError

LOG_SCHEMA_VERSION: Final = "ctd.gateway-log/1"

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS decisions (
    seq INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL UNIQUE,
    timestamp TEXT NOT NULL,
    dv_score REAL NOT NULL,
    probe_prob REAL,
    delegated INTEGER NOT NULL CHECK (delegated IN (0, 1)),
    expert_called INTEGER NOT NULL CHECK (expert_called IN (0, 1)),
    expert_prob REAL,
    probability REAL,
    verdict TEXT,
    outcome TEXT NOT NULL,
    threshold REAL NOT NULL,
    certificate_sha256 TEXT NOT NULL,
    expert TEXT,
    "group" TEXT,
    input_kind TEXT NOT NULL,
    expert_latency_ms REAL
);
CREATE TABLE IF NOT EXISTS gateway_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS gateway_events (
    seq INTEGER PRIMARY KEY,
    timestamp TEXT NOT NULL,
    kind TEXT NOT NULL,
    after_decision INTEGER NOT NULL,
    detail TEXT NOT NULL
);
"""


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


_COLUMNS: Final = [f.name for f in fields(DecisionRow)]
_INSERT: Final = (
    "INSERT INTO decisions (timestamp, "
    + ", ".join('"group"' if c == "group" else c for c in _COLUMNS)
    + ") VALUES (?, "
    + ", ".join("?" for _ in _COLUMNS)
    + ") ON CONFLICT(request_id) DO NOTHING"
)
_SELECT: Final = (
    "SELECT seq, timestamp, "
    + ", ".join('"group"' if c == "group" else c for c in _COLUMNS)
    + " FROM decisions"
)


@dataclass(frozen=True)
class LoggedDecision:
    """A row as stored: the decision, its position ``seq`` and its commit ``timestamp``."""

    seq: int
    timestamp: str
    row: DecisionRow
    #: False when the request id was already in the log (the stored row is returned instead).
    new: bool = True


def utc_timestamp() -> str:
    """Now, ISO-8601 UTC with microseconds (sortable as text)."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _connect(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("PRAGMA busy_timeout=30000")
    return con


def _from_db(rec: Sequence[Any], new: bool = True) -> LoggedDecision:
    values = dict(zip(_COLUMNS, rec[2:], strict=True))
    values["delegated"] = bool(values["delegated"])
    values["expert_called"] = bool(values["expert_called"])
    return LoggedDecision(
        seq=int(rec[0]), timestamp=str(rec[1]), row=DecisionRow(**values), new=new
    )


class _Batch:
    __slots__ = ("future", "rows")

    def __init__(self, rows: list[DecisionRow]) -> None:
        self.rows = rows
        self.future: Future[list[LoggedDecision]] = Future()


class DecisionLog:
    """Append-only, durable decision log with a group-committing writer thread.

    Parameters
    ----------
    path : path
        The SQLite file (created with its parent folder if missing).
    identity : dict of str to str
        What this log belongs to (certificate digest, threshold, expert, budget); stored on first
        use, and a mismatch on reopening is an error (one log audits against one certified rule).
    on_commit : callable, optional
        Called in the writer thread, in commit order, with each committed batch of new rows.

    Raises
    ------
    CTDInputError
        When the file is not a gateway log, or was written for another certificate entry.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        identity: dict[str, str],
        on_commit: Callable[[list[LoggedDecision]], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = _connect(self.path)
            self._con.executescript(SCHEMA)
            self._check_identity(identity)
        except sqlite3.DatabaseError as exc:
            raise CTDInputError(f"{self.path}: cannot open the decision log ({exc})") from exc
        self._read = _connect(self.path)
        self._read_lock = threading.Lock()
        self._on_commit = on_commit
        self._queue: queue.SimpleQueue[_Batch | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._writer, name="ctd-decision-log", daemon=True)
        self._closed = False
        self.commits = 0
        self._thread.start()

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
        for key, value in wanted.items():
            if stored.get(key) != value:
                raise CTDInputError(
                    f"{self.path}: this decision log was written with {key}={stored.get(key)!r}, "
                    f"not {value!r}; one log holds the decisions of one certified rule, so use a new "
                    "--db for a new certificate (and audit each log against its own certificate)"
                )

    # ------------------------------------------------------------------ writing
    def submit(self, rows: list[DecisionRow]) -> Future[list[LoggedDecision]]:
        """Queue rows for the next group commit; the future resolves once they are durable."""
        if self._closed:
            raise RuntimeError("the decision log is closed")
        batch = _Batch(rows)
        self._queue.put(batch)
        return batch.future

    def _writer(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batches = [first]
            stop = False
            while len(batches) < 512:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batches.append(nxt)
            self._commit(batches)
            if stop:
                return

    def _commit(self, batches: list[_Batch]) -> None:
        con = self._con
        results: list[list[LoggedDecision]] = []
        fresh: list[LoggedDecision] = []
        try:
            con.execute("BEGIN IMMEDIATE")
            for b in batches:
                out = []
                for row in b.rows:
                    ts = utc_timestamp()
                    cur = con.execute(_INSERT, (ts, *(getattr(row, c) for c in _COLUMNS)))
                    if cur.rowcount == 1:
                        logged = LoggedDecision(seq=int(cur.lastrowid or 0), timestamp=ts, row=row)
                        fresh.append(logged)
                    else:  # the id is already logged: answer with the stored decision
                        rec = con.execute(
                            _SELECT + " WHERE request_id = ?", (row.request_id,)
                        ).fetchone()
                        logged = _from_db(rec, new=False)
                    out.append(logged)
                results.append(out)
            con.execute("COMMIT")
        except BaseException as exc:
            if con.in_transaction:
                con.execute("ROLLBACK")
            for b in batches:
                b.future.set_exception(exc)
            return
        self.commits += 1
        if self._on_commit is not None and fresh:
            try:
                self._on_commit(fresh)
            except Exception as exc:  # never lose the acknowledgement of committed rows
                for b in batches:
                    b.future.set_exception(exc)
                return
        for b, out in zip(batches, results, strict=True):
            b.future.set_result(out)

    def record_event(self, kind: str, detail: str) -> None:
        """Append an operator event (alarm, reset) to ``gateway_events`` after the logged rows."""
        with self._read_lock:
            con = _connect(self.path)
            try:
                con.execute("BEGIN IMMEDIATE")
                (last,) = con.execute("SELECT COALESCE(MAX(seq), 0) FROM decisions").fetchone()
                con.execute(
                    "INSERT INTO gateway_events (timestamp, kind, after_decision, detail) "
                    "VALUES (?, ?, ?, ?)",
                    (utc_timestamp(), kind, int(last), detail),
                )
                con.execute("COMMIT")
            finally:
                con.close()

    # ------------------------------------------------------------------ reading
    def find(self, request_id: str) -> LoggedDecision | None:
        """The logged decision for ``request_id``, or None."""
        with self._read_lock:
            rec = self._read.execute(_SELECT + " WHERE request_id = ?", (request_id,)).fetchone()
        return None if rec is None else _from_db(rec, new=False)

    def delegations(self, after_seq: int = 0) -> tuple[int, list[bool]]:
        """The last ``seq`` read (``after_seq`` if none) and the ``delegated`` column in log order,
        for rows with ``seq > after_seq``."""
        with self._read_lock:
            recs = self._read.execute(
                "SELECT seq, delegated FROM decisions WHERE seq > ? ORDER BY seq", (after_seq,)
            ).fetchall()
        return (int(recs[-1][0]) if recs else after_seq), [bool(r[1]) for r in recs]

    def last_event(self, kind: str) -> tuple[int, str] | None:
        """``(after_decision, detail)`` of the latest event of ``kind``, or None."""
        with self._read_lock:
            rec = self._read.execute(
                "SELECT after_decision, detail FROM gateway_events WHERE kind = ? "
                "ORDER BY seq DESC LIMIT 1",
                (kind,),
            ).fetchone()
        return None if rec is None else (int(rec[0]), str(rec[1]))

    def close(self) -> None:
        """Flush queued rows, stop the writer and close the connections."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join()
        self._con.close()
        self._read.close()

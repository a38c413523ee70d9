"""The gateway's live budget state: decision counts and the change monitor, fed in log order.

The monitor is the change detector :class:`~ctd_stats.audit.change_monitor.ChangeMonitor` (its delay
after a change does not grow with the history, unlike the cumulative test). It is fed the committed
rows of the decision log in ``seq`` order, from the log's commit hooks.

**SQLite log** (one gateway): the state is checkpointed in the log (``monitor_checkpoint``, in the
same transaction as rows, every :data:`CHECKPOINT_ROWS` rows), so a restart reads the checkpoint and
replays only the rows after it instead of the whole log.

**PostgreSQL log** (:mod:`serve.pglog`, many gateways): **one** state for all of them. Every commit,
of any gateway, runs :meth:`BudgetWatch.advance` under the state row's lock, which starts from the
stored state whenever another gateway committed since this one's last commit (the stored version is
not the one this gateway wrote), feeds the new rows, and stores the result with the rows. The
detector therefore sees the combined traffic of all replicas in commit order, and a restart reads
the state instead of replaying the log. A replica learns of an alarm raised (or a reset made) by
another one at its next commit, or when it re-reads the state: at least every :data:`REFRESH_S`
seconds before deciding, before every request while it suppresses delegation, and on
``/v1/budget`` and ``/metrics``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import numpy as np

from ctd_stats.audit.change_monitor import ChangeMonitor
from serve.decisionlog import DecisionLog, LoggedDecision
from serve.pglog import PostgresDecisionLog

log = logging.getLogger("ctd.serve")

#: The monitor state is checkpointed in a SQLite log at most every this many rows.
CHECKPOINT_ROWS = 4096
#: A gateway on a shared (PostgreSQL) log re-reads the shared monitor state at least this often
#: (seconds), and before every request while it suppresses delegation (a reset elsewhere resumes it).
REFRESH_S = 1.0


class BudgetWatch:
    """Counts and change monitor of one gateway's log (shared by all gateways of a PostgreSQL log).

    Parameters
    ----------
    budget, alpha : float
        The certified budget and the monitor's level (alarm at evidence ``1/alpha``).
    on_alarm : {"never-delegate", "continue"}
        Whether an alarm suspends delegation (:attr:`never_delegate`) until a reset.

    The log is attached after it was opened with this object's hooks (:meth:`observe` and
    :meth:`checkpoint` for SQLite; :meth:`advance`, :meth:`stale` and :meth:`announce` for
    PostgreSQL); :meth:`restore` then reads the state. Attributes are read under :attr:`lock`.
    """

    def __init__(self, budget: float, alpha: float, on_alarm: str) -> None:
        self.budget, self.alpha, self.on_alarm = budget, alpha, on_alarm
        self.lock = threading.Lock()
        self.monitor = self.new_monitor()
        self.monitor_since = 0
        self.n_total = self.k_total = 0
        self.never_delegate = False
        self.log: DecisionLog | PostgresDecisionLog | None = None
        self.pg: PostgresDecisionLog | None = None
        self._fed = 0
        self._checkpointed = 0
        #: Version of the shared state this copy is (-1: stale; PostgreSQL logs only).
        self._version = -1
        self._raised = False
        self.refreshed = 0.0

    def attach(self, decision_log: DecisionLog | PostgresDecisionLog) -> None:
        """The log this state follows (before :meth:`restore`)."""
        self.log = decision_log
        self.pg = decision_log if isinstance(decision_log, PostgresDecisionLog) else None

    @property
    def _store(self) -> DecisionLog | PostgresDecisionLog:
        if self.log is None:
            raise RuntimeError("no decision log attached")
        return self.log

    def due(self) -> bool:
        """Whether a gateway on a shared log should re-read the state before deciding."""
        return self.pg is not None and (
            self.never_delegate or time.monotonic() - self.refreshed > REFRESH_S
        )

    def new_monitor(self) -> ChangeMonitor:
        return ChangeMonitor(self.budget, self.alpha)

    def restore(self) -> None:
        """Counts and monitor from the checkpoint plus the rows after it (or from the log after
        the last operator reset when there is no usable checkpoint); the shared state of a
        PostgreSQL log as it is."""
        if self.pg is not None:
            version, shared = self.pg.load_state()
            with self.lock:
                self._adopt(version, shared)
            if self.monitor.alarm:
                log.warning("budget monitor alarm in the shared state (never delegate: %s)",
                            self.never_delegate)  # fmt: skip
            return
        reset = self._store.last_event("reset")
        self.monitor_since = reset[0] if reset is not None else 0
        state = self._load_checkpoint()
        if state is not None:
            self.monitor = ChangeMonitor.from_state(state["monitor"])
            self._fed = int(state["after_seq"])
            _, n, k = self._store.counts(self._fed)
            self.n_total, self.k_total = int(state["n_total"]) + n, int(state["k_total"]) + k
        else:
            self.monitor = self.new_monitor()
            self._fed = self.monitor_since
            _, self.n_total, self.k_total = self._store.counts(0)
        # The monitor has seen every row up to seq ``_fed`` (rows committed later come via _observe).
        self._fed, tail = self._store.delegations(self._fed)
        self.monitor.update(np.asarray(tail, dtype=bool))
        self._checkpointed = self._fed
        if len(tail) >= CHECKPOINT_ROWS:  # a long replay (an older log, rows from elsewhere):
            # checkpoint now, so that the next restart does not replay the same rows again
            store = self._store
            assert isinstance(store, DecisionLog)
            with self.lock:
                point = json.dumps(self.state())
            store.store_checkpoint(self._fed, point)
        self.never_delegate = self.monitor.alarm and self.on_alarm == "never-delegate"
        if self.monitor.alarm:
            log.warning(
                "budget monitor alarm restored from the log (never delegate: %s)",
                self.never_delegate,
            )

    def _load_checkpoint(self) -> dict[str, Any] | None:
        """The stored checkpoint when it belongs to the current monitor epoch and settings."""
        store = self._store
        assert isinstance(store, DecisionLog)
        point = store.load_checkpoint()
        if point is None:
            return None
        try:
            state = json.loads(point[1])
            mon = state["monitor"]
            fresh = self.new_monitor().to_state()
            same = all(mon[key] == fresh[key] for key in ("version", "budget", "alpha", "spacing"))
            if not same or int(state["since"]) != self.monitor_since:
                return None
            if int(state["after_seq"]) != point[0]:
                return None
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring an unreadable monitor checkpoint; replaying the log")
            return None
        return dict(state)

    def checkpoint(self) -> tuple[int, str] | None:
        """Writer-thread hook (inside a commit): the state to store, every CHECKPOINT_ROWS rows."""
        with self.lock:
            if self._fed - self._checkpointed < CHECKPOINT_ROWS:
                return None
            state = self.state()
            self._checkpointed = self._fed
        return self._fed, json.dumps(state)

    def state(self) -> dict[str, Any]:
        """The monitor state with the counts (caller holds the lock)."""
        return {
            "after_seq": self._fed,
            "since": self.monitor_since,
            "n_total": self.n_total,
            "k_total": self.k_total,
            "monitor": self.monitor.to_state(),
        }

    def _adopt(self, version: int, state: str | None) -> None:
        """Take the shared state of a PostgreSQL log (caller holds the lock)."""
        if state is None:  # a new log: nothing decided yet
            self.monitor, self.monitor_since = self.new_monitor(), 0
            self.n_total = self.k_total = self._fed = 0
        else:
            st = json.loads(state)
            self.monitor = ChangeMonitor.from_state(st["monitor"])
            self.monitor_since, self._fed = int(st["since"]), int(st["after_seq"])
            self.n_total, self.k_total = int(st["n_total"]), int(st["k_total"])
        self._version = version
        self.never_delegate = self.monitor.alarm and self.on_alarm == "never-delegate"

    def advance(self, version: int, state: str | None, rows: list[LoggedDecision]) -> str:
        """PostgreSQL commit hook, under the shared state's row lock: the state after ``rows``.

        Starts from the stored state when another gateway committed since this one's last commit
        (``version`` is not ours), so the monitor is fed every row of the log, in ``seq`` order.
        """
        with self.lock:
            if version != self._version:
                self._adopt(version, state)
            self._raised = self._feed(rows) or self._raised
            self._version = version + 1
            return json.dumps(self.state())

    def stale(self) -> None:
        """A commit that ran :meth:`advance` failed: re-read the shared state next time."""
        with self.lock:
            self._version = -1
            self._raised = False

    def refresh(self) -> None:
        """Adopt a newer shared state (another gateway committed; PostgreSQL logs only)."""
        if self.pg is None:
            return
        self.refreshed = time.monotonic()
        version, state = self.pg.load_state()
        with self.lock:
            if version > self._version:
                self._adopt(version, state)

    def _feed(self, rows: list[LoggedDecision]) -> bool:
        """Committed rows update the counts and the monitor, in log order (caller holds the lock).
        Whether they raised the alarm."""
        dec = np.fromiter((r.row.delegated for r in rows), dtype=bool, count=len(rows))
        seq = np.fromiter((r.seq for r in rows), dtype=np.int64, count=len(rows))
        was = self.monitor.alarm
        self.n_total += dec.size
        self.k_total += int(dec.sum())
        # A reset may already have replayed some of these rows into its fresh monitor.
        self.monitor.update(dec[seq > self._fed])
        self._fed = max(self._fed, int(seq.max()))
        raised = self.monitor.alarm and not was
        if raised and self.on_alarm == "never-delegate":
            self.never_delegate = True
        return raised

    def observe(self, rows: list[LoggedDecision]) -> None:
        """Writer-thread hook (SQLite log): committed rows feed the counts and the monitor."""
        with self.lock:
            raised = self._feed(rows)
        if raised:
            self._alarmed()

    def announce(self, rows: list[LoggedDecision]) -> None:
        """Writer-thread hook (PostgreSQL log), after a commit: announce an alarm it raised."""
        with self.lock:
            raised, self._raised = self._raised, False
        if raised:
            self._alarmed()

    def _alarmed(self) -> None:
        """Log and record an alarm this gateway's commit raised."""
        log.warning(
            "budget monitor alarm: evidence %.3g >= %.3g; %s",
            self.monitor.evidence,
            1 / self.alpha,
            "delegation suspended until POST /v1/admin/reset"
            if self.never_delegate
            else "delegation continues (on_alarm=continue)",
        )
        self._store.record_event("alarm", f"n={self.monitor.n} k={self.monitor.k}")

    def reset(self) -> None:
        """Operator reset: a fresh monitor from the next decision, delegation resumed (for every
        gateway sharing a PostgreSQL log)."""
        if self.pg is not None:

            def fresh(version: int, state: str | None, last: int) -> tuple[str, tuple[str, str]]:
                with self.lock:
                    if version != self._version:
                        self._adopt(version, state)
                    self.monitor, self.monitor_since, self._fed = self.new_monitor(), last, last
                    self.never_delegate = False
                    self._version = version + 1
                    return json.dumps(self.state()), ("reset", "operator reset")

            self.pg.update_state(fresh)
            log.warning("operator reset of the shared budget monitor after decision %d",
                        self.monitor_since)  # fmt: skip
            return
        # The event goes through the writer (after every queued commit); not under the lock, which
        # the writer's commit hook takes.
        self._store.record_event("reset", "operator reset")
        with self.lock:
            reset = self._store.last_event("reset")
            self.monitor_since = reset[0] if reset is not None else self.n_total
            self.monitor = self.new_monitor()
            self._checkpointed = 0
            fed, replay = self._store.delegations(self.monitor_since)
            self.monitor.update(np.asarray(replay, dtype=bool))
            self._fed = max(self._fed, fed)
            self.never_delegate = self.monitor.alarm and self.on_alarm == "never-delegate"
        log.warning("operator reset of the budget monitor after decision %d", self.monitor_since)

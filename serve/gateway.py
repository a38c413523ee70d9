"""The gateway without HTTP: decide with the certified rule, call the expert, log, watch the budget.

One :class:`Gateway` per process (and per log: the log's writer lock enforces it). The delegate rule
is :meth:`ctd_stats.certificate.cascade.Cascade.delegate` (the package's only definition of ``d > τ``), the live
monitor is the change detector :class:`~ctd_stats.audit.change_monitor.ChangeMonitor` (its delay
after a change does not grow with the history, unlike the cumulative test), and the interval is
:func:`~ctd_stats.stats.intervals.clopper_pearson`; nothing here re-implements them.

The monitor's state is checkpointed in the log (``monitor_checkpoint``, in the same transaction as
rows, every :data:`CHECKPOINT_ROWS` rows), so a restart reads the checkpoint and replays only the
rows after it instead of the whole log.

With a PostgreSQL log (:mod:`serve.pglog`) several gateways share the log and **one** monitor state:
every commit, of any gateway, runs :meth:`Gateway._advance` under the state row's lock, which
starts from the stored state whenever another gateway committed since this one's last commit, feeds
the new rows, and stores the result with the rows. The detector therefore sees the combined
traffic of all replicas in commit order, and a restart reads the state instead of replaying the
log. A replica learns of an alarm raised (or a reset made) by another one at its next commit, or
when it re-reads the state: at least every :data:`REFRESH_S` seconds before deciding, before every
request while it suppresses delegation, and on ``/v1/budget`` and ``/metrics``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from ctd_stats.audit.change_monitor import ChangeMonitor
from ctd_stats.certificate.cascade import Cascade
from ctd_stats.errors import CTDInputError
from ctd_stats.io import json_float
from ctd_stats.stats.intervals import clopper_pearson
from ctd_stats.table.score_table import file_sha256
from serve.config import GatewayConfig
from serve.decisionlog import (
    DecisionLog,
    DecisionRow,
    FailedRequest,
    IdConflict,
    LoggedDecision,
    payload_digest,
    utc_timestamp,
)
from serve.metrics import Metrics
from serve.pglog import PostgresDecisionLog
from serve.schemas import DecideRequest, Decision

log = logging.getLogger("ctd.serve")

#: The monitor state is checkpointed in the log at most every this many rows.
CHECKPOINT_ROWS = 4096
#: A gateway on a shared (PostgreSQL) log re-reads the shared monitor state at least this often
#: (seconds), and before every request while it suppresses delegation (a reset elsewhere resumes it).
REFRESH_S = 1.0


class ExpertBackend(Protocol):
    """What the gateway needs of an expert: a name and ``score(texts)`` -> P(unsafe) per text.

    :class:`probes.experts.HTTPExpert` fits; so does any in-process object with these members.
    """

    name: str

    def score(self, texts: Sequence[str]) -> NDArray[np.float64]: ...


class TextScorer(Protocol):
    """The probes layer as the gateway sees it: texts -> (probe_prob, dv_score) per text."""

    def score_texts(
        self, texts: Sequence[str]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]: ...


class InputError(Exception):
    """A request the gateway cannot decide (422), naming the field."""

    def __init__(self, loc: list[str | int], msg: str) -> None:
        super().__init__(msg)
        self.loc = loc
        self.msg = msg


class ExpertUnavailable(Exception):
    """The expert failed under the ``503`` policy: those inputs are not decided (nor logged as
    decisions; a retry is evaluated again); the other inputs of a batch were decided and logged."""

    def __init__(self, decisions: list[Decision]) -> None:
        super().__init__(
            "the expert failed; inputs with outcome expert_*_503 were not decided (retry them)"
        )
        self.decisions = decisions


@dataclass
class _Item:
    request_id: str
    probe_prob: float | None
    dv_score: float
    text: str | None
    group: str | None
    kind: str
    client_id: bool
    digest: str


def _verdict(p: float | None, cut: float) -> str | None:
    if p is None:
        return None
    return "unsafe" if p >= cut else "safe"


class Gateway:
    """Decisions, the decision log and the live budget state of one deployed certificate entry.

    Parameters
    ----------
    config : GatewayConfig
    expert : ExpertBackend, optional
        Called for delegated inputs that carry a text. Without one (or without a text), a
        delegated input is answered ``outcome="deferred"``: the caller runs its expert.
    scorer : TextScorer, optional
        Scores text-only inputs (required unless ``config.scores_only``).
    """

    def __init__(
        self,
        config: GatewayConfig,
        expert: ExpertBackend | None = None,
        scorer: TextScorer | None = None,
    ) -> None:
        if not config.scores_only and scorer is None:
            raise CTDInputError(
                "text inputs need a scorer (the probes layer); or use --scores-only"
            )
        self.config = config
        self.cascade = Cascade.from_certificate(config.certificate, config.budget, config.expert)
        if self.cascade.budget is None:  # pragma: no cover - always set from a certificate
            raise CTDInputError(f"{config.certificate}: the entry has no budget")
        self.budget = float(self.cascade.budget)
        self.certificate_sha256 = file_sha256(config.certificate)
        self.expert = expert
        self.scorer = scorer
        self.metrics = Metrics()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ctd-expert")
        self.started = time.time()
        identity = {
            "certificate_sha256": self.certificate_sha256,
            "expert": str(self.cascade.expert),
            "budget": repr(self.budget),
            "threshold": repr(self.cascade.threshold),
        }
        self._checkpointed = 0
        #: Version of the shared state this gateway's copy is (-1: stale; PostgreSQL logs only).
        self._version = -1
        self._raised = False
        self._refreshed = 0.0
        self.monitor: ChangeMonitor
        self.never_delegate: bool
        self._pg: PostgresDecisionLog | None = None
        self.log: DecisionLog | PostgresDecisionLog
        url = config.db_url
        if url is not None:
            # The replicas share one monitor: they must test at the same level.
            identity["alpha"] = repr(config.alpha)
            self.log = self._pg = PostgresDecisionLog(
                url,
                identity,
                advance=self._advance,
                aborted=self._stale,
                on_commit=self._announce,
                sync=config.sync,
            )
        else:
            assert isinstance(config.db, Path)
            self.log = DecisionLog(
                config.db,
                identity,
                on_commit=self._observe,
                checkpoint=self._checkpoint,
                sync=config.sync,
            )
        try:
            self._restore()
        except BaseException:
            self.log.close()
            raise

    # ------------------------------------------------------------------ monitor state
    def _new_monitor(self) -> ChangeMonitor:
        return ChangeMonitor(self.budget, self.config.alpha)

    def _restore(self) -> None:
        """Counts and monitor from the checkpoint plus the rows after it (or from the log after
        the last operator reset when there is no usable checkpoint); the shared state of a
        PostgreSQL log as it is."""
        if self._pg is not None:
            version, shared = self._pg.load_state()
            with self._lock:
                self._adopt(version, shared)
            if self.monitor.alarm:
                log.warning("budget monitor alarm in the shared state (never delegate: %s)",
                            self.never_delegate)  # fmt: skip
            return
        reset = self.log.last_event("reset")
        self.monitor_since = reset[0] if reset is not None else 0
        state = self._load_checkpoint()
        if state is not None:
            self.monitor = ChangeMonitor.from_state(state["monitor"])
            self._fed = int(state["after_seq"])
            _, n, k = self.log.counts(self._fed)
            self.n_total, self.k_total = int(state["n_total"]) + n, int(state["k_total"]) + k
        else:
            self.monitor = self._new_monitor()
            self._fed = self.monitor_since
            _, self.n_total, self.k_total = self.log.counts(0)
        # The monitor has seen every row up to seq ``_fed`` (rows committed later come via _observe).
        self._fed, tail = self.log.delegations(self._fed)
        self.monitor.update(np.asarray(tail, dtype=bool))
        self._checkpointed = self._fed
        self.never_delegate = self.monitor.alarm and self.config.on_alarm == "never-delegate"
        if self.monitor.alarm:
            log.warning(
                "budget monitor alarm restored from the log (never delegate: %s)",
                self.never_delegate,
            )

    def _load_checkpoint(self) -> dict[str, Any] | None:
        """The stored checkpoint when it belongs to the current monitor epoch and settings."""
        assert isinstance(self.log, DecisionLog)
        point = self.log.load_checkpoint()
        if point is None:
            return None
        try:
            state = json.loads(point[1])
            mon = state["monitor"]
            fresh = self._new_monitor().to_state()
            same = all(mon[key] == fresh[key] for key in ("version", "budget", "alpha", "spacing"))
            if not same or int(state["since"]) != self.monitor_since:
                return None
            if int(state["after_seq"]) != point[0]:
                return None
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring an unreadable monitor checkpoint; replaying the log")
            return None
        return dict(state)

    def _checkpoint(self) -> tuple[int, str] | None:
        """Writer-thread hook (inside a commit): the state to store, every CHECKPOINT_ROWS rows."""
        with self._lock:
            if self._fed - self._checkpointed < CHECKPOINT_ROWS:
                return None
            state = self._state()
            self._checkpointed = self._fed
        return self._fed, json.dumps(state)

    def _state(self) -> dict[str, Any]:
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
            self.monitor, self.monitor_since = self._new_monitor(), 0
            self.n_total = self.k_total = self._fed = 0
        else:
            st = json.loads(state)
            self.monitor = ChangeMonitor.from_state(st["monitor"])
            self.monitor_since, self._fed = int(st["since"]), int(st["after_seq"])
            self.n_total, self.k_total = int(st["n_total"]), int(st["k_total"])
        self._version = version
        self.never_delegate = self.monitor.alarm and self.config.on_alarm == "never-delegate"

    def _advance(self, version: int, state: str | None, rows: list[LoggedDecision]) -> str:
        """PostgreSQL commit hook, under the shared state's row lock: the state after ``rows``.

        Starts from the stored state when another gateway committed since this one's last commit
        (``version`` is not ours), so the monitor is fed every row of the log, in ``seq`` order.
        """
        with self._lock:
            if version != self._version:
                self._adopt(version, state)
            self._raised = self._feed(rows) or self._raised
            self._version = version + 1
            return json.dumps(self._state())

    def _stale(self) -> None:
        """A commit that ran :meth:`_advance` failed: re-read the shared state next time."""
        with self._lock:
            self._version = -1
            self._raised = False

    def _refresh(self) -> None:
        """Adopt a newer shared state (another gateway committed; PostgreSQL logs only)."""
        if self._pg is None:
            return
        self._refreshed = time.monotonic()
        version, state = self._pg.load_state()
        with self._lock:
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
        if raised and self.config.on_alarm == "never-delegate":
            self.never_delegate = True
        return raised

    def _observe(self, rows: list[LoggedDecision]) -> None:
        """Writer-thread hook (SQLite log): committed rows feed the counts and the monitor."""
        with self._lock:
            raised = self._feed(rows)
        if raised:
            self._alarmed()

    def _announce(self, rows: list[LoggedDecision]) -> None:
        """Writer-thread hook (PostgreSQL log), after a commit: announce an alarm it raised."""
        with self._lock:
            raised, self._raised = self._raised, False
        if raised:
            self._alarmed()

    def _alarmed(self) -> None:
        """Log and record an alarm this gateway's commit raised."""
        log.warning(
            "budget monitor alarm: evidence %.3g >= %.3g; %s",
            self.monitor.evidence,
            1 / self.config.alpha,
            "delegation suspended until POST /v1/admin/reset"
            if self.never_delegate
            else "delegation continues (on_alarm=continue)",
        )
        self.log.record_event("alarm", f"n={self.monitor.n} k={self.monitor.k}")

    def reset(self) -> dict[str, Any]:
        """Operator reset: a fresh monitor from the next decision, delegation resumed (for every
        gateway sharing a PostgreSQL log)."""
        if self._pg is not None:

            def fresh(version: int, state: str | None, last: int) -> tuple[str, tuple[str, str]]:
                with self._lock:
                    if version != self._version:
                        self._adopt(version, state)
                    self.monitor, self.monitor_since, self._fed = self._new_monitor(), last, last
                    self.never_delegate = False
                    self._version = version + 1
                    return json.dumps(self._state()), ("reset", "operator reset")

            self._pg.update_state(fresh)
            log.warning("operator reset of the shared budget monitor after decision %d",
                        self.monitor_since)  # fmt: skip
            return self.budget_state()
        # The event goes through the writer (after every queued commit); not under the lock, which
        # the writer's commit hook takes.
        self.log.record_event("reset", "operator reset")
        with self._lock:
            reset = self.log.last_event("reset")
            self.monitor_since = reset[0] if reset is not None else self.n_total
            self.monitor = self._new_monitor()
            self._checkpointed = 0
            fed, replay = self.log.delegations(self.monitor_since)
            self.monitor.update(np.asarray(replay, dtype=bool))
            self._fed = max(self._fed, fed)
            self.never_delegate = self.monitor.alarm and self.config.on_alarm == "never-delegate"
        log.warning("operator reset of the budget monitor after decision %d", self.monitor_since)
        return self.budget_state()

    def budget_state(self) -> dict[str, Any]:
        """Realised rate with its exact Clopper–Pearson interval, and the monitor's state."""
        self._refresh()
        with self._lock:
            n, k, mon = self.n_total, self.k_total, self.monitor
            lo, hi = clopper_pearson(k, n, self.config.alpha)
            cs_lo, cs_hi = mon.interval
            return {
                "budget": self.budget,
                "threshold": json_float(self.cascade.threshold),
                "alpha": self.config.alpha,
                "decisions": n,
                "delegations": k,
                "rate": k / n if n else None,
                "interval": {
                    "method": "clopper-pearson (exact, fixed n)",
                    "confidence": 1 - self.config.alpha,
                    "low": float(lo),
                    "high": float(hi),
                },
                "monitor": {
                    "method": "mixture over start times (change detector, anytime-valid)",
                    "since_decision": self.monitor_since,
                    "decisions": mon.n,
                    "delegations": mon.k,
                    "alarm": mon.alarm,
                    "alarm_at": mon.alarm_at,
                    "evidence": mon.evidence,
                    "evidence_threshold": 1 / self.config.alpha,
                    "confidence_sequence": {"low": cs_lo, "high": cs_hi},
                },
                "never_delegate": self.never_delegate,
                "on_alarm": self.config.on_alarm,
            }

    def gauges(self) -> dict[str, tuple[str, float]]:
        """Gauges for ``/metrics``."""
        s = self.budget_state()
        return {
            "ctd_budget": ("Certified delegation budget.", self.budget),
            "ctd_realized_delegation_rate": (
                "Delegations / decisions in the whole log.",
                float("nan") if s["rate"] is None else s["rate"],
            ),
            "ctd_monitor_alarm": (
                "1 when the anytime-valid monitor has alarmed.",
                float(s["monitor"]["alarm"]),
            ),
            "ctd_monitor_evidence": (
                "E-value of the change detector (alarm at 1/alpha).",
                s["monitor"]["evidence"],
            ),
            "ctd_never_delegate": ("1 while delegation is suspended.", float(self.never_delegate)),
            "ctd_log_commits_total": (
                "Group commits of the decision log.",
                float(self.log.commits),
            ),
            "ctd_log_write_failures_total": (
                "Decision-log commits that failed (nothing of them acknowledged).",
                float(self.log.write_failures),
            ),
        }

    def ready(self) -> tuple[bool, str | None]:
        """Whether the gateway can take decisions now (the log takes writes)."""
        return self.log.writable()

    # ------------------------------------------------------------------ deciding
    def _items(self, reqs: list[DecideRequest], prefix: list[str | int]) -> list[_Item]:
        texts_to_score = [i for i, r in enumerate(reqs) if r.dv_score is None]
        if texts_to_score and self.config.scores_only:
            i = texts_to_score[0]
            raise InputError(
                [*prefix, i, "dv_score"] if prefix else ["dv_score"],
                "this gateway runs --scores-only: send probe_prob and dv_score",
            )
        for i, r in enumerate(reqs):
            if r.text is not None and len(r.text) > self.config.max_text_chars:
                raise InputError(
                    [*prefix, i, "text"] if prefix else ["text"],
                    f"text longer than {self.config.max_text_chars} characters",
                )
        probe = [r.probe_prob for r in reqs]
        dv: list[float | None] = [r.dv_score for r in reqs]
        if texts_to_score:
            assert self.scorer is not None
            p, d = self.scorer.score_texts([str(reqs[i].text) for i in texts_to_score])
            for j, i in enumerate(texts_to_score):
                probe[i], dv[i] = float(p[j]), float(d[j])
        out = []
        seen: dict[str, str] = {}
        for i, r in enumerate(reqs):
            digest = payload_digest(
                {
                    "probe_prob": r.probe_prob,
                    "dv_score": r.dv_score,
                    "text": r.text,
                    "group": r.group,
                }
            )
            if r.request_id is not None:
                if seen.setdefault(r.request_id, digest) != digest:
                    raise IdConflict(r.request_id)
            out.append(
                _Item(
                    request_id=r.request_id or uuid.uuid4().hex,
                    probe_prob=probe[i],
                    dv_score=float(dv[i]),  # type: ignore[arg-type]
                    text=r.text,
                    group=r.group,
                    kind="scores" if r.dv_score is not None else "text",
                    client_id=r.request_id is not None,
                    digest=digest,
                )
            )
        return out

    def _logged(self, it: _Item) -> LoggedDecision | None:
        """The logged decision of a client id (None if not logged); 409 if logged for another input."""
        found = self.log.find(it.request_id)
        if found is not None and found.row.payload_sha256 != it.digest:
            raise IdConflict(it.request_id)
        return found

    async def decide(self, reqs: list[DecideRequest], batch: bool = False) -> list[Decision]:
        """Decide, call the expert where the rule delegates, log every row durably, then answer.

        A client ``request_id`` binds the payload: a repeat with the same payload gets the logged
        decision (``replayed``), one with another payload is refused (:class:`IdConflict`), also
        within one batch. An input the expert failed on under the ``503`` policy is not a decision:
        it is recorded in ``request_failures`` and its retry is evaluated (and the expert called)
        again.

        Raises
        ------
        InputError
            An input the gateway cannot take (nothing is logged).
        IdConflict
            A request id names another input (nothing of the request is logged).
        ExpertUnavailable
            The expert failed under the ``503`` policy (the other inputs are logged).
        """
        items = self._items(reqs, ["items"] if batch else [])
        if len(items) == 1:
            delegated = [self.cascade.delegate(np.array([items[0].dv_score]))[0]]
        else:
            delegated = list(self.cascade.delegate(np.array([it.dv_score for it in items])))
        if self._pg is not None and (
            self.never_delegate or time.monotonic() - self._refreshed > REFRESH_S
        ):
            await asyncio.get_running_loop().run_in_executor(self._pool, self._refresh)
        suppressed = self.never_delegate
        wants = [
            i
            for i, it in enumerate(items)
            if delegated[i] and not suppressed and it.text is not None and self.expert is not None
        ]
        # A client id already logged is answered from the log, looked up here where a replay must
        # not call the expert again; the writer checks every other id (and concurrent duplicates)
        # against the stored digest in the commit.
        replays = {items[i].request_id: self._logged(items[i]) for i in wants if items[i].client_id}
        ask = [i for i in wants if replays.get(items[i].request_id) is None]
        probs, failure, expert_ms = await self._call_expert([items[i].text or "" for i in ask])
        slot = {i: j for j, i in enumerate(ask)}
        rows: list[DecisionRow] = []
        failed: list[DecisionRow] = []
        answer: list[LoggedDecision | int] = []  # a replay, or the position of the item's row
        now = utc_timestamp()
        for i, it in enumerate(items):
            replay = replays.get(it.request_id)
            if replay is not None:
                answer.append(replay)
                continue
            row = self._row(
                it,
                bool(delegated[i]),
                suppressed,
                i in slot,
                probs.get(slot.get(i, -1)),
                failure,
                expert_ms,
            )
            if row.outcome.endswith("_503"):
                failed.append(row)
                answer.append(LoggedDecision(seq=0, timestamp=now, row=row))
            else:
                answer.append(len(rows))
                rows.append(row)
        failures = [
            FailedRequest(r.request_id, r.outcome, r.dv_score, r.payload_sha256 or "")
            for r in failed
        ]
        logged = await self.log.append(rows, failures) if rows or failures else []
        new = [d for d in logged if d.new]
        if new:
            self.metrics.count_decisions(
                [d.row.outcome for d in new], sum(d.row.delegated for d in new)
            )
        out = [self._answer(logged[a] if isinstance(a, int) else a) for a in answer]
        if failed:
            raise ExpertUnavailable(out)
        return out

    async def _call_expert(
        self, texts: list[str]
    ) -> tuple[dict[int, float], str | None, float | None]:
        if not texts or self.expert is None:
            return {}, None, None
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        failure: str | None = None
        probs: dict[int, float] = {}
        try:
            out = await asyncio.wait_for(
                loop.run_in_executor(self._pool, self.expert.score, texts),
                self.config.expert_timeout_s,
            )
            arr = np.asarray(out, dtype=np.float64)
            if arr.shape != (len(texts),) or not np.all((arr >= 0) & (arr <= 1)):
                raise ValueError("the expert returned no valid probability for every text")
            probs = {j: float(v) for j, v in enumerate(arr)}
        except TimeoutError:
            failure = "timeout"
        except Exception as exc:  # the expert's own error types vary; the message has no secrets
            failure = "error"
            log.warning(
                "expert %s failed: %s", getattr(self.expert, "name", "?"), type(exc).__name__
            )
        seconds = time.perf_counter() - t0
        self.metrics.count_expert(seconds, len(texts), failure)
        return probs, failure, seconds * 1000.0

    def _row(
        self,
        it: _Item,
        delegated: bool,
        suppressed: bool,
        asked: bool,
        expert_prob: float | None,
        failure: str | None,
        expert_ms: float | None,
    ) -> DecisionRow:
        prob: float | None = it.probe_prob
        if not delegated:
            outcome = "probe"
        elif suppressed:
            outcome = "suppressed"
        elif not asked:
            outcome, prob = "deferred", None
        elif failure is None:
            outcome, prob = "expert", expert_prob
        elif self.config.expert_failure == "probe":
            outcome = f"expert_{failure}_probe"
        else:
            outcome, prob = f"expert_{failure}_503", None
        return DecisionRow(
            request_id=it.request_id,
            dv_score=it.dv_score,
            probe_prob=it.probe_prob,
            delegated=delegated,
            expert_called=asked,
            expert_prob=expert_prob,
            probability=prob,
            verdict=_verdict(prob, self.config.verdict_threshold),
            outcome=outcome,
            threshold=self.cascade.threshold,
            certificate_sha256=self.certificate_sha256,
            expert=self.cascade.expert,
            group=it.group,
            input_kind=it.kind,
            expert_latency_ms=expert_ms if asked else None,
            payload_sha256=it.digest,
        )

    @staticmethod
    def _answer(d: LoggedDecision) -> Decision:
        r = d.row
        return Decision(
            request_id=r.request_id,
            verdict=r.verdict,  # type: ignore[arg-type]
            probability=r.probability,
            delegated=r.delegated,
            expert_called=r.expert_called,
            outcome=r.outcome,  # type: ignore[arg-type]
            probe_prob=r.probe_prob,
            dv_score=r.dv_score,
            threshold=json_float(r.threshold),
            certificate_sha256=r.certificate_sha256,
            expert=r.expert,
            logged_at=d.timestamp,
            replayed=not d.new,
        )

    def close(self) -> None:
        """Flush the log and stop the expert threads."""
        self.log.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

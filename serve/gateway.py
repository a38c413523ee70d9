"""The gateway without HTTP: decide with the certified rule, call the expert, log, watch the budget.

One :class:`Gateway` per process (and per log: the log's writer lock enforces it). The delegate rule
is :meth:`ctd_stats.certificate.cascade.Cascade.delegate` (the package's only definition of ``d > τ``), the live
monitor is the change detector :class:`~ctd_stats.audit.change_monitor.ChangeMonitor` (its delay
after a change does not grow with the history, unlike the cumulative test), and the interval is
:func:`~ctd_stats.stats.intervals.clopper_pearson`; nothing here re-implements them.

The counts and the monitor are :class:`~serve.budgetwatch.BudgetWatch`: checkpointed in a SQLite
log, shared by every gateway of a PostgreSQL log (:mod:`serve.pglog`), where the detector sees the
combined traffic of all replicas.
"""

from __future__ import annotations

import asyncio
import logging
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
from serve.budgetwatch import BudgetWatch
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
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ctd-expert")
        self.started = time.time()
        identity = {
            "certificate_sha256": self.certificate_sha256,
            "expert": str(self.cascade.expert),
            "budget": repr(self.budget),
            "threshold": repr(self.cascade.threshold),
        }
        self.watch = watch = BudgetWatch(self.budget, config.alpha, config.on_alarm)
        self.log: DecisionLog | PostgresDecisionLog
        url = config.db_url
        if url is not None:
            # The replicas share one monitor: they must test at the same level.
            identity["alpha"] = repr(config.alpha)
            self.log = PostgresDecisionLog(
                url,
                identity,
                advance=watch.advance,
                aborted=watch.stale,
                on_commit=watch.announce,
                sync=config.sync,
            )
        else:
            assert isinstance(config.db, Path)
            self.log = DecisionLog(
                config.db,
                identity,
                on_commit=watch.observe,
                checkpoint=watch.checkpoint,
                sync=config.sync,
            )
        watch.attach(self.log)
        try:
            watch.restore()
        except BaseException:
            self.log.close()
            raise

    @property
    def monitor(self) -> ChangeMonitor:
        """The live change monitor (shared by the gateways of a PostgreSQL log)."""
        return self.watch.monitor

    @property
    def never_delegate(self) -> bool:
        """Whether delegation is suspended (after an alarm, with ``on_alarm="never-delegate"``)."""
        return self.watch.never_delegate

    def reset(self) -> dict[str, Any]:
        """Operator reset: a fresh monitor from the next decision, delegation resumed (for every
        gateway sharing a PostgreSQL log)."""
        self.watch.reset()
        return self.budget_state()

    def budget_state(self) -> dict[str, Any]:
        """Realised rate with its exact Clopper–Pearson interval, and the monitor's state."""
        w = self.watch
        w.refresh()
        with w.lock:
            n, k, mon = w.n_total, w.k_total, w.monitor
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
                    "since_decision": w.monitor_since,
                    "decisions": mon.n,
                    "delegations": mon.k,
                    "alarm": mon.alarm,
                    "alarm_at": mon.alarm_at,
                    "evidence": mon.evidence,
                    "evidence_threshold": 1 / self.config.alpha,
                    "confidence_sequence": {"low": cs_lo, "high": cs_hi},
                },
                "never_delegate": w.never_delegate,
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
        if self.watch.due():  # a shared log: another gateway may have alarmed or reset
            await asyncio.get_running_loop().run_in_executor(self._pool, self.watch.refresh)
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

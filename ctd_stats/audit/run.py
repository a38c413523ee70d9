"""``audit_log``: one pass over a deployment log, returning a frozen :class:`AuditResult`.

What is controlled, and under which assumption
----------------------------------------------
Model: the logged decisions are i.i.d. Bernoulli(p) in time order (deployment traffic exchangeable
with itself over time). The certificate promises ``p <= budget``.

* **Sequential monitor (default verdict).** :class:`~ctd_stats.audit.monitor.BudgetMonitor`; if
  ``p <= budget`` the probability that it *ever* alarms on the log — and on any longer log that
  extends it, audited again and again — is at most ``alpha``.
* **Fixed-n test.** ``P(Bin(n, budget) >= k) <= alpha`` is a level-``alpha`` test only if the log
  length was fixed before looking; it is reported, and used for the verdict only with
  ``decision_rule="fixed_n"``.
* **Interval.** Two-sided Clopper–Pearson at confidence ``1 - alpha`` (fixed n), and the monitor's
  anytime-valid confidence sequence.
* **Integrity.** With both scores and decisions logged, every row where ``(score > threshold) !=
  delegated`` is counted and the first ones listed; by default any such row makes the audit fail,
  because the certificate's guarantee covers only the certified rule.

Processing is chunked: memory is bounded by the chunk size, except when timestamps are not
monotone — then the needed columns (about 30 bytes a row) are loaded, sorted stably by time and
replayed, with a warning.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from ctd_stats._version import __version__
from ctd_stats.audit.drift import DriftAccumulator, ScoreReference, drift_summary
from ctd_stats.audit.logs.chunks import LogChunk, TimestampKind
from ctd_stats.audit.logs.reader import GroupCoder, LogColumns, LogReader, resolve_columns
from ctd_stats.audit.logs.sources import ChunkSource, chunk_sources
from ctd_stats.audit.monitor import BetaPrior, BudgetMonitor, confidence_sequence
from ctd_stats.audit.result import (
    SCHEMA_VERSION,
    AuditResult,
    DriftSummary,
    IntegritySummary,
    MismatchRow,
    RateRow,
    RateSummary,
    SequentialSummary,
    Trace,
    Verdict,
    format_timestamp,
    rate_summary,
    sequential_summary,
    verdict,
)
from ctd_stats.audit.windows import (
    GroupAccumulator,
    WindowAccumulator,
    group_rows,
    parse_window,
    rate_row_warnings,
    window_rows,
)
from ctd_stats.errors import CTDInputError
from ctd_stats.stats.intervals import fixed_n_audit

__all__ = [
    "SCHEMA_VERSION",
    "AuditResult",
    "DriftSummary",
    "IntegritySummary",
    "MismatchRow",
    "RateRow",
    "RateSummary",
    "SequentialSummary",
    "Trace",
    "Verdict",
    "audit_log",
]

_TRACE_POINTS = 2048


class _NotMonotone(Exception):
    def __init__(self, row: int) -> None:
        self.row = row


class _Accumulator:
    def __init__(
        self,
        *,
        threshold: float,
        monitor: BudgetMonitor,
        windows: WindowAccumulator,
        drift: DriftAccumulator | None,
        has_decisions: bool,
        max_rows: int,
        check_monotone: bool,
    ) -> None:
        self.threshold = threshold
        self.monitor = monitor
        self.windows = windows
        self.groups = GroupAccumulator()
        self.drift = drift
        self.has_decisions = has_decisions
        self.max_rows = max_rows
        self.check_monotone = check_monotone
        self.n = 0
        self.last_ts: int | None = None
        self.first_ts: int | None = None
        self.n_mismatch = 0
        self.n_del_below = 0
        self.n_kept_above = 0
        self.n_missing_scores = 0
        self.mismatch: list[tuple[int, int, float, bool]] = []
        self.implied_lo = -math.inf  # max score among kept rows
        self.implied_hi = math.inf  # min score among delegated rows
        self.scored = 0
        self.alarm_row: int | None = None
        self.alarm_ts: int | None = None
        self.trace_t: list[int] = []
        self.trace_k: list[int] = []
        self.trace_ts: list[int] = []
        self.stride = 1

    def consume(self, c: LogChunk) -> None:
        m = c.delegated.size
        if self.check_monotone:
            prev = self.last_ts if self.last_ts is not None else c.ts[0]
            d = np.diff(c.ts, prepend=prev)
            if (d < 0).any():
                raise _NotMonotone(int(c.rows[int(np.flatnonzero(d < 0)[0])]))
        if self.first_ts is None:
            self.first_ts = int(c.ts[0])
        # integrity
        if c.score is not None:
            ok = ~np.isnan(c.score)
            self.n_missing_scores += int(m - ok.sum())
            self.scored += int(ok.sum())
            if self.has_decisions:
                above = c.score > self.threshold
                bad = ok & (above != c.delegated)
                nb = int(bad.sum())
                if nb:
                    self.n_mismatch += nb
                    self.n_del_below += int((bad & c.delegated).sum())
                    self.n_kept_above += int((bad & ~c.delegated).sum())
                    room = self.max_rows - len(self.mismatch)
                    if room > 0:
                        for i in np.flatnonzero(bad)[:room].tolist():
                            self.mismatch.append(
                                (
                                    int(c.rows[i]),
                                    int(c.ts[i]),
                                    float(c.score[i]),
                                    bool(c.delegated[i]),
                                )
                            )
                kept = ok & ~c.delegated
                dele = ok & c.delegated
                if kept.any():
                    self.implied_lo = max(self.implied_lo, float(c.score[kept].max()))
                if dele.any():
                    self.implied_hi = min(self.implied_hi, float(c.score[dele].min()))
            if self.drift is not None:
                self.drift.update(c.score)
        # sequential monitor
        cum = np.cumsum(c.delegated, dtype=np.int64)
        had_alarm = self.monitor.alarm
        k0 = self.monitor.k
        self.monitor.update_counts_from_cumsum(cum)
        if self.monitor.alarm and not had_alarm:
            i = int(self.monitor.alarm_at or 0) - self.n
            self.alarm_row, self.alarm_ts = int(c.rows[i]), int(c.ts[i])
        # windows and groups
        self.windows.update(self.n, c.delegated, c.ts)
        if c.group is not None:
            self.groups.update(c.group, c.delegated)
        # trace
        total = self.n + m
        while total // self.stride > _TRACE_POINTS:
            self.stride *= 2
            keep = [j for j, t in enumerate(self.trace_t) if t % self.stride == 0]
            self.trace_t = [self.trace_t[j] for j in keep]
            self.trace_k = [self.trace_k[j] for j in keep]
            self.trace_ts = [self.trace_ts[j] for j in keep]
        first = (self.n // self.stride + 1) * self.stride
        pts = np.arange(first, total + 1, self.stride, dtype=np.int64)
        idx = pts - self.n - 1
        self.trace_t += pts.tolist()
        self.trace_k += (k0 + cum[idx]).tolist()
        self.trace_ts += c.ts[idx].tolist()
        self.n = total
        self.last_ts = int(c.ts[-1])

    def full_trace(self) -> tuple[list[int], list[int], list[int]]:
        """Trace points (rows, delegations, timestamps), ending at the last row."""
        tt, tk, tts = list(self.trace_t), list(self.trace_k), list(self.trace_ts)
        if not tt or tt[-1] != self.n:
            tt.append(self.n)
            tk.append(self.monitor.k)
            tts.append(self.last_ts or 0)
        return tt, tk, tts


def audit_log(
    log: str | Path | pd.DataFrame,
    *,
    threshold: float,
    budget: float,
    alpha: float = 0.05,
    window: str | None = None,
    score_reference: ScoreReference | dict[str, Any] | None = None,
    timestamp_column: str | None = None,
    score_column: str | None = None,
    decision_column: str | None = None,
    group_column: str | None = None,
    decision_rule: Literal["sequential", "fixed_n"] = "sequential",
    fail_on_mismatch: bool = True,
    prior: BetaPrior | None = None,
    log_format: str | None = None,
    chunk_rows: int = 500_000,
    max_mismatch_rows: int = 20,
    certificate: str | None = None,
    expert: str | None = None,
    engine: str = "local",
    address: str | None = None,
) -> AuditResult:
    """Audit a deployment decision log against a certified threshold and budget.

    Parameters
    ----------
    log : path or pandas.DataFrame
        JSONL / CSV / Parquet log (see :mod:`ctd_stats.audit.logs` for the columns).
    threshold : float
        The certified threshold τ: the deployed rule delegates iff ``score > τ`` (``inf`` = never).
    budget : float
        The certified delegation budget, in (0, 1).
    alpha : float
        Level of the tests and ``1 - alpha`` the confidence of the intervals.
    window : str, optional
        ``"1000rows"``, ``"1h"``, ``"30min"``, ... or ``"auto"`` (default: about 40 equal-count windows).
    score_reference : ScoreReference or dict, optional
        Calibration score quantiles (the certificate's ``score_reference``) for the drift check.
    timestamp_column, score_column, decision_column, group_column : str, optional
        Column names (defaults: the aliases in :mod:`ctd_stats.audit.logs`).
    decision_rule : {"sequential", "fixed_n"}
        Which test decides "budget violation": the anytime-valid monitor (valid however often the
        log is audited) or the fixed-n binomial test (valid for one look at a log of fixed length).
    fail_on_mismatch : bool
        Whether rows that contradict the certified threshold make the audit fail.
    prior : BetaPrior, optional
        Mixing prior of the sequential test (default :func:`~ctd_stats.audit.monitor.default_prior`).
    chunk_rows : int
        Rows per chunk (memory bound).
    engine, address : str, optional
        ``"ray"`` reads and parses a (partitioned) Parquet log on a Ray cluster; see
        :mod:`ctd_stats.audit.logs.ray_logs`. The result is the local one.

    Returns
    -------
    AuditResult
        Frozen; ``result.verdict.compliant``, ``result.exit_code``, ``result.to_dict()``.

    Raises
    ------
    CTDInputError
        Unreadable / empty log, missing columns, non-boolean decisions, mixed types (the message
        names the file, row and column).
    """
    _check_arguments(budget, alpha, threshold, decision_rule)
    spec = parse_window(window)
    reader = LogReader(log, fmt=log_format)
    cols = resolve_columns(
        reader.columns,
        source=reader.name,
        timestamp=timestamp_column,
        score=score_column,
        decision=decision_column,
        group=group_column,
    )
    ref = ScoreReference.from_obj(score_reference) if score_reference is not None else None
    warnings: list[str] = []

    def new_acc(check_monotone: bool) -> _Accumulator:
        return _Accumulator(
            threshold=threshold,
            monitor=BudgetMonitor(budget, alpha, prior=prior),
            windows=WindowAccumulator(spec),
            drift=DriftAccumulator(ref) if (ref is not None and cols.score) else None,
            has_decisions=cols.decision is not None,
            max_rows=max_mismatch_rows,
            check_monotone=check_monotone,
        )

    coder = GroupCoder(reader.name)
    kind = TimestampKind()
    first, time_sorted = chunk_sources(
        reader, cols, threshold, coder, chunk_rows, kind, engine, address
    )
    acc, sorted_by_time = _consume_log(first, time_sorted, reader, new_acc, warnings)
    if acc.n == 0:
        raise CTDInputError(f"{reader.name}: the log has no rows")
    question = AuditQuestion(
        threshold=threshold,
        budget=budget,
        alpha=alpha,
        decision_rule=decision_rule,
        fail_on_mismatch=fail_on_mismatch,
        certificate=certificate,
        expert=expert,
        window=spec.text,
    )
    source = _LogView(reader, cols, coder, ref, kind.value, sorted_by_time)
    return _result(acc, question, source, warnings)


@dataclass(frozen=True)
class AuditQuestion:
    """What an audit asks of a log: the certified rule, the budget, the test level and the options."""

    threshold: float
    budget: float
    alpha: float
    decision_rule: str
    fail_on_mismatch: bool
    certificate: str | None
    expert: str | None
    window: str


@dataclass(frozen=True)
class _LogView:
    """How the log was read: reader, resolved columns, group codes, drift reference, time order."""

    reader: LogReader
    cols: LogColumns
    coder: GroupCoder
    ref: ScoreReference | None
    tkind: str
    sorted_by_time: bool


def _result(acc: _Accumulator, q: AuditQuestion, src: _LogView, warnings: list[str]) -> AuditResult:
    """The audit's summaries, tables and verdict from the counts of the pass over the log."""
    reader, cols, coder, ref, tkind = src.reader, src.cols, src.coder, src.ref, src.tkind
    threshold, budget, alpha, decision_rule = q.threshold, q.budget, q.alpha, q.decision_rule
    mon = acc.monitor
    rate = rate_summary(fixed_n_audit(mon.k, mon.n, budget, alpha), budget, alpha)
    alarm_ts = format_timestamp(acc.alarm_ts, tkind) if acc.alarm_ts is not None else None
    seq = sequential_summary(mon, acc.alarm_row, alarm_ts, budget, alpha)
    integ = _integrity(acc, cols, src.sorted_by_time, tkind, warnings)
    tt, tk, tts = acc.full_trace()
    windows = window_rows(
        acc.windows,
        trace_t=tt,
        trace_k=tk,
        trace_ts=tts,
        first_ts=acc.first_ts,
        tkind=tkind,
        alpha=alpha,
        budget=budget,
    )
    groups = group_rows(acc.groups, coder.names, alpha, budget) if cols.group is not None else []
    rate_row_warnings(windows, groups, alpha, warnings)
    drift = drift_summary(acc.drift, ref, threshold, alpha, warnings)
    return AuditResult(
        schema_version=SCHEMA_VERSION,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        package_version=__version__,
        log=reader.name,
        log_format=reader.format,
        certificate=q.certificate,
        expert=q.expert,
        threshold=float(threshold),
        budget=float(budget),
        alpha=float(alpha),
        decision_rule=decision_rule,
        columns={
            "timestamp": cols.timestamp,
            "score": cols.score,
            "decision": cols.decision,
            "group": cols.group,
        },
        verdict=verdict(
            decision_rule=decision_rule,
            rate=rate,
            seq=seq,
            integ=integ,
            threshold=threshold,
            budget=budget,
            alpha=alpha,
            fail_on_mismatch=q.fail_on_mismatch,
        ),
        rate=rate,
        sequential=seq,
        integrity=integ,
        window=q.window,
        windows=windows,
        groups=groups,
        drift=drift,
        trace=_trace(mon, tt, tk, tts, tkind, alpha),
        warnings=warnings,
    )


def _check_arguments(budget: float, alpha: float, threshold: float, decision_rule: str) -> None:
    if not 0.0 < budget < 1.0:
        raise CTDInputError(f"budget must be in (0, 1), got {budget}")
    if not 0.0 < alpha < 1.0:
        raise CTDInputError(f"alpha must be in (0, 1), got {alpha}")
    if math.isnan(threshold):
        raise CTDInputError("threshold is NaN")
    if decision_rule not in ("sequential", "fixed_n"):
        raise CTDInputError(
            f"decision_rule must be 'sequential' or 'fixed_n', got {decision_rule!r}"
        )


def _consume_log(
    first: ChunkSource,
    time_sorted: ChunkSource,
    reader: LogReader,
    new_acc: Callable[[bool], _Accumulator],
    warnings: list[str],
) -> tuple[_Accumulator, bool]:
    """One pass in file order; if the timestamps decrease somewhere, a second pass in time order.

    Returns the accumulator and whether the log had to be sorted.
    """
    acc = new_acc(True)
    try:
        for chunk in first():
            acc.consume(chunk)
    except _NotMonotone as exc:
        warnings.append(
            f"timestamps are not in time order (first decrease at {reader.where(exc.row)}); the log was "
            "sorted by timestamp (stable) before the sequential analysis, which loads it into memory"
        )
        acc = new_acc(False)
        for chunk in time_sorted():
            acc.consume(chunk)
        return acc, True
    return acc, False


def _integrity(
    acc: _Accumulator, cols: LogColumns, sorted_by_time: bool, tkind: str, warnings: list[str]
) -> IntegritySummary:
    """Threshold integrity of the logged decisions (appends the related warnings)."""
    has_scores = cols.score is not None
    lo = acc.implied_lo if math.isfinite(acc.implied_lo) else None
    hi = acc.implied_hi if math.isfinite(acc.implied_hi) else None
    integ = IntegritySummary(
        has_scores=has_scores,
        has_decisions=cols.decision is not None,
        n_mismatch=acc.n_mismatch,
        n_delegated_at_or_below=acc.n_del_below,
        n_kept_above=acc.n_kept_above,
        mismatch_rows=[
            MismatchRow(
                row=r, timestamp=format_timestamp(t, tkind), score=s, delegated=d, expected=not d
            )
            for r, t, s, d in acc.mismatch
        ],
        n_missing_scores=acc.n_missing_scores,
        implied_threshold_low=lo,
        implied_threshold_high=hi,
        consistent=acc.n_mismatch == 0,
        monotone=not sorted_by_time,
        sorted_by_time=sorted_by_time,
    )
    if has_scores and cols.decision is None:
        warnings.append(
            "no decision column: decisions were derived as score > threshold (integrity not checkable)"
        )
    if cols.decision is not None and not has_scores:
        warnings.append(
            "no score column: the threshold cannot be checked and score drift cannot be measured"
        )
    if acc.n_missing_scores:
        warnings.append(
            f"{acc.n_missing_scores} rows have no score; the threshold was not checked on them"
        )
    if lo is not None and hi is not None and lo >= hi:
        warnings.append(
            f"no single threshold explains the logged decisions (a kept row scores {lo:.6g}, a delegated "
            f"row {hi:.6g})"
        )
    return integ


def _trace(
    mon: BudgetMonitor, tt: list[int], tk: list[int], tts: list[int], tkind: str, alpha: float
) -> Trace:
    """Evidence and confidence sequence at the trace points."""
    ta, ka = np.asarray(tt), np.asarray(tk)
    le = mon.martingale.log_evidence(ta, ka)
    clo, chi = confidence_sequence(ta, ka, alpha, mon.cs_prior)
    return Trace(
        t=tt,
        k=tk,
        timestamp=[format_timestamp(x, tkind) for x in tts],
        log_evidence=le.tolist(),
        cs_low=clo.tolist(),
        cs_high=chi.tolist(),
    )

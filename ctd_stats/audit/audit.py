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
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict

from ctd_stats import __version__
from ctd_stats.audit.drift import DriftAccumulator, ScoreReference
from ctd_stats.audit.logs import (
    GroupCoder,
    LogColumns,
    LogReader,
    parse_decisions,
    parse_scores,
    parse_timestamps,
    resolve_columns,
)
from ctd_stats.audit.monitor import BetaPrior, BudgetMonitor, confidence_sequence
from ctd_stats.audit.windows import GroupAccumulator, WindowAccumulator, parse_window, rate_table
from ctd_stats.errors import CTDInputError
from ctd_stats.intervals import fixed_n_audit

SCHEMA_VERSION = "ctd.audit/1"
_TRACE_POINTS = 2048
_AUTO_WINDOWS = 40


# ---------------------------------------------------------------------------------------- results
class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RateSummary(_Frozen):
    """Realized rate with its exact interval and the fixed-n test of "rate > budget"."""

    n: int
    k: int
    rate: float
    ci_low: float
    ci_high: float
    confidence: float
    pvalue: float
    rejects: bool
    statement: str


class SequentialSummary(_Frozen):
    """State of the anytime-valid monitor at the end of the log."""

    alarm: bool
    alarm_index: int | None
    alarm_row: int | None
    alarm_timestamp: str | float | None
    evidence_at_alarm: float | None
    evidence: float
    log_evidence: float
    evidence_threshold: float
    cs_low: float
    cs_high: float
    prior_a: float
    prior_c: float
    statement: str


class MismatchRow(_Frozen):
    row: int
    timestamp: str | float
    score: float
    delegated: bool
    expected: bool


class IntegritySummary(_Frozen):
    has_scores: bool
    has_decisions: bool
    n_mismatch: int
    n_delegated_at_or_below: int
    n_kept_above: int
    mismatch_rows: list[MismatchRow]
    n_missing_scores: int
    implied_threshold_low: float | None
    implied_threshold_high: float | None
    consistent: bool
    monotone: bool
    sorted_by_time: bool


class RateRow(_Frozen):
    label: str
    start: str | float | None
    end: str | float | None
    n: int
    k: int
    rate: float
    ci_low: float
    ci_high: float
    above_budget: bool


class DriftSummary(_Frozen):
    available: bool
    statistic: float | None = None
    pvalue: float | None = None
    n_log: int = 0
    n_reference: int = 0
    resolution: float | None = None
    warning: bool = False
    reference_rate_above_threshold: float | None = None
    reference_quantiles: list[float] = []
    log_cdf_at_quantiles: list[float] = []
    note: str = ""


class Trace(_Frozen):
    """Cumulative counts at (about) evenly spaced points, with the evidence and confidence sequence."""

    t: list[int]
    k: list[int]
    timestamp: list[str | float]
    log_evidence: list[float]
    cs_low: list[float]
    cs_high: list[float]


class Verdict(_Frozen):
    compliant: bool
    budget_violation: bool
    integrity_violation: bool
    headline: str
    reasons: list[str]


class AuditResult(_Frozen):
    """Everything an audit found; :meth:`to_dict` is the content of ``audit.json``."""

    schema_version: str
    created_at: str
    package_version: str
    log: str
    log_format: str
    certificate: str | None
    expert: str | None
    threshold: float
    budget: float
    alpha: float
    decision_rule: str
    columns: dict[str, str | None]
    verdict: Verdict
    rate: RateSummary
    sequential: SequentialSummary
    integrity: IntegritySummary
    window: str
    windows: list[RateRow]
    groups: list[RateRow]
    drift: DriftSummary
    trace: Trace
    warnings: list[str]

    @property
    def compliant(self) -> bool:
        return self.verdict.compliant

    @property
    def exit_code(self) -> int:
        """0 compliant, 1 violation (budget or integrity)."""
        return 0 if self.verdict.compliant else 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (non-finite floats become the strings ``"inf"``/``"-inf"``/``"nan"``)."""
        return _jsonable(self.model_dump(mode="python"))


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float):
        if math.isnan(obj):
            return "nan"
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
        return obj
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    return obj


# ------------------------------------------------------------------------------------ processing
@dataclass
class _Chunk:
    rows: NDArray[np.int64]  # original 0-based row numbers
    ts: NDArray[np.int64]
    delegated: NDArray[np.bool_]
    score: NDArray[np.float64] | None
    group: NDArray[np.int32] | None


class _NotMonotone(Exception):
    def __init__(self, row: int) -> None:
        self.row = row


def _parsed_chunks(
    reader: LogReader,
    cols: LogColumns,
    threshold: float,
    coder: GroupCoder,
    chunk_rows: int,
    kind: list[str],
) -> Iterator[_Chunk]:
    offset = 0
    for df in reader.chunks(cols.names(), chunk_rows):
        m = len(df)
        if m == 0:
            continue
        ts, tkind = parse_timestamps(df[cols.timestamp], offset, reader, cols.timestamp)
        if not kind:
            kind.append(tkind)
        elif kind[0] != tkind:
            raise CTDInputError(
                f"{reader.name}: column {cols.timestamp!r} mixes {kind[0]} and {tkind} timestamps "
                f"({reader.where(offset)})"
            )
        score = parse_scores(df[cols.score], offset, reader, cols.score) if cols.score else None
        if cols.decision is not None:
            dec = parse_decisions(df[cols.decision], offset, reader, cols.decision)
        else:
            assert score is not None
            missing = np.isnan(score)
            if missing.any():
                i = int(np.flatnonzero(missing)[0])
                raise CTDInputError(
                    f"{reader.name}: {reader.where(offset + i)}: score is missing and there is no "
                    "decision column to say what happened"
                )
            dec = score > threshold
        group = coder.codes(df[cols.group]) if cols.group else None
        rows = np.arange(offset, offset + m, dtype=np.int64)
        yield _Chunk(rows, ts, dec, score, group)
        offset += m


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

    def consume(self, c: _Chunk) -> None:
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


def _fmt_ts(ns: int, kind: str) -> str | float:
    if kind == "datetime":
        return pd.Timestamp(ns, unit="ns", tz="UTC").isoformat()
    return ns / 1e9


def _pct(x: float) -> str:
    if not math.isfinite(x):
        return "–"
    return f"{100 * x:.4g}%"


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
    kind: list[str] = []
    acc = new_acc(True)
    sorted_by_time = False
    try:
        for chunk in _parsed_chunks(reader, cols, threshold, coder, chunk_rows, kind):
            acc.consume(chunk)
    except _NotMonotone as exc:
        sorted_by_time = True
        warnings.append(
            f"timestamps are not in time order (first decrease at {reader.where(exc.row)}); the log was "
            "sorted by timestamp (stable) before the sequential analysis, which loads it into memory"
        )
        parts = list(_parsed_chunks(reader, cols, threshold, coder, chunk_rows, kind))
        allc = _Chunk(
            np.concatenate([p.rows for p in parts]),
            np.concatenate([p.ts for p in parts]),
            np.concatenate([p.delegated for p in parts]),
            np.concatenate([p.score for p in parts]) if cols.score else None,
            np.concatenate([p.group for p in parts]) if cols.group else None,
        )
        del parts
        order = np.argsort(allc.ts, kind="stable")
        acc = new_acc(False)
        for s in range(0, order.size, chunk_rows):
            o = order[s : s + chunk_rows]
            acc.consume(
                _Chunk(
                    allc.rows[o],
                    allc.ts[o],
                    allc.delegated[o],
                    allc.score[o] if allc.score is not None else None,
                    allc.group[o] if allc.group is not None else None,
                )
            )
    if acc.n == 0:
        raise CTDInputError(f"{reader.name}: the log has no rows")
    tkind = kind[0]
    mon = acc.monitor

    # ---------------------------------------------------------------- rate and fixed-n test
    fx = fixed_n_audit(mon.k, mon.n, budget, alpha)
    conf = 1 - alpha
    rate = RateSummary(
        n=fx.n,
        k=fx.k,
        rate=fx.rate,
        ci_low=fx.ci_low,
        ci_high=fx.ci_high,
        confidence=conf,
        pvalue=fx.pvalue,
        rejects=fx.rejects,
        statement=(
            f"Exact binomial test of H0: rate <= {budget:g} vs H1: rate > {budget:g}, "
            f"p = P(Bin({fx.n}, {budget:g}) >= {fx.k}) = {fx.pvalue:.3g}. Valid at level {alpha:g} for "
            "i.i.d. decisions when the log length was fixed in advance (one look); the interval is "
            f"the two-sided {100 * conf:g}% Clopper–Pearson interval."
        ),
    )

    # ---------------------------------------------------------------- sequential
    cs_lo, cs_hi = mon.interval
    seq = SequentialSummary(
        alarm=mon.alarm,
        alarm_index=mon.alarm_at,
        alarm_row=acc.alarm_row,
        alarm_timestamp=_fmt_ts(acc.alarm_ts, tkind) if acc.alarm_ts is not None else None,
        evidence_at_alarm=mon.evidence_at_alarm,
        evidence=mon.evidence,
        log_evidence=mon.log_evidence,
        evidence_threshold=1.0 / alpha,
        cs_low=cs_lo,
        cs_high=cs_hi,
        prior_a=mon.martingale.prior.a,
        prior_c=mon.martingale.prior.c,
        statement=(
            "Anytime-valid test of H0: rate <= budget: a Beta-mixture likelihood-ratio test "
            f"supermartingale for every rate <= {budget:g}; it alarms when its wealth reaches "
            f"1/alpha = {1 / alpha:g}. If decisions are i.i.d. with rate <= budget, the probability "
            f"of ever alarming is <= {alpha:g} (Ville's inequality), however often and however long "
            f"the log is monitored. The interval is a {100 * conf:g}% confidence sequence (valid "
            "simultaneously at every time)."
        ),
    )

    # ---------------------------------------------------------------- integrity
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
            MismatchRow(row=r, timestamp=_fmt_ts(t, tkind), score=s, delegated=d, expected=not d)
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

    # ---------------------------------------------------------------- windows / groups
    windows = _window_rows(acc, spec.kind, tkind, alpha, budget)
    groups: list[RateRow] = []
    if cols.group is not None and acc.groups.n.size:
        g = rate_table(acc.groups.n, acc.groups.k, alpha, budget)
        for i, name in enumerate(coder.names):
            groups.append(
                RateRow(
                    label=name,
                    start=None,
                    end=None,
                    n=int(acc.groups.n[i]),
                    k=int(acc.groups.k[i]),
                    rate=float(g["rate"][i]),
                    ci_low=float(g["ci_low"][i]),
                    ci_high=float(g["ci_high"][i]),
                    above_budget=bool(g["above"][i]),
                )
            )
    n_above_w = sum(w.above_budget for w in windows)
    if n_above_w:
        warnings.append(
            f"{n_above_w} of {len(windows)} windows have their whole {100 * conf:g}% interval above the "
            "budget (descriptive, no multiplicity correction)"
        )
    n_above_g = sum(g_.above_budget for g_ in groups)
    if n_above_g:
        warnings.append(
            f"{n_above_g} of {len(groups)} groups have their whole {100 * conf:g}% interval above the budget "
            "(descriptive; the certificate controls the overall rate, not per-group rates)"
        )

    # ---------------------------------------------------------------- drift
    if acc.drift is not None and ref is not None:
        dr = acc.drift.result(alpha)
        ref_rate = 1.0 - ref.cdf(threshold) if math.isfinite(threshold) else 0.0
        drift = DriftSummary(
            available=True,
            statistic=dr.statistic,
            pvalue=dr.pvalue,
            n_log=dr.n_log,
            n_reference=dr.n_reference,
            resolution=dr.resolution,
            warning=dr.warning,
            reference_rate_above_threshold=ref_rate,
            reference_quantiles=list(ref.quantiles),
            log_cdf_at_quantiles=dr.log_cdf,
            note=(
                "KS distance between logged scores and the calibration score quantiles, evaluated at "
                f"the {len(ref.quantiles)} reference quantiles (exact to within {dr.resolution:.3g}); "
                "p-value from the asymptotic two-sample Kolmogorov distribution (approximate)."
            ),
        )
        if dr.warning:
            warnings.append(
                f"score drift: the logged scores differ from the calibration scores (KS D = "
                f"{dr.statistic:.3g}, approximate p = {dr.pvalue:.2g}); the certificate assumed the "
                "calibration distribution"
            )
    else:
        drift = DriftSummary(
            available=False,
            note="no score reference in the certificate"
            if ref is None
            else "no score column in the log",
        )

    # ---------------------------------------------------------------- trace
    tt, tk, tts = list(acc.trace_t), list(acc.trace_k), list(acc.trace_ts)
    if not tt or tt[-1] != acc.n:
        tt.append(acc.n)
        tk.append(mon.k)
        tts.append(acc.last_ts or 0)
    ta, ka = np.asarray(tt), np.asarray(tk)
    le = mon.martingale.log_evidence(ta, ka)
    clo, chi = confidence_sequence(ta, ka, alpha, mon.cs_prior)
    trace = Trace(
        t=tt,
        k=tk,
        timestamp=[_fmt_ts(x, tkind) for x in tts],
        log_evidence=le.tolist(),
        cs_low=clo.tolist(),
        cs_high=chi.tolist(),
    )

    # ---------------------------------------------------------------- verdict
    budget_violation = seq.alarm if decision_rule == "sequential" else rate.rejects
    integrity_violation = fail_on_mismatch and acc.n_mismatch > 0
    reasons: list[str] = []
    rate_txt = (
        f"{mon.k:,} of {mon.n:,} decisions delegated ({_pct(fx.rate)}, {100 * conf:g}% CI "
        f"{_pct(fx.ci_low)}–{_pct(fx.ci_high)}) against a certified budget of {_pct(budget)}"
    )
    if budget_violation:
        if decision_rule == "sequential":
            when = f"row {acc.alarm_row:,}" if acc.alarm_row is not None else "?"
            if seq.alarm_timestamp is not None:
                when += f", {seq.alarm_timestamp}"
            reasons.append(
                f"the delegation rate exceeds the certified budget: the anytime-valid monitor alarmed "
                f"after {(mon.alarm_at or 0) + 1:,} decisions ({when}) with evidence "
                f"{seq.evidence_at_alarm:.3g} >= 1/alpha = {1 / alpha:g}"
            )
        else:
            reasons.append(
                f"the delegation rate exceeds the certified budget: exact binomial p = {fx.pvalue:.3g} <= {alpha:g}"
            )
    if acc.n_mismatch:
        reasons.append(
            f"{acc.n_mismatch:,} rows contradict the certified threshold τ = {threshold:.6g} "
            f"({acc.n_del_below:,} delegated with score <= τ, {acc.n_kept_above:,} kept with score > τ)"
            + ("" if fail_on_mismatch else " (not counted as a failure: fail_on_mismatch=False)")
        )
    compliant = not (budget_violation or integrity_violation)
    if compliant:
        other = (
            f"the anytime-valid monitor did not alarm (evidence {mon.evidence:.3g} < {1 / alpha:g})"
            if decision_rule == "sequential"
            else f"the exact binomial test does not reject (p = {fx.pvalue:.3g})"
        )
        headline = f"COMPLIANT — {rate_txt}; {other}."
    else:
        headline = "VIOLATION — " + "; ".join(reasons) + f". {rate_txt[0].upper()}{rate_txt[1:]}."
    verdict = Verdict(
        compliant=compliant,
        budget_violation=bool(budget_violation),
        integrity_violation=bool(integrity_violation),
        headline=headline,
        reasons=reasons,
    )
    return AuditResult(
        schema_version=SCHEMA_VERSION,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        package_version=__version__,
        log=reader.name,
        log_format=reader.format,
        certificate=certificate,
        expert=expert,
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
        verdict=verdict,
        rate=rate,
        sequential=seq,
        integrity=integ,
        window=spec.text,
        windows=windows,
        groups=groups,
        drift=drift,
        trace=trace,
        warnings=warnings,
    )


def _window_rows(
    acc: _Accumulator, kind: str, tkind: str, alpha: float, budget: float
) -> list[RateRow]:
    if kind == "auto":
        t = np.asarray(
            acc.trace_t + ([acc.n] if not acc.trace_t or acc.trace_t[-1] != acc.n else [])
        )
        k = np.asarray(acc.trace_k + ([acc.monitor.k] if len(t) > len(acc.trace_k) else []))
        ts = acc.trace_ts + ([acc.last_ts or 0] if len(t) > len(acc.trace_ts) else [])
        count = min(_AUTO_WINDOWS, len(t))
        ends = sorted(set(np.round(np.linspace(0, len(t) - 1, count + 1)[1:]).astype(int).tolist()))
        te = t[ends]
        ke = k[ends]
        n = np.diff(np.concatenate(([0], te)))
        kk = np.diff(np.concatenate(([0], ke)))
        starts_ts = [acc.first_ts or 0] + [ts[e] for e in ends[:-1]]
        ends_ts = [ts[e] for e in ends]
        labels = [
            f"rows {a:,}–{b - 1:,}" for a, b in zip(np.concatenate(([0], te[:-1])), te, strict=True)
        ]
    else:
        w = acc.windows
        n, kk = np.asarray(w.n, dtype=np.int64), np.asarray(w.k, dtype=np.int64)
        starts_ts, ends_ts = w.first_ts, w.last_ts
        if kind == "rows":
            size = w.spec.size
            labels = [
                f"rows {i * size:,}–{i * size + c - 1:,}" for i, c in zip(w.ids, w.n, strict=True)
            ]
        else:
            labels = [str(_fmt_ts(i * w.spec.size, tkind)) for i in w.ids]
    tab = rate_table(n, kk, alpha, budget)
    return [
        RateRow(
            label=labels[i],
            start=_fmt_ts(int(starts_ts[i]), tkind),
            end=_fmt_ts(int(ends_ts[i]), tkind),
            n=int(n[i]),
            k=int(kk[i]),
            rate=float(tab["rate"][i]),
            ci_low=float(tab["ci_low"][i]),
            ci_high=float(tab["ci_high"][i]),
            above_budget=bool(tab["above"][i]),
        )
        for i in range(len(n))
    ]

"""The audit report: plain-language verdict first, then the evidence (Markdown + self-contained HTML).

:func:`write_audit` writes ``audit.json``, ``audit.md`` and ``audit.html`` into a directory in one
atomic step (:func:`ctd_stats.reports.outputs.output_set`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ctd_stats.audit.run import AuditResult, RateRow
from ctd_stats.reports.document import Figure, Heading, Paragraph, Report, Table
from ctd_stats.reports.legend import outside_legend
from ctd_stats.reports.outputs import output_set

#: Rows shown in the report's window and group tables (audit.json has all of them).
MAX_TABLE_ROWS = 60


def _pct(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "–"
    return f"{100 * x:.4g}%"


def _new_figure(width: float, height: float, nrows: int = 1) -> tuple[Any, Any]:
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(nrows, 1, squeeze=False)[:, 0]
    return fig, axes


def _sequential_figure(r: AuditResult) -> Figure:
    fig, (ax1, ax2) = _new_figure(9, 6.2, 2)
    t = np.asarray(r.trace.t, dtype=float)
    le = np.asarray(r.trace.log_evidence) / math.log(10)
    ax1.plot(t, le, color="#2a6fdb", lw=1.4, label="log10 evidence (wealth) M_t")
    ax1.axhline(
        math.log10(1 / r.alpha),
        color="#c62828",
        ls="--",
        lw=1.2,
        label=f"alarm: 1/α = {1 / r.alpha:g}",
    )
    if r.sequential.alarm_index is not None:
        ax1.axvline(r.sequential.alarm_index + 1, color="#c62828", lw=0.8, alpha=0.6)
    ax1.set_ylabel("log10 M_t")
    ax1.set_ylim(bottom=max(float(np.min(le)) if le.size else -1.0, -6.0) - 0.2)
    outside_legend(ax1, fontsize=8)
    ax1.set_title("Anytime-valid monitor of 'rate > budget'")
    k = np.asarray(r.trace.k, dtype=float)
    ax2.fill_between(
        t,
        r.trace.cs_low,
        r.trace.cs_high,
        color="#2a6fdb",
        alpha=0.2,
        label=f"{100 * (1 - r.alpha):g}% confidence sequence",
    )
    ax2.plot(
        t,
        np.divide(k, t, out=np.zeros_like(k), where=t > 0),
        color="#2a6fdb",
        lw=1.2,
        label="cumulative rate",
    )
    ax2.axhline(r.budget, color="#c62828", ls="--", lw=1.2, label=f"budget {r.budget:g}")
    ax2.set_xlabel("decisions (time order)")
    ax2.set_ylabel("delegation rate")
    outside_legend(ax2, fontsize=8)
    return Figure.from_matplotlib(
        fig, caption="Evidence against 'rate ≤ budget' and the running rate."
    )


def _rates_figure(
    rows: list[RateRow], budget: float, title: str, xlabel: str, bars: bool
) -> Figure:
    fig, (ax,) = _new_figure(9, 3.6)
    x = np.arange(len(rows))
    rate = np.array([w.rate for w in rows])
    lo = np.array([w.ci_low for w in rows])
    hi = np.array([w.ci_high for w in rows])
    colors = ["#c62828" if w.above_budget else "#2a6fdb" for w in rows]
    if bars:
        ax.bar(x, rate, color=colors, alpha=0.6)
    ax.errorbar(
        x, rate, yerr=[rate - lo, hi - rate], fmt="o", ms=3, color="#1b1b1b", ecolor="#555", lw=0.8
    )
    above = np.array([w.above_budget for w in rows], dtype=bool)
    if above.any():
        ax.plot(x[above], rate[above], "o", ms=4, color="#c62828", label="interval above budget")
    ax.axhline(budget, color="#c62828", ls="--", lw=1.2, label=f"budget {budget:g}")
    ax.set_ylabel("delegation rate")
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    if len(rows) <= 30:
        ax.set_xticks(x, [w.label for w in rows], rotation=45, ha="right", fontsize=7)
    outside_legend(ax, fontsize=8)
    return Figure.from_matplotlib(
        fig,
        caption=title
        + " (exact Clopper–Pearson intervals; red = whole interval above the budget).",
    )


def _drift_figure(r: AuditResult) -> Figure:
    fig, (ax,) = _new_figure(6.5, 3.8)
    q = np.asarray(r.drift.reference_quantiles)
    p = np.linspace(0, 1, q.size)
    ax.plot(q, p, color="#555", lw=1.5, label=f"calibration (n = {r.drift.n_reference:,})")
    ax.step(
        q,
        r.drift.log_cdf_at_quantiles,
        where="post",
        color="#2a6fdb",
        lw=1.2,
        label=f"log (m = {r.drift.n_log:,})",
    )
    if math.isfinite(r.threshold):
        ax.axvline(r.threshold, color="#c62828", ls="--", lw=1, label=f"τ = {r.threshold:.4g}")
    ax.set_xlabel("deferral score")
    ax.set_ylabel("CDF")
    outside_legend(ax, fontsize=8)
    return Figure.from_matplotlib(fig, caption="Score distribution: calibration vs deployment log.")


def _rate_rows_table(rows: list[RateRow], caption: str, with_time: bool) -> Table:
    cols = [
        "window" if with_time else "group",
        "n",
        "delegated",
        "rate",
        "CI low",
        "CI high",
        "above budget",
    ]
    shown = rows if len(rows) <= MAX_TABLE_ROWS else rows[:MAX_TABLE_ROWS]
    body = [
        [
            w.label,
            w.n,
            w.k,
            _pct(w.rate),
            _pct(w.ci_low),
            _pct(w.ci_high),
            "yes" if w.above_budget else "",
        ]
        for w in shown
    ]
    if len(rows) > MAX_TABLE_ROWS:
        caption += f" (first {MAX_TABLE_ROWS} of {len(rows)}; all in audit.json)"
    return Table(cols, body, caption)


def _implied(ig: Any) -> str:
    lo, hi = ig.implied_threshold_low, ig.implied_threshold_high
    if lo is not None and hi is not None and lo >= hi:
        return (
            f"No single threshold explains the logged decisions (a kept row scores {lo:.6g}, a "
            f"delegated row {hi:.6g})."
        )
    lo_t = f"{lo:.6g}" if lo is not None else "−∞"
    hi_t = f"{hi:.6g}" if hi is not None else "+∞"
    return f"The logged decisions imply a threshold in [{lo_t}, {hi_t})."


def build_report(r: AuditResult) -> Report:
    """Build the audit :class:`~ctd_stats.report.Report` (verdict first, then the evidence)."""
    v = r.verdict
    rep = Report(title="Delegation budget audit", summary=v.headline)
    rep.add(Heading("Verdict"))
    if v.compliant:
        rep.add(Paragraph("No budget violation and no threshold mismatch was found.", tone="ok"))
    for reason in v.reasons:
        rep.add(Paragraph(reason[0].upper() + reason[1:] + ".", tone="bad"))
    for w in r.warnings:
        rep.add(Paragraph(w, tone="warn"))
    rep.add(
        Heading("What was audited"),
        Table(
            ["item", "value"],
            [
                ["log", f"{r.log} ({r.log_format}, {r.rate.n:,} rows)"],
                ["certificate", r.certificate or "–"],
                ["expert", r.expert or "–"],
                ["certified threshold τ (delegate iff score > τ)", r.threshold],
                ["certified budget", _pct(r.budget)],
                ["α", r.alpha],
                [
                    "verdict based on",
                    "anytime-valid monitor"
                    if r.decision_rule == "sequential"
                    else "fixed-n binomial test",
                ],
                ["columns", ", ".join(f"{k}={v_}" for k, v_ in r.columns.items() if v_)],
            ],
        ),
    )
    _rate_section(rep, r)
    _integrity_section(rep, r)
    _breakdown_sections(rep, r)
    return rep


def _rate_section(rep: Report, r: AuditResult) -> None:
    """The realized rate, the fixed-n test and the sequential monitor."""
    s, rt = r.sequential, r.rate
    rep.add(
        Heading("Delegation rate against the budget"),
        Table(
            ["quantity", "value"],
            [
                ["decisions / delegated", f"{rt.n:,} / {rt.k:,}"],
                ["realized rate", _pct(rt.rate)],
                [
                    f"{100 * rt.confidence:g}% Clopper–Pearson interval",
                    f"{_pct(rt.ci_low)} – {_pct(rt.ci_high)}",
                ],
                ["fixed-n p-value P(Bin(n, budget) ≥ k)", rt.pvalue],
                ["sequential monitor alarmed", "yes" if s.alarm else "no"],
                [
                    "alarm after decisions (row, time)",
                    f"{(s.alarm_index or 0) + 1:,} (row {s.alarm_row}, {s.alarm_timestamp})"
                    if s.alarm
                    else "–",
                ],
                [
                    "evidence at alarm",
                    s.evidence_at_alarm if s.evidence_at_alarm is not None else "–",
                ],
                ["evidence now (e-value M_n)", s.evidence],
                ["alarm threshold 1/α", s.evidence_threshold],
                [
                    f"{100 * rt.confidence:g}% confidence sequence (anytime-valid)",
                    f"{_pct(s.cs_low)} – {_pct(s.cs_high)}",
                ],
            ],
        ),
        Paragraph(s.statement),
        Paragraph(rt.statement),
        _sequential_figure(r),
    )


def _integrity_section(rep: Report, r: AuditResult) -> None:
    """Does every logged decision follow the certified rule; were timestamps ordered."""
    ig = r.integrity
    rep.add(Heading("Integrity of the log"))
    if ig.has_scores and ig.has_decisions:
        if ig.n_mismatch:
            rep.add(
                Paragraph(
                    f"{ig.n_mismatch:,} rows contradict τ = {r.threshold:.6g}: {ig.n_delegated_at_or_below:,} "
                    f"delegated with score ≤ τ, {ig.n_kept_above:,} kept with score > τ. {_implied(ig)}",
                    tone="bad",
                )
            )
            rep.add(
                Table(
                    ["row", "timestamp", "score", "delegated", "rule says"],
                    [
                        [m.row, m.timestamp, m.score, m.delegated, m.expected]
                        for m in ig.mismatch_rows
                    ],
                    caption=f"First {len(ig.mismatch_rows)} mismatching rows",
                )
            )
        else:
            rep.add(
                Paragraph(
                    f"Every scored row follows the certified rule score > τ = {r.threshold:.6g}.",
                    tone="ok",
                )
            )
    else:
        rep.add(
            Paragraph(
                "The log lacks scores or decisions, so the threshold could not be checked.",
                tone="warn",
            )
        )
    rep.add(
        Paragraph(
            "Timestamps were in time order."
            if ig.monotone
            else "Timestamps were not in order; the log was sorted by time.",
            tone="plain" if ig.monotone else "warn",
        )
    )


def _breakdown_sections(rep: Report, r: AuditResult) -> None:
    """Rates per window and per group, and score drift against calibration."""
    rep.add(
        Heading("Rates per window"),
        Paragraph(
            f"Window: {r.window}. Each interval is an exact {100 * (1 - r.alpha):g}% interval on its own "
            "(no multiplicity correction): a few windows above the budget are expected by chance."
        ),
    )
    if r.windows:
        rep.add(
            _rates_figure(r.windows, r.budget, "Delegation rate per window", "window", bars=False)
        )
        rep.add(_rate_rows_table(r.windows, "Rates per window", with_time=True))
    if r.groups:
        top = sorted(r.groups, key=lambda g: -g.n)
        rep.add(Heading("Rates per group"))
        rep.add(_rates_figure(top[:30], r.budget, "Delegation rate per group", "group", bars=True))
        rep.add(_rate_rows_table(top, "Rates per group (largest first)", with_time=False))
    rep.add(Heading("Score drift against calibration"))
    d = r.drift
    if d.available:
        msg = (
            f"KS distance D = {d.statistic:.3g} between {d.n_log:,} logged scores and {d.n_reference:,} "
            f"calibration scores, approximate p = {d.pvalue:.3g}. Calibration rate above τ: "
            f"{_pct(d.reference_rate_above_threshold)}; logged: {_pct(r.rate.rate)}. {d.note}"
        )
        rep.add(Paragraph(msg, tone="warn" if d.warning else "plain"), _drift_figure(r))
    else:
        rep.add(Paragraph(f"Not checked: {d.note}."))


AUDIT_FILES = ("audit.json", "audit.md", "audit.html")


def write_audit(
    result: AuditResult, out_dir: str | Path, *, force: bool = False
) -> dict[str, Path]:
    """Write ``audit.json``, ``audit.md`` and ``audit.html`` into ``out_dir`` (see :mod:`ctd_stats.reports.outputs`).

    Only those three files (and ``manifest.json``) are written, each atomically; another run's
    outputs in ``out_dir`` are refused unless ``force``.
    """
    rep = build_report(result)
    out = Path(out_dir)
    with output_set(out, "audit", force=force, names=AUDIT_FILES) as files:
        files.write_json("audit.json", result.to_dict())
        files.write_text("audit.md", rep.to_markdown())
        files.write_text("audit.html", rep.to_html())
    return {"json": out / "audit.json", "markdown": out / "audit.md", "html": out / "audit.html"}

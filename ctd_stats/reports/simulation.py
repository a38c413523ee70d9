"""The simulation report: violation frequency and realized rate per setting (``ctd simulate``)."""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np
from matplotlib.figure import Figure as MplFigure

from ctd_stats.reports.document import Figure, Heading, Paragraph, Report, Table
from ctd_stats.reports.legend import outside_legend
from ctd_stats.study.simulation_grid import COLUMNS, violates_beyond_doubt


def plot(rows: list[dict[str, Any]]) -> MplFigure:
    """Violation frequency (with CP interval) and realized rate against budget, per procedure and n."""
    fig = MplFigure(figsize=(10, 3.8), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    series = sorted({(r["procedure"], r["n"]) for r in rows})
    budgets_all = sorted({r["budget"] for r in rows})
    width = 0.25 * (min(np.diff(budgets_all)) if len(budgets_all) > 1 else 0.1)
    for j, (proc, n) in enumerate(series):
        pts = sorted(
            (r for r in rows if r["procedure"] == proc and r["n"] == n), key=lambda r: r["budget"]
        )
        x = np.array([r["budget"] for r in pts]) + (j - (len(series) - 1) / 2) * width / max(
            1, len(series)
        )
        f = np.array([r["violation_frequency"] for r in pts])
        lo = np.array([r["ci_low"] for r in pts])
        hi = np.array([r["ci_high"] for r in pts])
        label = f"{proc}, n={n}"
        ax1.errorbar(
            x,
            f,
            yerr=[np.maximum(f - lo, 0), np.maximum(hi - f, 0)],
            fmt="o",
            capsize=3,
            label=label,
        )
        exact = [r.get("exact_violation") for r in pts]
        if all(v is not None for v in exact):
            ax1.plot(
                x,
                exact,
                "_",
                ms=14,
                mew=2,
                color="black",
                label="exact P(violation)" if j == 0 else None,
            )
        m = np.array([r["realized_mean"] for r in pts])
        q05 = np.array([r["realized_q05"] for r in pts])
        q95 = np.array([r["realized_q95"] for r in pts])
        (line,) = ax2.plot(x, m, "o-", label=label)
        exact_rate = [r.get("exact_mean_rate") for r in pts]
        if all(v is not None for v in exact_rate):
            ax2.plot(
                x,
                exact_rate,
                "_",
                ms=14,
                mew=2,
                color="black",
                label="exact E[rate]" if j == 0 else None,
            )
        ax2.vlines(x, q05, q95, color=line.get_color(), lw=2, alpha=0.6)
    deltas = sorted({r["delta"] for r in rows})
    for d in deltas:
        ax1.axhline(d, color="#c62828", ls="--", lw=1.2, label=f"δ = {d:g}")
    ax1.set_xlabel("budget")
    ax1.set_ylabel("violation frequency")
    ax1.set_title("P(true rate > budget), 99.9% Clopper–Pearson", fontsize=10)
    ax1.set_ylim(bottom=0)
    outside_legend(ax1, fontsize=8)
    ax1.grid(alpha=0.25)
    top = max(max(budgets_all), max(r["realized_q95"] for r in rows)) * 1.1
    ax2.plot([0, top], [0, top], color="#c62828", ls="--", lw=1, label="rate = budget")
    ax2.set_xlabel("budget")
    ax2.set_ylabel("true delegation rate of τ̂")
    ax2.set_title("Realized rate: mean, 5%–95%", fontsize=10)
    outside_legend(ax2, fontsize=8)
    ax2.grid(alpha=0.25)
    return fig


def rows_csv(rows: list[dict[str, Any]]) -> str:
    """The rows as CSV text with a header."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def build_simulation_report(
    rows: list[dict[str, Any]], title: str, population: str, png: bytes
) -> Report:
    """The report of a simulation grid, with its figure (PNG bytes from :func:`plot`)."""
    worst = max(rows, key=lambda r: r["violation_frequency"])
    ok = not violates_beyond_doubt(rows)
    summary = (
        f"{len(rows)} setting(s) simulated, {rows[0]['trials']} calibration sets each, scores from "
        f"{population}. The highest violation frequency was {worst['violation_frequency']:.4f} "
        f"({worst['procedure']}, n = {worst['n']}, budget {worst['budget']:g}) against δ = "
        f"{worst['delta']:g}: "
        + (
            "consistent with the guarantee."
            if ok
            else "ABOVE δ beyond sampling error: the guarantee fails here."
        )
    )
    rep = Report(title=f"Simulation — {title}", summary=summary)
    rep.add(
        Heading("Violation frequency and realized rate"),
        Figure(
            png=png,
            caption="Left: how often the certified threshold's true rate exceeded the "
            "budget, with its 99.9% Clopper–Pearson interval; it must stay at or below δ. Right: "
            "the true delegation rate of the certified threshold (mean and 5%–95% range). Black "
            "ticks: the exact values (closed form, continuous scores, fixed-sequence) beside the "
            "simulated ones.",
        ),
        Table(list(COLUMNS), [[r[c] for c in COLUMNS] for r in rows]),
        Paragraph(
            "Simulated with budget-only calibration over every distinct score and the exact "
            "binomial p-value; the true rate is computed on the population itself."
        ),
    )
    return rep

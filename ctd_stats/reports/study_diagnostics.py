"""The study report's paired differences and diagnostics (a section per expert of ``ctd run``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ctd_stats.reports.document import Figure, Heading, Paragraph, Table
from ctd_stats.reports.figure_pool import FigurePool
from ctd_stats.reports.legend import outside_legend
from ctd_stats.study import diagnostics as dg
from ctd_stats.study.runner import METHOD_LABELS, METHODS, REFERENCE, ExpertStudy

#: The budget the summary sentence is written for (the nearest one of the grid).
HEADLINE_BUDGET = 0.3


def _fmt(x: float) -> str:
    if not np.isfinite(x):
        return "n/a"
    return f"{0.0 if round(x, 3) == 0 else x:+.3f}".replace("-", "−")


def interval_text(mean: float, lo: float, hi: float) -> str:
    """'+0.004 (95% CI −0.002 … +0.010)'."""
    return f"{_fmt(mean)} (95% CI {_fmt(lo)} … {_fmt(hi)})"


def headline_index(s: ExpertStudy, budget: float = HEADLINE_BUDGET) -> int:
    return int(np.argmin(np.abs(s.budgets - budget)))


def delta_sentence(s: ExpertStudy, method: str = "ctd", budget: float = HEADLINE_BUDGET) -> str:
    """E.g. "CTD − calibrated uncertainty at budget 0.3: +0.004 AUROC (95% CI −0.002 … +0.010): a tie;
    accuracy +0.010 (95% CI …): better", from the paired intervals over the repeated splits."""
    j = headline_index(s, budget)
    i = METHODS.index(method)
    parts = []
    for metric, unit in (("auroc", "AUROC"), ("accuracy", "accuracy")):
        mean, lo, hi = (a[i, j] for a in s.paired_delta(metric))
        parts.append(
            f"{_fmt(mean)} {unit} (95% CI {_fmt(lo)} … {_fmt(hi)}): {dg.verdict(float(lo), float(hi))}"
        )
    name = "CTD" if method == "ctd" else METHOD_LABELS[method]
    return f"{name} − calibrated uncertainty at budget {s.budgets[j]:g}: " + "; ".join(parts)


def verdict_counts(s: ExpertStudy, method: str = "ctd", metric: str = "auroc") -> dict[str, int]:
    """How many budgets the paired interval says better / a tie / worse."""
    i = METHODS.index(method)
    _, lo, hi = s.paired_delta(metric)
    out = {"better": 0, "a tie": 0, "worse": 0}
    for a, b in zip(lo[i], hi[i], strict=True):
        out[dg.verdict(float(a), float(b))] += 1
    return out


def _delta_table(s: ExpertStudy, metric: str) -> Table:
    mean, lo, hi = s.paired_delta(metric)
    shown = [m for m in METHODS if m != REFERENCE]
    rows = [
        [
            f"{b:g}",
            *(
                interval_text(
                    mean[METHODS.index(m), j], lo[METHODS.index(m), j], hi[METHODS.index(m), j]
                )
                for m in shown
            ),
        ]
        for j, b in enumerate(s.budgets)
    ]
    return Table(
        ["budget", *(METHOD_LABELS[m] for m in shown)],
        rows,
        caption=f"Paired difference of cascade {metric} against calibrated uncertainty on the same split: "
        f"mean over {s.repeats} splits, with the 2.5–97.5% range of the per-split differences.",
    )


def _diagnostic_figure(s: ExpertStudy, d: dg.StudyDiagnostics, pool: FigurePool) -> Figure:
    fig, grid = pool.figure("study diagnostics", 12, 4.2, ncols=2)
    axes = grid[0]
    ax = axes[0]
    rm = d.ranking_mean("auroc")
    for i, k in enumerate(dg.RANKINGS):
        ax.plot(
            s.budgets,
            rm[i],
            marker="o",
            ms=3,
            ls="--" if k == "ceiling" else "-",
            label=dg.RANKING_LABELS[k],
        )
    ax.axhline(np.mean(s.probe_auroc), color="k", ls=":", lw=1.2, label="Probe only")
    ax.set_xlabel("budget α (top ⌈αn⌉ of the evaluation rows)")
    ax.set_title("Ranking only (no calibration)")
    outside_legend(ax, fontsize=7.5)
    ax.grid(alpha=0.3)
    ax = axes[1]
    a, r = s.mean("auroc"), s.mean("rate")
    for m in ("ctd", "ctd_budget", REFERENCE):
        i = METHODS.index(m)
        ax.plot(r[i], a[i], marker="o", ms=3, label=METHOD_LABELS[m])
    ax.set_xlabel("realized delegation rate")
    ax.set_ylabel("cascade AUROC")
    ax.set_title("Pareto arm vs budget-only arm")
    outside_legend(ax, fontsize=7.5)
    ax.grid(alpha=0.3)
    return Figure.from_matplotlib(fig, f"Ranking-only curves and the budget-only arm ({s.expert})")


def diagnostic_blocks(s: ExpertStudy, figures: FigurePool | None = None) -> list[Any]:
    """Markdown/HTML blocks: paired differences, then the diagnostics that explain them.

    ``figures`` hands out the figure (the previous expert's, emptied; a fresh one if None)."""
    blocks: list[Any] = [
        Heading(f"Paired differences against calibrated uncertainty ({s.expert})", 3),
        Paragraph(delta_sentence(s) + "."),
        _delta_table(s, "auroc"),
        _delta_table(s, "accuracy"),
    ]
    d = s.diagnostics
    if d is None:
        return blocks
    pool = d.pool
    j = headline_index(s)
    gm, glo, ghi = d.ranking_gap("auroc")
    blocks += [
        Heading(f"Diagnostics ({s.expert})", 3),
        Paragraph(
            f"On the pool ({pool.n} rows): the expert is closer to the label than the probe on "
            f"P(v > 0) = {pool.p_v_positive:.3f} of rows; corr(p, b) = {pool.corr_pb:.3f}; AUROC of d for "
            f"v > 0 = {pool.dv_auroc_v_positive:.3f} (uncertainty −|p − ½|: "
            f"{pool.uncertainty_auroc_v_positive:.3f}). Ranking only at budget {s.budgets[j]:g}, the "
            f"x-measurable ceiling beats uncertainty by {interval_text(gm[0, j], glo[0, j], ghi[0, j])} AUROC "
            f"and the DV score by {interval_text(gm[1, j], glo[1, j], ghi[1, j])}: when the ceiling's "
            "margin is small, no DV can do much better than uncertainty on this table."
        ),
        _diagnostic_figure(s, d, figures or FigurePool()),
    ]
    rm = d.ranking_mean("auroc")
    dv = np.nanmean(d.delegated_v, axis=0)
    rv = np.nanmean(d.ranking_delegated_v, axis=0)
    ic, ib, iu = (METHODS.index(m) for m in ("ctd", "ctd_budget", REFERENCE))
    rows = [
        [
            f"{b:g}",
            rm[0, jj],
            rm[1, jj],
            rm[2, jj],
            dv[ic, jj],
            dv[ib, jj],
            dv[iu, jj],
            rv[0, jj],
            rv[1, jj],
        ]
        for jj, b in enumerate(s.budgets)
    ]
    blocks.append(
        Table(
            [
                "budget",
                "rank d AUROC",
                "rank −|p−½| AUROC",
                "ceiling AUROC",
                "mean v deleg. CTD",
                "mean v deleg. budget-only",
                "mean v deleg. Unc-cal",
                "mean v deleg. rank d",
                "mean v deleg. rank u",
            ],
            rows,
            caption="Ranking-only AUROC (top ⌈αn⌉, no calibration) and the mean delegation value v of the "
            "delegated evaluation rows (means over splits).",
        )
    )
    ba = np.nanmean(d.batch_auroc, axis=0)
    brow = [
        [
            f"{b:g}",
            *(
                ba[mi, si, jj]
                for mi in range(len(dg.BATCH_METHODS))
                for si in range(len(dg.BATCH_SIZES))
            ),
        ]
        for jj, b in enumerate(s.budgets)
    ]
    blocks.append(
        Table(
            ["budget", *(f"{m} B={bs}" for m in dg.BATCH_METHODS for bs in dg.BATCH_SIZES)],
            brow,
            caption="Batch top-k cascade AUROC at the paper's batch sizes (mean over splits).",
        )
    )
    from ctd_stats.stats.intervals import clopper_pearson

    t = s.bootstrap_trials
    vrows = []
    for jj, b in enumerate(s.budgets):
        pv, bv = int(s.bootstrap_violations[jj]), int(d.budget_only_violations[jj])
        (plo, phi), (blo, bhi) = (clopper_pearson(x, t, alpha=0.05) for x in (pv, bv))
        vrows.append(
            [
                f"{b:g}",
                f"{pv / t:.3f} [{float(plo):.3f}, {float(phi):.3f}]",
                f"{bv / t:.3f} [{float(blo):.3f}, {float(bhi):.3f}]",
                s.bootstrap_rate[jj],
                d.budget_only_rate[jj],
            ]
        )
    blocks.append(
        Table(
            [
                "budget",
                "Pareto arm violations [95% CP]",
                "budget-only arm violations [95% CP]",
                "Pareto mean true rate",
                "budget-only mean true rate",
            ],
            vrows,
            caption=f"Budget guarantee of both arms (pool as population, {t} i.i.d. calibration draws; "
            f"must be ≤ δ = {s.delta:g}).",
        )
    )
    return blocks

"""The ``ctd run`` report: CTD against uncertainty delegation, per expert, in words and plots."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ctd_stats.reports.document import (
    Figure,
    Heading,
    Links,
    Paragraph,
    Report,
    Table,
)
from ctd_stats.reports.figure_pool import FigurePool, frozen_heap
from ctd_stats.reports.legend import outside_legend
from ctd_stats.reports.study_diagnostics import delta_sentence, diagnostic_blocks, verdict_counts
from ctd_stats.reports.study_headline import headline_blocks
from ctd_stats.study.runner import CERTIFIED_METHODS, METHOD_LABELS, METHODS, ExpertStudy

COLORS = {
    "ctd": "#1f77b4",
    "ctd_budget": "#17becf",
    "unc_calibrated": "#d62728",
    "unc_topk": "#ff7f0e",
    "dv_topk": "#2ca02c",
    "oracle_topk": "#9467bd",
    "oracle": "#7f7f7f",
}


def _metric_figure(s: ExpertStudy, pool: FigurePool) -> Figure:
    fig, grid = pool.figure("study metrics", 12, 4.4, ncols=2)
    axes = grid[0]
    for ax, metric, title in (
        (axes[0], "auroc", "Cascade AUROC"),
        (axes[1], "accuracy", "Cascade accuracy"),
    ):
        data = getattr(s, metric)
        for i, m in enumerate(METHODS):
            mean = np.nanmean(data[:, i, :], axis=0)
            lo, hi = np.nanquantile(data[:, i, :], [0.1, 0.9], axis=0)
            style = "--" if m in ("oracle", "oracle_topk") else "-"
            ax.plot(
                s.budgets,
                mean,
                style,
                marker="o",
                ms=3,
                color=COLORS[m],
                label=METHOD_LABELS[m],
                lw=2.2 if m == "ctd" else 1.4,
            )
            ax.fill_between(s.budgets, lo, hi, color=COLORS[m], alpha=0.12)
        probe = s.probe_auroc if metric == "auroc" else s.probe_accuracy
        expert = s.expert_auroc if metric == "auroc" else s.expert_accuracy
        ax.axhline(np.mean(probe), color="k", ls=":", lw=1.2, label="Probe only")
        ax.axhline(np.mean(expert), color="k", ls="-.", lw=1.2, label="Expert only")
        ax.set_xlabel("target budget α (fraction of inputs sent to the expert)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    outside_legend(axes[0], fontsize=7.5)
    fig.suptitle(
        f"Expert '{s.expert}': mean over {s.repeats} random splits; bands = 10–90% of splits"
    )
    return Figure.from_matplotlib(fig, f"Cascade quality against budget ({s.expert})")


def _budget_figure(s: ExpertStudy, pool: FigurePool) -> Figure:
    fig, grid = pool.figure("study budget", 12, 4.2, ncols=2)
    axes = grid[0]
    ax = axes[0]
    for m in (*CERTIFIED_METHODS, "unc_topk"):
        i = METHODS.index(m)
        r = s.rate[:, i, :]
        ax.plot(
            s.budgets, r.mean(axis=0), marker="o", ms=3, color=COLORS[m], label=METHOD_LABELS[m]
        )
        lo, hi = np.quantile(r, [0.05, 0.95], axis=0)
        ax.fill_between(s.budgets, lo, hi, color=COLORS[m], alpha=0.12)
    ax.plot([0, s.budgets.max()], [0, s.budgets.max()], "k--", lw=1, label="rate = budget")
    ax.set_xlabel("target budget α")
    ax.set_ylabel("realized delegation rate on evaluation rows")
    ax.set_title("Realized rate (bands: 5–95% of splits)")
    outside_legend(ax, fontsize=8)
    ax.grid(alpha=0.3)
    ax = axes[1]
    from ctd_stats.stats.intervals import clopper_pearson

    freq = s.bootstrap_violations / s.bootstrap_trials
    ci = np.column_stack(clopper_pearson(s.bootstrap_violations, s.bootstrap_trials, alpha=0.05))
    ax.errorbar(
        s.budgets,
        freq,
        yerr=[freq - ci[:, 0], ci[:, 1] - freq],
        fmt="o",
        color=COLORS["ctd"],
        capsize=3,
        label="CTD: P(true rate > α), 95% CP interval",
    )
    ax.axhline(s.delta, color="r", ls="--", label=f"δ = {s.delta:g}")
    ax.set_ylim(0, max(0.3, float(ci[:, 1].max()) + 0.02))
    ax.set_xlabel("target budget α")
    ax.set_title("Budget violations, Monte Carlo (pool as population, i.i.d. draws)")
    outside_legend(ax, fontsize=8)
    ax.grid(alpha=0.3)
    return Figure.from_matplotlib(fig, f"Budget compliance ({s.expert})")


def _group_figure(s: ExpertStudy, budget: float, pool: FigurePool) -> Figure:
    j = int(np.argmin(np.abs(s.budgets - budget)))
    fig, grid = pool.figure("study groups", 12, 4.2, ncols=2)
    axes = grid[0]
    ax = axes[0]
    x = np.arange(len(s.groups))
    show = ("ctd", "unc_topk", "oracle")
    w = 0.8 / len(show)
    for k, m in enumerate(show):
        ax.bar(
            x + k * w - 0.4 + w / 2,
            s.group_rate[METHODS.index(m), j],
            w,
            color=COLORS[m],
            label=METHOD_LABELS[m],
        )
    ax.set_xticks(x, s.groups, rotation=20, fontsize=8)
    ax.set_ylabel("delegation rate in group")
    ax.set_title(f"Where the budget goes at α = {s.budgets[j]:g} (no group labels used)")
    outside_legend(ax, fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    ax = axes[1]
    ax.scatter(s.group_mean_v, s.group_mean_d, s=60, color=COLORS["ctd"])
    for g, vx, dy in zip(s.groups, s.group_mean_v, s.group_mean_d, strict=True):
        ax.annotate(g, (vx, dy), fontsize=8, xytext=(4, 4), textcoords="offset points")
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel("mean true delegation value v in group")
    ax.set_ylabel("mean DV score d in group")
    ax.set_title("The DV probe ranks groups by expert benefit")
    ax.grid(alpha=0.3)
    return Figure.from_matplotlib(fig, f"Adaptivity across groups ({s.expert})")


def _wins(s: ExpertStudy) -> tuple[np.ndarray, np.ndarray]:
    """Mean paired AUROC difference CTD − calibrated uncertainty per budget, and whether its 95%
    interval over the splits is not below 0."""
    mean, _, hi = s.paired_delta("auroc")
    i = METHODS.index("ctd")
    return mean[i], ~(hi[i] < 0)


NO_IMPROVEMENT = "no achievable improvement"


def _faic_cell(value: float) -> float | str:
    """FAIC, or the reason it is undefined (the oracle never beats the probe: nothing to capture)."""
    return NO_IMPROVEMENT if not np.isfinite(value) else value


def _faic_sentence(faic: dict[str, float]) -> str:
    if not np.isfinite(faic["ctd"]):
        return f"FAIC: {NO_IMPROVEMENT} (even the oracle never beats the probe alone)"
    return (
        f"FAIC (AUROC) CTD {faic['ctd']:.2f} vs calibrated uncertainty {faic['unc_calibrated']:.2f}"
    )


def _exact_clause(s: ExpertStudy) -> str:
    if s.exact_violation_bound is None:
        return ""
    return f"; exact bound with the pool as population ≤ {float(s.exact_violation_bound.max()):.3f}"


def expert_summary(s: ExpertStudy) -> str:
    """The summary sentence, written from the paired 95% intervals over the repeated splits."""
    viol = s.bootstrap_violations / s.bootstrap_trials
    worst = int(np.argmax(viol))
    faic = s.faic("auroc")
    counts = verdict_counts(s)
    line = (
        f"Expert '{s.expert}' (probe alone AUROC {np.mean(s.probe_auroc):.3f}, expert alone "
        f"{np.mean(s.expert_auroc):.3f}): {delta_sentence(s)}. Over the {s.budgets.size} budgets, the "
        f"paired AUROC interval says CTD is better at {counts['better']}, ties at {counts['a tie']} and "
        f"is worse at {counts['worse']}; {_faic_sentence(faic)}. Monte Carlo budget violations ≤ "
        f"{viol[worst]:.3f} at every budget (δ = {s.delta:g}){_exact_clause(s)}."
    )
    mean, ok = _wins(s)
    if not ok.all():
        bad = ", ".join(f"{b:g}" for b in s.budgets[~ok])
        line += f" CTD trails calibrated uncertainty at budget(s) {bad} (paired interval below 0)."
    elif (mean < -1e-12).any():
        low = ", ".join(f"{b:g}" for b in s.budgets[mean < -1e-12])
        line += (
            f" CTD trails calibrated uncertainty on average at budget(s) {low}, within the "
            "split-to-split spread (a tie)."
        )
    return line


def _split_words(s: ExpertStudy) -> str:
    if s.split == "none":
        return "Pareto front and budget test on the same rows: no split, budget-only guarantee"
    return "opt / ht split: front on opt, budget test on ht"


def _expert_blocks(
    s: ExpertStudy, group_budget: float, seconds_per_call: float | None, pool: FigurePool
) -> list[Any]:
    blocks: list[Any] = []
    diff, ok = _wins(s)
    a, acc, rate = s.mean("auroc"), s.mean("accuracy"), s.mean("rate")
    ci, iu = METHODS.index("ctd"), METHODS.index("unc_calibrated")
    cert = s.certified.mean(axis=0)
    blocks.append(Heading(f"Expert: {s.expert}", 2))
    blocks.append(Paragraph(expert_summary(s), "ok" if ok.all() else "warn"))
    blocks.append(
        Paragraph(
            f"Pool of {s.n_pool} rows (not used to train either probe); each of {s.repeats} repeats "
            f"splits it into {s.n_cal} calibration rows ({_split_words(s)}) and {s.n_eval} evaluation rows. "
            f"Spearman correlation of the DV score with the true delegation value: {s.dv_spearman:.3f}."
        )
    )
    blocks.append(_metric_figure(s, pool))
    rows = []
    for j, b in enumerate(s.budgets):
        rows.append(
            [
                f"{b:g}",
                a[ci, j],
                a[iu, j],
                diff[j],
                acc[ci, j],
                acc[iu, j],
                a[METHODS.index("unc_topk"), j],
                rate[ci, j],
                rate[iu, j],
                f"{cert[0, j]:.0%}",
                f"{cert[1, j]:.0%}",
            ]
        )
    blocks.append(
        Table(
            [
                "budget",
                "CTD AUROC",
                "Unc-cal AUROC",
                "Δ AUROC",
                "CTD acc",
                "Unc-cal acc",
                "Unc top-k AUROC",
                "CTD rate",
                "Unc-cal rate",
                "CTD certified",
                "Unc-cal certified",
            ],
            rows,
            caption="Means over repeats (evaluation rows). 'certified': share of repeats where a finite τ was certified.",
        )
    )
    fa, fc = s.faic("auroc"), s.faic("accuracy")
    blocks.append(
        Table(
            ["method", "FAIC (AUROC)", "FAIC (accuracy)"],
            [[METHOD_LABELS[m], _faic_cell(fa[m]), _faic_cell(fc[m])] for m in METHODS],
            caption="Fraction of the achievable improvement (global oracle) captured, integrated over the budget grid.",
        )
    )
    blocks.extend(diagnostic_blocks(s, pool))
    blocks.append(_budget_figure(s, pool))
    from ctd_stats.stats.intervals import clopper_pearson

    exceed, reps = s.eval_exceedance("ctd")
    vrows = []
    for j, b in enumerate(s.budgets):
        v = int(s.bootstrap_violations[j])
        lo, hi = (float(x) for x in clopper_pearson(v, s.bootstrap_trials, alpha=0.05))
        bound = "-" if s.exact_violation_bound is None else f"{s.exact_violation_bound[j]:.4f}"
        vrows.append(
            [
                f"{b:g}",
                f"{v}/{s.bootstrap_trials}",
                v / s.bootstrap_trials,
                f"[{lo:.3f}, {hi:.3f}]",
                bound,
                s.bootstrap_rate[j],
                f"{int(exceed[j])}/{reps}",
            ]
        )
    blocks.append(
        Table(
            [
                "budget",
                "violations",
                "frequency",
                "95% CP interval",
                "exact bound",
                "mean true rate",
                "eval-rate > α (proxy)",
            ],
            vrows,
            caption=f"Monte Carlo check: P(true delegation rate of CTD's τ̂ > α) must be ≤ δ = {s.delta:g}. "
            f"{s.monte_carlo_check().sentence()} 'exact bound': the exact upper bound on CTD's violation "
            "probability when calibration rows are drawn i.i.d. from the pool (no simulation). The last "
            "column counts repeats whose realized rate on the finite evaluation split exceeded α (sampling noise "
            "of the evaluation split included, so it is not the guaranteed quantity).",
        )
    )
    blocks.append(_group_figure(s, group_budget, pool))
    j = int(np.argmin(np.abs(s.budgets - group_budget)))
    grows = []
    for gi, g in enumerate(s.groups):
        grows.append(
            [
                g,
                s.group_mean_v[gi],
                s.group_mean_d[gi],
                s.group_rate[ci, j, gi],
                s.group_rate[METHODS.index("unc_topk"), j, gi],
                s.group_delegated_v[ci, j, gi],
                s.group_delegated_v[METHODS.index("unc_topk"), j, gi],
            ]
        )
    blocks.append(
        Table(
            [
                "group",
                "mean v",
                "mean d",
                "CTD rate",
                "Unc top-k rate",
                "CTD mean v delegated",
                "Unc top-k mean v delegated",
            ],
            grows,
            caption=f"Per-group delegation at α = {s.budgets[j]:g} (groups are used for analysis only).",
        )
    )
    if seconds_per_call is not None:
        crow = []
        for jj, b in enumerate(s.budgets):
            calls = rate[ci, jj] * 1000
            crow.append(
                [f"{b:g}", calls, 1000 - calls, calls * seconds_per_call, 1000 * seconds_per_call]
            )
        blocks.append(
            Table(
                [
                    "budget",
                    "expert calls / 1000 inputs (CTD)",
                    "calls saved vs expert-only",
                    "expert seconds / 1000 (CTD)",
                    "expert seconds / 1000 (expert-only)",
                ],
                crow,
                caption=f"Cost at the recorded {seconds_per_call:.3g} s per expert call (CPU, measured when the table was built).",
            )
        )
    return blocks


def build_study_report(
    studies: Sequence[ExpertStudy],
    *,
    title: str,
    costs: dict[str, float | None] | None = None,
    group_budget: float = 0.2,
    preamble: str = "",
    deployment: Sequence[Sequence[Any]] | None = None,
    links: Sequence[tuple[str, str]] = (),
    learning_curve: Mapping[str, Any] | None = None,
    top_blocks: Sequence[Any] = (),
    progress: Callable[[list[ExpertStudy]], Iterable[ExpertStudy]] | None = None,
    figures: FigurePool | None = None,
) -> Report:
    """The whole ``ctd run`` report: a plain-language summary, the deployable thresholds with links to
    the files that hold them, then one section per expert.

    ``top_blocks`` (the verdict and the controls) come right after the summary. ``deployment``
    rows are ``(expert, budget, δ, τ, certified)`` of the certificate written beside the report;
    ``links`` are ``(label, file name)`` pairs of that run's other outputs. ``progress`` wraps the
    experts while their sections are built (four figures each), e.g.
    :func:`ctd_stats.cli.progress.progress`; ``figures`` hands out the matplotlib figures (default:
    a new :class:`~ctd_stats.reports.figure_pool.FigurePool`, one figure per kind, reused).
    """
    pool = figures if figures is not None else FigurePool()
    summary = "\n".join([preamble, *(expert_summary(s) for s in studies)]).strip()
    rep = Report(title=title, summary=summary)
    if top_blocks:  # the verdict and the controls (ctd_stats.reports.study_controls)
        rep.add(*top_blocks)
    if deployment:
        rep.add(Heading("Deployment: the certified thresholds"))
        rep.add(
            Table(
                ["expert", "budget", "δ", "τ (delegate iff d(x) > τ)", "certified"],
                [
                    [e, b, dl, tau, "yes" if ok else "NO: never delegate"]
                    for e, b, dl, tau, ok in deployment
                ],
                caption="Calibrated on the whole pool of the score table; these are the values to deploy "
                "(certificate.json, verified on load). The study below evaluates the method on repeated splits.",
            )
        )
    if links:
        rep.add(Links(list(links)))
    rep.add(
        Paragraph(
            "CTD delegates an input to the expert iff its delegation-value score d(x) exceeds a threshold τ̂ "
            "certified by Learn-then-Test on held-out data: with probability ≥ 1 − δ over the calibration draw, "
            "the long-run delegation rate P(d(X) > τ̂) is at most the budget α (i.i.d. data). Calibrated "
            "uncertainty uses the same certified calibration on the probe's uncertainty instead of d. The batch "
            "top-k methods spend exactly α of every batch and need the whole batch before deciding."
        )
    )
    with frozen_heap():  # the figures: many small objects, nothing of the run's heap to collect
        for s in progress(list(studies)) if progress is not None else studies:
            rep.add(*_expert_blocks(s, group_budget, (costs or {}).get(s.expert), pool))
    if learning_curve:
        rep.add(*_learning_curve_blocks(learning_curve))
    # The headline table comes first, before every other block; sections meant for the top of the
    # report (the controls, ``top_blocks``) follow it.
    rep.blocks[:0] = headline_blocks(studies)
    return rep


def _learning_curve_blocks(curve: Mapping[str, Any]) -> list[Any]:
    """The DV learning curve recorded by the table's build (metadata ``ctd.dv_learning_curve``).

    Its delegation budget is ``budget`` (tables built before 0.2 spell it ``alpha``, as the shipped
    demo table does).
    """
    budget = curve.get("budget", curve.get("alpha", 0.3))
    rows = []
    for expert, e in curve.get("experts", {}).items():
        for r in e.get("curve", []):
            rows.append(
                [
                    expert,
                    r["dev_rows"],
                    r["spearman_pool"],
                    r["cascade_auroc"],
                    e.get("uncertainty_auroc"),
                    e.get("ceiling_auroc"),
                ]
            )
    return [
        Heading("DV learning curve (from the table's build)"),
        Table(
            [
                "expert",
                "DV training rows",
                "Spearman(d, v) on pool",
                f"cascade AUROC, top {budget:g} by d",
                "uncertainty",
                "ceiling (not deployable)",
            ],
            rows,
            caption=(
                f"DV probes refitted on subsets of the dev rows (mean over {curve.get('repeats', 1)} "
                f"random subsets) and scored on all {curve.get('n_pool', '?')} pool rows: how much "
                "the DV gains from more training rows. Recorded when the table was built "
                "(scripts/build_demo_extras.py), not recomputed by ctd run."
            ),
        ),
    ]

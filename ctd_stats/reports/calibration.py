"""The calibration report: what was certified, shown and explained for a person.

Built from a :class:`~ctd_stats.certificate.build.CalibrationOutcome` as a
:class:`~ctd_stats.report.Report`: a plain-language summary first, then per expert its budgets'
guarantees and one figure for them (up to four budgets, one colour each): the delegation-rate curve
on ``ht`` with each budget's line and certified threshold, the p-values against the threshold with
the δ line, the Pareto front on ``opt`` with each chosen point; then the realized rate and error on
``eval`` rows when there are any.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ctd_stats.certificate.build import CalibrationOutcome, EvalSummary, ExpertData
from ctd_stats.certificate.model import BudgetCertificate
from ctd_stats.io import json_float
from ctd_stats.reports.document import Figure, Heading, Paragraph, Report, Table
from ctd_stats.reports.figure_pool import FigurePool, frozen_heap
from ctd_stats.reports.legend import outside_legend
from ctd_stats.stats.curves import SortedScores
from ctd_stats.stats.ltt import Calibration

_BLUE, _GREEN, _RED, _GREY, _ORANGE = "#2a6fdb", "#2e8b3a", "#c62828", "#9e9e9e", "#e08000"


def _pct(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{100 * x:.1f}%"


def _tau(x: float) -> str:
    return "+∞" if math.isinf(x) else f"{x:.4g}"


# ------------------------------------------------------------------------------- the summary
def _sentence(r: BudgetCertificate, ev: EvalSummary) -> str:
    head = f"Expert '{r.expert}', budget {_pct(r.budget)} (δ = {r.delta:g}): "
    if not r.certified:
        return (
            head + "NOTHING CERTIFIED — the cascade fails closed and never calls the expert. "
            f"{r.reason or ''}"
        )
    text = (
        head + f"delegate when d(x) > {_tau(r.threshold)}. With probability at least "
        f"{_pct(1 - r.delta)} over the calibration draw, at most {_pct(r.budget)} of inputs "
        "go to the expert in the long run"
    )
    if r.error_level is not None:
        text += f", and the cascade's error is at most {_pct(r.error_level)}"
    text += "."
    if ev.n:
        text += f" On {ev.n} held-out eval rows it delegated {_pct(ev.rate)}"
        if ev.error is not None:
            text += (
                f"; cascade error {_pct(ev.error)} (probe alone {_pct(ev.probe_error)}, "
                f"expert alone {_pct(ev.expert_error)})"
            )
        text += "."
    return text


def summary_text(outcome: CalibrationOutcome) -> str:
    """The plain-language summary at the top of the report."""
    cert = outcome.certificate
    lines: list[str] = []
    for r in cert.results:
        lines += [_sentence(r, outcome.evaluation[(r.expert, r.budget)]), ""]
    n_ok = sum(r.certified for r in cert.results)
    lines.append(
        f"{n_ok} of {len(cert.results)} budget(s) certified. The guarantee assumes calibration and "
        "deployment inputs come from the same distribution (i.i.d.); audit deployment logs with "
        "`ctd audit` to check that it keeps holding."
    )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- figures
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def decade_label(value: float, _pos: int | None = None) -> str:
    """A log axis' decade tick label, ``10⁻³``, as plain text ("" off the decades).

    The label matplotlib's default log formatter writes, without typesetting it as mathtext:
    parsing ``$10^{-3}$`` for every label was an eighth of the report figures' layout time.
    """
    if not value > 0 or not math.isfinite(value):
        return ""
    exponent = math.log10(value)
    if abs(exponent - round(exponent)) > 1e-9:
        return ""
    return "10" + str(round(exponent)).translate(_SUPERSCRIPT)


def _opt_curve(data: ExpertData) -> tuple[NDArray[np.float64], NDArray[np.float64]] | None:
    """Delegation rate and cascade error on opt for every top-k (visual only; ties ignored)."""
    if data.opt is None or data.opt.n == 0:
        return None
    o = data.opt
    order = np.argsort(-o.dv_score, kind="stable")
    pw = (~o.probe_correct[order]).astype(np.float64)
    ew = (~o.expert_correct[order]).astype(np.float64)
    gain = np.concatenate([[0.0], np.cumsum(ew - pw)])
    k = np.arange(o.n + 1)
    return k / o.n, (pw.sum() + gain) / o.n


#: Budgets drawn together on one calibration figure (one colour each, in budget order). The
#: ``ht`` scores, their delegation-rate curve and the ``opt`` Pareto front belong to the expert,
#: not to the budget, so the budgets of one expert share one figure: the certified thresholds side
#: by side on one curve. Four colours stay distinguishable; a spec with more budgets gets one
#: figure per four.
BUDGETS_PER_FIGURE = 4
_BUDGET_COLOURS = (_BLUE, _GREEN, _ORANGE, "#7b1fa2")


@dataclass(frozen=True)
class ResultGroup:
    """Results of one expert drawn on one figure (at most :data:`BUDGETS_PER_FIGURE`)."""

    expert: str
    results: tuple[BudgetCertificate, ...]


def result_groups(results: Sequence[BudgetCertificate]) -> list[ResultGroup]:
    """``results`` by expert (first-seen order), in budget order, cut into figure-sized groups."""
    by_expert: dict[str, list[BudgetCertificate]] = {}
    for r in results:
        by_expert.setdefault(r.expert, []).append(r)
    groups = []
    for expert, rs in by_expert.items():
        rs.sort(key=lambda r: r.budget)
        for i in range(0, len(rs), BUDGETS_PER_FIGURE):
            groups.append(ResultGroup(expert, tuple(rs[i : i + BUDGETS_PER_FIGURE])))
    return groups


#: Points drawn per curve at most: a curve over 10⁶ calibration scores is drawn from this many,
#: evenly spaced, plus :data:`AROUND_BOUNDARY` on each side of the certified boundary (the same
#: picture at report resolution, without 10⁶ p-values and markers per budget).
MOST_POINTS = 2000
AROUND_BOUNDARY = 100


def thinned_indices(size: int, boundary: int | None = None) -> NDArray[np.intp]:
    """Indices of at most about :data:`MOST_POINTS` of ``size`` ordered points: evenly spaced,
    the first and the last, and every point within :data:`AROUND_BOUNDARY` of ``boundary``."""
    if size <= MOST_POINTS:
        return np.arange(size)
    keep = [np.linspace(0, size - 1, MOST_POINTS).round().astype(np.intp)]
    if boundary is not None:
        keep.append(
            np.arange(max(0, boundary - AROUND_BOUNDARY), min(size, boundary + AROUND_BOUNDARY))
        )
    return np.unique(np.concatenate(keep))


def _tested(
    r: BudgetCertificate, ss: SortedScores, cal: Calibration | None
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
    """Every tested threshold of ``r`` with its p-value and whether it was certified.

    From the core result ``cal`` when given (every hypothesis, even where the certificate lists
    only the deciding boundary of a long chain; ``ss``: the expert's ht scores, sorted once per
    figure), else from the certificate.
    """
    if cal is not None and "k_star" in cal.extras:  # O(n) selection path: redraw the full chain
        from ctd_stats.stats.pvalues import pvalue_function

        thresholds = ss.distinct_values()
        counts = ss.delegation_counts(thresholds)
        kstar = int(cal.extras["k_star"])
        keep = thinned_indices(counts.size, int(np.searchsorted(counts, kstar, side="right")))
        counts, thresholds = counts[keep], thresholds[keep]
        pvalues = pvalue_function(cal.pvalue_kind)(counts, ss.n, cal.budget)
        return thresholds, pvalues, counts <= kstar
    if cal is not None:
        return (
            np.asarray(cal.thresholds, dtype=np.float64),
            np.asarray(cal.pvalues, dtype=np.float64),
            np.asarray(cal.certified, dtype=bool),
        )
    return (
        np.array([t.threshold for t in r.tested], dtype=np.float64),
        np.array([t.pvalue for t in r.tested], dtype=np.float64),
        np.array([t.rejected for t in r.tested], dtype=bool),
    )


def _results_figure(
    group: ResultGroup,
    data: ExpertData,
    cals: Mapping[tuple[str, float], Calibration],
    pool: FigurePool | None = None,
) -> Figure:
    """Rate curve, p-values and Pareto front of one expert's results, one colour per budget.

    ``cals`` holds the core results by (expert, budget) (see :func:`_tested`); ``pool`` hands out
    the figure (the one of the previous group, emptied; a fresh one if None).
    """
    from matplotlib.ticker import FuncFormatter, LogLocator  # only md/html reports draw figures

    results = group.results
    colours = dict(zip((r.budget for r in results), _BUDGET_COLOURS, strict=False))
    ss = SortedScores.from_scores(data.ht_scores, keep_order=False)  # once for every panel
    tested = [_tested(r, ss, cals.get((r.expert, r.budget))) for r in results]
    fronts = [r for r in results if r.pareto_front]
    ncols = 3 if fronts else 2
    fig, grid = (pool or FigurePool()).figure("calibration result", 4.3 * ncols, 3.6, ncols=ncols)
    axes = grid[0]
    # With split 'none' the front and the test use the same (all) calibration rows.
    ht_name, opt_name = (
        ("calibration rows", "calibration rows")
        if results[0].split == "none"
        else ("ht rows", "opt rows")
    )

    # (a) delegation rate on ht against τ; per budget its line and its certified τ
    ax = axes[0]
    s = ss.descending[::-1]
    n = s.size
    rate = (n - np.arange(1, n + 1)) / n  # rate at τ = s[i]: share strictly above
    on = thinned_indices(n)
    ax.step(
        s[on], rate[on], where="post", color="black", lw=1.3, label=f"delegation rate on {ht_name}"
    )
    lo, hi = float(s[0]), float(s[-1])
    pad = 0.03 * (hi - lo if hi > lo else 1.0)
    for r in results:
        c = colours[r.budget]
        tau = f"τ = {r.threshold:.4g}" if r.certified else "nothing certified"
        ax.axhline(r.budget, color=c, ls="--", lw=1.1, label=f"budget {r.budget:g}: {tau}")
        if r.certified:
            ax.axvline(r.threshold, color=c, lw=1.4)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_xlabel("threshold τ (delegate iff d(x) > τ)")
    ax.set_ylabel("share delegated")
    ax.set_title(f"Delegation rate on {ht_name}", fontsize=10)
    outside_legend(ax, fontsize=7.5)
    ax.grid(alpha=0.25)

    # (b) p-values against τ per budget (certified ones solid, the rest faint), with δ
    ax = axes[1]
    # Focus the log axis on the decision (around δ): p-values far below it are drawn on the bottom
    # edge, so a few astronomically small ones do not squeeze every informative point to the top.
    delta = min(r.delta for r in results)
    smallest = min((float(p.min()) for _, p, _ in tested if p.size), default=delta * 1e-4)
    floor = max(delta * 1e-4, smallest / 3)
    for r, (t, p, ok) in zip(results, tested, strict=True):
        c = colours[r.budget]
        pv = np.clip(p, floor, 1.0)
        # a budget with nothing certified is named by its faint points, never as "certified"
        none_label = None if ok.any() else f"budget {r.budget:g}: none certified"
        ax.scatter(t[~ok], pv[~ok], s=7, color=c, alpha=0.25, linewidths=0, label=none_label)
        if ok.any():
            ax.scatter(t[ok], pv[ok], s=9, color=c, label=f"budget {r.budget:g}: certified")
    # Bonferroni-split chains test the budget p-values drawn here at δ/2 (the error chain gets the
    # other half): the line is the level these points were compared with
    split = results[0].procedure == "bonferroni_split"
    for d in sorted({r.delta for r in results}):
        if split:
            ax.axhline(d / 2, color=_RED, ls="--", lw=1.2, label=f"δ/2 = {d / 2:g} (budget chain)")
        else:
            ax.axhline(d, color=_RED, ls="--", lw=1.2, label=f"δ = {d:g}")
    ax.set_yscale("log")
    # minor ticks (and grid) at 2 and 5 per decade, not all eight: a quarter of the tick objects
    # matplotlib lays out on every draw (about a fifth of this report's figure time)
    ax.yaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(decade_label))
    ax.set_ylim(floor / 1.5, 1.5)
    ax.set_xlabel("threshold τ")
    ax.set_ylabel(f"p-value ({ht_name})")
    ax.set_title(f"p-values, {results[0].procedure} ({results[0].pvalue_kind})", fontsize=10)
    outside_legend(ax, fontsize=7.5)
    ax.grid(alpha=0.25, which="both")

    # (c) Pareto front on opt with each budget's chosen point
    if fronts:
        ax = axes[2]
        curve = _opt_curve(data)
        if curve is not None:
            on = thinned_indices(curve[0].size)
            ax.plot(
                curve[0][on], curve[1][on], color=_GREY, lw=1, label=f"all thresholds ({opt_name})"
            )
        drawn: set[tuple[tuple[float, float], ...]] = set()
        for r in fronts:
            points = tuple((p.opt_rate, p.opt_error) for p in r.pareto_front or ())
            if points not in drawn:  # the front is the expert's: drawn once unless it differs
                ax.plot(
                    [p[0] for p in points],
                    [p[1] for p in points],
                    "o-",
                    ms=2.5,
                    color="black",
                    lw=0.8,
                    label=None if drawn else "Pareto front",
                )
                drawn.add(points)
        for r in fronts:
            c = colours[r.budget]
            ax.axvline(r.budget, color=c, ls="--", lw=1.1)
            chosen = [p for p in r.pareto_front or () if p.threshold == r.threshold]
            if r.certified and chosen:
                ax.plot(
                    chosen[0].opt_rate,
                    chosen[0].opt_error,
                    "*",
                    ms=13,
                    color=c,
                    markeredgecolor="black",
                    label=f"chosen at budget {r.budget:g}",
                    zorder=5,
                )
        ax.set_xlabel(f"delegation rate ({opt_name})")
        ax.set_ylabel(f"cascade error ({opt_name})")
        ax.set_title(f"Pareto front on {opt_name}", fontsize=10)
        outside_legend(ax, fontsize=7.5)
        ax.grid(alpha=0.25)
    budgets = ", ".join(f"{r.budget:g}" for r in results)
    fig.suptitle(
        f"expert '{group.expert}', budget{'s' if len(results) > 1 else ''} {budgets}", fontsize=11
    )
    caption = (
        f"One colour per budget. Left: share of {ht_name} with d > τ; dashed: the budget, solid: "
        "the certified τ. Middle: each tested threshold's p-value, solid where certified at "
        "level δ, faint where not. "
        + (
            "With Bonferroni-split chains these are the budget chain's p-values, tested at δ/2; a "
            "threshold is certified only if the error chain rejects it too. "
            if split
            else ""
        )
        + (
            f"Right: delegation rate against cascade error ({opt_name}); dashed: the budget, "
            "star: the chosen threshold."
            if fronts
            else ""
        )
    )
    return Figure.from_matplotlib(fig, caption=caption)


def _eval_figure(
    outcome: CalibrationOutcome, expert: str, pool: FigurePool | None = None
) -> Figure | None:
    rows = [
        (r.budget, outcome.evaluation[(r.expert, r.budget)])
        for r in outcome.certificate.results
        if r.expert == expert
    ]
    rows = [(b, ev) for b, ev in rows if ev.n]
    if not rows:
        return None
    rows.sort()
    budgets = np.array([b for b, _ in rows])
    rates = np.array([ev.rate for _, ev in rows])
    has_err = all(ev.error is not None for _, ev in rows)
    fig, grid = (pool or FigurePool()).figure(
        "calibration eval", 8.6 if has_err else 4.3, 3.4, ncols=2 if has_err else 1
    )
    axes = grid[0]
    ax = axes[0]
    top = max(float(budgets.max()), float(rates.max())) * 1.1
    ax.plot([0, top], [0, top], color=_RED, ls="--", lw=1, label="rate = budget")
    ax.plot(budgets, rates, "o-", color=_BLUE, label="realized on eval")
    ax.set_xlabel("budget")
    ax.set_ylabel("delegation rate on eval")
    ax.set_title("Realized rate against budget", fontsize=10)
    outside_legend(ax, fontsize=8)
    ax.grid(alpha=0.25)
    if has_err:
        ax = axes[1]
        errs = np.array([ev.error for _, ev in rows], dtype=np.float64)
        ax.plot(budgets, errs, "o-", color=_BLUE, label="cascade")
        ax.axhline(float(rows[0][1].probe_error or 0), color=_ORANGE, ls=":", label="probe only")
        ax.axhline(float(rows[0][1].expert_error or 0), color=_GREEN, ls=":", label="expert only")
        ax.set_xlabel("budget")
        ax.set_ylabel("error on eval")
        ax.set_title("Cascade error on eval", fontsize=10)
        outside_legend(ax, fontsize=8)
        ax.grid(alpha=0.25)
    return Figure.from_matplotlib(
        fig, caption=f"Expert '{expert}': realized delegation rate and error on the eval rows."
    )


# --------------------------------------------------------------------------------- document
def report_data(outcome: CalibrationOutcome) -> dict[str, Any]:
    """The report's numbers as JSON-ready data (``report.json``)."""
    return {
        "cascade": outcome.certificate.cascade,
        "n": outcome.certificate.n,
        "results": [
            {
                "expert": r.expert,
                "budget": r.budget,
                "delta": r.delta,
                "method": r.method,
                "threshold": json_float(r.threshold),
                "certified": r.certified,
                "reason": r.reason,
                "eval": outcome.evaluation[(r.expert, r.budget)].to_dict(),
            }
            for r in outcome.certificate.results
        ],
    }


def build_calibration_report(
    outcome: CalibrationOutcome,
    progress: Callable[[list[ResultGroup]], Iterable[ResultGroup]] | None = None,
    *,
    figures: FigurePool | None = None,
) -> Report:
    """The calibration report for ``outcome``.

    ``progress`` wraps the figures' :class:`ResultGroup` s (an expert's budgets, up to
    :data:`BUDGETS_PER_FIGURE` per figure) while they are drawn (about a fifth of a second each: a
    1,000-budget spec takes about a minute), e.g.
    :func:`ctd_stats.cli.progress.progress`. ``figures`` hands out the matplotlib figures (default:
    a new :class:`~ctd_stats.reports.figure_pool.FigurePool`, one figure per kind, reused).
    """
    pool = figures if figures is not None else FigurePool()
    spec, cert = outcome.spec, outcome.certificate
    rep = Report(title=f"Calibration report — {cert.cascade}", summary=summary_text(outcome))
    if spec.cascade.description:
        rep.add(Paragraph(spec.cascade.description))
    n_ok = sum(r.certified for r in cert.results)
    tone = "ok" if n_ok == len(cert.results) else ("bad" if n_ok == 0 else "warn")
    rep.add(Paragraph(f"{n_ok} of {len(cert.results)} (expert, budget) pairs certified.", tone))

    rows = []
    for r in cert.results:
        ev = outcome.evaluation[(r.expert, r.budget)]
        at = [t.ht_rate for t in r.tested if t.threshold == r.threshold]
        rows.append(
            [
                r.expert,
                r.budget,
                r.delta,
                _tau(r.threshold),
                "yes" if r.certified else "no",
                _pct(at[0]) if at else "0.0%",
                _pct(ev.rate) if ev.n else "–",
                _pct(ev.error),
            ]
        )
    rep.add(
        Heading("Results"),
        Table(
            [
                "expert",
                "budget",
                "δ",
                "threshold τ",
                "certified",
                "rate on ht",
                "rate on eval",
                "error on eval",
            ],
            rows,
            caption="One row per expert and budget. τ = +∞ means never delegate (fail closed).",
        ),
    )
    with frozen_heap():  # the figures: many small objects, nothing of the run's heap to collect
        groups = result_groups(cert.results)
        previous = None
        for group in progress(groups) if progress is not None else groups:
            if group.expert != previous:  # one heading per expert, however many figures it has
                rep.add(Heading(f"Expert '{group.expert}'"))
                previous = group.expert
            for r in group.results:
                rep.add(Heading(f"Budget {r.budget:g}", level=3))
                rep.add(Paragraph(r.guarantee, "ok" if r.certified else "bad"))
                if r.reason:
                    rep.add(Paragraph(f"Why nothing was certified: {r.reason}", "warn"))
            data = outcome.data[group.expert]
            rep.add(_results_figure(group, data, outcome.calibrations, pool))
        experts = list(dict.fromkeys(r.expert for r in cert.results))
        eval_figs = [(e, _eval_figure(outcome, e, pool)) for e in experts]
    if any(f is not None for _, f in eval_figs):
        rep.add(Heading("Held-out evaluation"))
        rep.add(
            Paragraph(
                "The eval rows took no part in calibration. A realized rate a little above the "
                "budget on a finite eval set is not by itself a violation: the guarantee is about "
                "the long-run rate, with probability 1 − δ."
            )
        )
        for _, f in eval_figs:
            if f is not None:
                rep.add(f)
    c = spec.calibration
    method = (
        (
            "Pareto testing (CTD): thresholds on the opt (delegation rate, error) Pareto front, tested on ht"
            if c.effective_split == "opt_ht"
            else "Pareto testing (CTD) without a split: the (delegation rate, error) Pareto front of all "
            "calibration rows, tested on the same rows (valid for the budget, which is monotone in τ)"
        )
        if c.pareto
        else "budget-only Learn-then-Test on the ht rows"
    )
    rep.add(
        Heading("Setup and provenance"),
        Table(
            ["item", "value"],
            [
                ["method", method],
                ["procedure", c.procedure],
                ["p-value", c.pvalue],
                ["δ", c.delta],
                [
                    "joint error level",
                    "–" if c.error_level is None else f"{c.error_level:g} ({c.joint})",
                ],
                ["rows per split", ", ".join(f"{k}: {v}" for k, v in cert.n.items())],
                ["score table", str(outcome.table.path)],
                ["table sha256", cert.data_sha256 or "–"],
                ["spec sha256", cert.spec_sha256 or "–"],
                ["seed", cert.seed],
                ["package version", cert.package_version],
                ["created", cert.created_at],
            ],
        ),
        Paragraph(f"Assumption: {cert.assumption}"),
    )
    return rep

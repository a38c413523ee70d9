"""The top of the ``ctd run`` report: the verdict and the controls beside the headline (issue 18)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ctd_stats.reports.document import Heading, Paragraph, Table
from ctd_stats.study.controls import ExpertControls, IntervalArray, headline_index
from ctd_stats.study.verdict import Verdict, group_label


def _iv(iv: IntervalArray | None, j: int) -> str:
    if iv is None:
        return "not run"
    m, lo, hi = iv.at(j)
    if not np.isfinite(m):
        return "undefined (one class)"
    return f"{m:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def _headline_table(c: ExpertControls, j: int) -> Table:
    rows: list[list[Any]] = [
        ["CTD − calibrated uncertainty (splits, headline)", _iv(c.headline, j)],
        ["… pool bootstrap interval", _iv(c.pool_bootstrap, j)],
        ["… with DV refits on dev resamples", _iv(c.dv_refit, j)],
    ]
    for name, iv in c.protocols.items():
        rows.append([f"… calibration split '{name}'", _iv(iv, j)])
    rows.append(["oracle − calibrated uncertainty", _iv(c.diff("oracle", "unc"), j)])
    frac = c.ratio(("ctd", "unc"), ("oracle", "unc"))[j]
    rows.append(
        ["share of the oracle gap CTD closes", f"{frac:.0%}" if np.isfinite(frac) else "n/a"]
    )
    if c.has("refit_probe"):
        rows += [
            ["refit probe alone − CTD", _iv(c.diff("refit_probe", "ctd"), j)],
            ["refit probe + uncertainty − CTD", _iv(c.diff("refit_unc", "ctd"), j)],
            [
                "refit probe + CTD − refit probe + uncertainty",
                _iv(c.diff("refit_ctd", "refit_unc"), j),
            ],
        ]
    if c.route is not None:
        rf = c.ratio(("route", "unc"), ("ctd", "unc"))[j]
        rows += [
            ["route-by-group − calibrated uncertainty", _iv(c.diff("route", "unc"), j)],
            [
                "share of CTD's gain route-by-group recovers",
                f"{rf:.0%}" if np.isfinite(rf) else "n/a",
            ],
        ]
    if c.has("noshift_ctd"):
        rows += [
            [
                "no shift: CTD − calibrated uncertainty",
                _iv(c.diff("noshift_ctd", "noshift_unc"), j),
            ],
            [
                "no shift: oracle − calibrated uncertainty",
                _iv(c.diff("noshift_oracle", "noshift_unc"), j),
            ],
        ]
    if c.null is not None:
        nd = c.null["null_delta"][j]
        rows.append(
            [
                "null world Δ (labels from the probe's calibrated score, uniform expert)",
                f"{nd['mean']:+.3f} [{nd['ci95'][0]:+.3f}, {nd['ci95'][1]:+.3f}]; p = {c.null['p_value'][j]:.3f}",
            ]
        )
    for name, why in c.missing.items():
        rows.append([f"{name}", f"not run: {why}"])
    return Table(
        ["control (AUROC, paired over splits)", f"at budget {c.budgets[j]:g}: mean [95% interval]"],
        rows,
        caption=f"Expert '{c.expert}'. Intervals: 2.5–97.5% over {c.repeats} repetitions.",
    )


def _budget_table(c: ExpertControls) -> Table:
    arms = [("ctd", "CTD"), ("unc", "Unc-cal"), ("oracle", "oracle")]
    arms += [
        (k, lbl)
        for k, lbl in (
            ("refit_probe", "refit probe"),
            ("refit_unc", "refit + unc"),
            ("refit_ctd", "refit + CTD"),
            ("route", "route-by-group"),
        )
        if c.has(k)
    ]
    means = {k: c.mean_auroc(k) for k, _ in arms}
    rows = [[f"{b:g}", *(float(means[k][j]) for k, _ in arms)] for j, b in enumerate(c.budgets)]
    return Table(
        ["budget", *(lbl for _, lbl in arms)],
        rows,
        caption=f"Expert '{c.expert}': mean cascade AUROC over the splits, per budget.",
    )


def _group_table(c: ExpertControls, j: int) -> Table:
    rows = [
        [group_label(name), round(c.group_n_eval[name], 1), _iv(iv, j)]
        for name, iv in c.by_group.items()
    ]
    return Table(
        ["group", "evaluation rows per split", f"CTD − calibrated uncertainty at {c.budgets[j]:g}"],
        rows,
        caption="AUROC restricted to the group's evaluation rows (undefined where they hold one class).",
    )


def _logo_table(c: ExpertControls) -> Table | None:
    """Leave one group out: the headline Δ without each group (rows whose removal makes an
    interval that excludes 0 include it, or cross it, are marked)."""
    logo = c.leave_one_out
    if logo is None or not logo.groups:
        return None
    j, same, rests = c.leave_one_out_reference()
    n = logo.n_left[0] + logo.n_removed[0]
    rows: list[list[Any]] = [
        ["none (the headline)", 0, n, _iv(c.headline, j), ""],
        [f"none (the headline, first {logo.splits} splits)", 0, n, _iv(same, 0), ""],
    ]
    for i, g in enumerate(logo.groups):
        rows.append(
            [
                group_label(g),
                logo.n_removed[i],
                logo.n_left[i],
                _iv(logo.delta, i),
                "the headline rests on it" if g in rests else "",
            ]
        )
    return Table(
        [
            "group left out",
            "pool rows removed",
            "pool rows left",
            f"CTD − calibrated uncertainty at {logo.budget:g}",
            "reading",
        ],
        rows,
        caption=(
            "The headline recomputed on the pool without each group: thresholds certified again on "
            f"the remaining rows, same seeds and split protocol; intervals 2.5–97.5% over the study's "
            f"first {logo.splits} splits (the headline's over {c.repeats}). 'The headline rests on "
            "it': the headline's interval excludes 0, the interval without the group does not "
            "exclude it on the same side (it includes 0 or lies on the other side)."
        ),
    )


def controls_blocks(
    controls: Sequence[ExpertControls], verdicts: Sequence[Verdict], overall: str
) -> list[Any]:
    """Verdict paragraph, then per expert: the headline with its controls, per budget, per group."""
    blocks: list[Any] = [
        Heading("Verdict and controls"),
        Paragraph(overall, "ok" if any(v.ctd_pays for v in verdicts) else "warn", literal=True),
    ]
    for c in controls:
        j = headline_index(c.budgets)
        blocks.append(Heading(f"Controls: expert '{c.expert}'", 3))
        blocks.append(_headline_table(c, j))
        blocks.append(_budget_table(c))
        if c.by_group:
            blocks.append(_group_table(c, j))
        logo = _logo_table(c)
        if logo is not None:
            blocks.append(logo)
    return blocks

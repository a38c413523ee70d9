"""The headline of the ``ctd run`` report: CTD against calibrated uncertainty, per expert and budget.

It is the first table of ``report.md`` / ``report.html`` (:func:`ctd_stats.reports.study.build_study_report`
puts it before every other block, the controls included): mean cascade AUROC of CTD and of calibrated
uncertainty over the repeated splits, and their paired difference with its 95% interval over the
splits (the numbers behind the report's summary sentence and the README's table).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ctd_stats.reports.document import Heading, Table
from ctd_stats.study.runner import METHODS, REFERENCE, ExpertStudy

#: Title of the headline section (tests find the first table by it).
HEADLINE = "Headline: CTD against calibrated uncertainty"


def headline_rows(studies: Sequence[ExpertStudy]) -> list[list[Any]]:
    """``[expert, budget, CTD AUROC, calibrated-uncertainty AUROC, "Δ [lo, hi]", CTD rate]`` rows."""
    rows: list[list[Any]] = []
    ci, iu = METHODS.index("ctd"), METHODS.index(REFERENCE)
    for s in studies:
        auroc, rate = s.mean("auroc"), s.mean("rate")
        dm, dlo, dhi = s.paired_delta("auroc")
        for j, b in enumerate(s.budgets):
            rows.append(
                [
                    s.expert,
                    f"{b:g}",
                    f"{auroc[ci, j]:.3f}",
                    f"{auroc[iu, j]:.3f}",
                    f"{dm[ci, j]:+.3f} [{dlo[ci, j]:+.3f}, {dhi[ci, j]:+.3f}]",
                    f"{rate[ci, j]:.3f}",
                ]
            )
    return rows


def headline_blocks(studies: Sequence[ExpertStudy]) -> list[Any]:
    """The headline heading and table (empty when there is no study)."""
    if not studies:
        return []
    reps = sorted({s.repeats for s in studies})
    return [
        Heading(HEADLINE),
        Table(
            [
                "expert",
                "budget",
                "CTD AUROC",
                "calibrated uncertainty AUROC",
                "Δ AUROC [95% interval over splits]",
                "CTD realized rate",
            ],
            headline_rows(studies),
            caption=f"Mean over {', '.join(map(str, reps))} random calibration/evaluation splits; Δ is "
            "CTD minus calibrated uncertainty on the same split (an interval above 0: CTD better).",
        ),
    ]

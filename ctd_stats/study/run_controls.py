"""The controls and the verdict of ``ctd run``: every expert of a table, on the study's splits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ctd_stats.study.control_inputs import read_control_columns
from ctd_stats.study.controls import ExpertControls, compute_controls
from ctd_stats.study.inputs import study_inputs
from ctd_stats.study.runner import ExpertStudy, finite_or_none
from ctd_stats.study.verdict import Verdict, expert_verdict, overall_verdict

__all__ = ["StudyControls", "controls_for_table"]


@dataclass(frozen=True)
class StudyControls:
    """Controls and verdicts of every expert (immutable)."""

    experts: tuple[ExpertControls, ...]
    verdicts: tuple[Verdict, ...]
    overall: str

    def to_dict(self) -> dict[str, Any]:
        """``{"controls": {expert: ...}, "verdict": {"text": ..., "experts": {expert: ...}}}``
        (non-finite numbers become null)."""
        return dict(
            finite_or_none(
                {
                    "controls": {c.expert: c.to_dict() for c in self.experts},
                    "verdict": {
                        "text": self.overall,
                        "experts": {v.expert: v.to_dict() for v in self.verdicts},
                    },
                }
            )
        )

    def headline(self) -> str:
        """The verdict's first sentence, pointing to the section that explains it."""
        if not self.verdicts:
            return ""
        pays = [v.expert for v in self.verdicts if v.ctd_pays]
        head = self.overall.split(". ", 1)[0].rstrip(".")
        return f"Verdict: {head}" + (
            " (see 'Verdict and controls')." if pays else " (see 'Verdict and controls' for why)."
        )


def controls_for_table(spec: Any, table: Any, studies: Sequence[ExpertStudy]) -> StudyControls:
    """Run :func:`~ctd_stats.study.controls.compute_controls` for every study's expert with the
    study's settings (budgets, δ, repeats, split protocol, seed)."""

    out = []
    for s in studies:
        out.append(
            compute_controls(
                study_inputs(table, s.expert),
                read_control_columns(table, s.expert),
                budgets=s.budgets,
                delta=s.delta,
                repeats=s.repeats,
                cal_fraction=s.cal_fraction,
                opt_fraction=spec.calibration.opt_fraction,
                seed=spec.splits.seed,
                split=s.split,
            )
        )
    verdicts = tuple(expert_verdict(c) for c in out)
    return StudyControls(tuple(out), verdicts, overall_verdict(list(verdicts)))

"""The study's inputs from a score table: one expert's pool rows (not used to train the probes)."""

from __future__ import annotations

import numpy as np

from ctd_stats.errors import CTDInputError
from ctd_stats.study.runner import StudyInputs
from ctd_stats.table.score_table import TRAINING_SPLITS, ScoreTable

__all__ = ["study_inputs"]


def study_inputs(table: ScoreTable, expert: str) -> StudyInputs:
    """The pool rows (not used to train the probes) of one expert, checked complete."""
    pool = ~np.isin(table.split, TRAINING_SPLITS)
    table.require_labelled(pool, expert, "ctd run")
    ex = table.expert(expert)
    assert table.label is not None and table.probe_prob is not None and ex.expert_prob is not None
    classes = np.unique(table.label[pool])
    if classes.size < 2:
        only = "unsafe (1)" if classes.size and classes[0] == 1 else "safe (0)"
        raise CTDInputError(
            f"{table.name()}: column 'label': every pool row is {only}; `ctd run` compares methods by "
            "AUROC and accuracy, which need both classes (use `ctd calibrate` to certify a budget "
            "without labels of both kinds)"
        )
    spc = ex.cost.get("seconds_per_call") if ex.cost else None
    return StudyInputs(
        labels=table.label[pool].astype(bool),
        probe_prob=table.probe_prob[pool],
        expert_prob=ex.expert_prob[pool],
        dv_score=ex.dv_score[pool],
        group=table.group[pool] if table.group is not None else None,
        expert=expert,
        seconds_per_call=float(spc) if spc is not None else None,
    )

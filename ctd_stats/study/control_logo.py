"""Leave one group out: does the study's headline survive without any one of its groups?

For each group g of the pool (e.g. a data source) the headline Δ = AUROC(CTD) − AUROC(calibrated
uncertainty) at the headline budget is recomputed on the pool *without g's rows*, exactly as
``ctd run`` computes it on a table whose g rows were deleted: split ``r`` of the remaining n′ rows
is the permutation drawn from child ``r`` of ``SeedSequence(seed)`` (the study's seed), its first
``round(cal_fraction · n′)`` rows calibrate (``opt`` / ``ht`` as in the headline), the rest
evaluate, and both thresholds (CTD's on the DV score, calibrated uncertainty's on
u = −|F̂_cal(p) − ½| with F̂_cal from the remaining calibration rows) are certified again on the
remaining rows with the headline's budget, δ and split protocol. The rows are selected by index
into the pool's columns (a row mask), nothing is copied or refitted: the DV and probe scores are the
table's. The interval is the headline's: 2.5% / 97.5% quantiles of the paired Δ over the splits
(the spread of the procedure's outcome, not a confidence statement about a population parameter).
To keep ``ctd run`` fast the control uses the study's first ``min(repeats, MAX_SPLITS)`` splits
(split ``r`` is the same seed as the headline's split ``r``); the number is stated in study.json.

A group is *skipped* (and named in ``not_run``) when the rows left without it are fewer than the
headline needs (:data:`~ctd_stats.study.runner.MIN_CAL_ROWS` calibration and
:data:`~ctd_stats.study.runner.MIN_EVAL_ROWS` evaluation rows) or hold one class only.

Reading: if the headline's interval excludes 0 but the interval without g does not exclude it on
the same side (it includes 0, or lies on the other side of it: without g the gain turns into a
loss), the result rests on g (:meth:`LeaveOneGroupOut.rests_on`); the verdict then names g.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ctd_stats.study.control_arms import (
    ControlSettings,
    IntervalArray,
    SplitCascade,
    control_auc,
    ctd_unc_masks,
)
from ctd_stats.study.runner import MIN_CAL_ROWS, MIN_EVAL_ROWS, StudyInputs, split_rng

__all__ = ["MAX_SPLITS", "LeaveOneGroupOut", "leave_one_group_out"]

#: At most this many of the study's splits per group left out (cost: groups × splits certifications;
#: 100 splits × 7 groups cost about 0.4 s CPU per expert on the demo's 1,401 pool rows).
MAX_SPLITS = 100


@dataclass(frozen=True)
class LeaveOneGroupOut:
    """The headline Δ without each group in turn, at one budget (immutable).

    Attributes
    ----------
    budget : float
        The headline budget the control is computed at.
    splits : int
        Random calibration/evaluation splits per group: the study's first ``splits`` splits.
    groups : tuple of str
        The groups left out (in sorted order), skipped groups excluded.
    n_removed, n_left : tuple of int
        Pool rows of the group, and pool rows left without it.
    delta : IntervalArray
        Mean and 95% interval over the splits of Δ without the group; axis: ``groups``.
    skipped : dict
        Group → why it was not left out (too few rows or one class left).
    """

    budget: float
    splits: int
    groups: tuple[str, ...]
    n_removed: tuple[int, ...]
    n_left: tuple[int, ...]
    delta: IntervalArray
    skipped: dict[str, str] = field(default_factory=dict)

    def interval(self, group: str) -> tuple[float, float, float]:
        """(mean, lo, hi) of Δ without ``group``."""
        return self.delta.at(self.groups.index(group))

    def rests_on(self, lo: float, hi: float) -> list[str]:
        """The groups without which an interval ``[lo, hi]`` that excludes 0 would no longer exclude
        it on the same side: the interval without the group includes 0 or lies on the other side
        (none if ``[lo, hi]`` itself includes 0). A group whose Δ is undefined (NaN) is not
        counted."""
        if lo <= 0 <= hi:
            return []
        glo, ghi = self.delta.lo, self.delta.hi
        kept = (glo > 0) if lo > 0 else (ghi < 0)
        defined = np.isfinite(glo) & np.isfinite(ghi)
        return [g for i, g in enumerate(self.groups) if defined[i] and not kept[i]]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (NaN stays NaN here; the caller turns it into null)."""
        rows = self.delta.to_list()
        return {
            "budget": self.budget,
            "splits": self.splits,
            "groups": {
                g: {"n_removed": self.n_removed[i], "n_pool_left": self.n_left[i], "delta": rows[i]}
                for i, g in enumerate(self.groups)
            },
            "skipped": dict(self.skipped),
        }


def _too_small(y_left: NDArray[np.bool_], n_cal: int) -> str | None:
    n = int(y_left.size)
    if n_cal < MIN_CAL_ROWS or n - n_cal < MIN_EVAL_ROWS:
        return (
            f"{n} pool rows ({n_cal} calibration, {n - n_cal} evaluation); the headline needs "
            f"≥ {MIN_CAL_ROWS} calibration and ≥ {MIN_EVAL_ROWS} evaluation rows"
        )
    if y_left.all() or not y_left.any():
        return f"{n} pool rows of one class only (AUROC needs both)"
    return None


def leave_one_group_out(
    inputs: StudyInputs,
    settings: ControlSettings,
    *,
    budget_index: int,
    cal_fraction: float,
    opt_fraction: float,
    splits: int | None = None,
) -> LeaveOneGroupOut:
    """The headline Δ at ``settings.budget_grid[budget_index]`` without each group of
    ``inputs.group`` in turn, on the study's first ``splits`` splits (default
    ``min(settings.repeats, MAX_SPLITS)``; see the module docstring).

    ``cal_fraction`` and ``opt_fraction`` are the study's: the remaining n′ rows are split into
    ``round(cal_fraction · n′)`` calibration rows, ``opt_fraction`` of them in ``opt``. Cost:
    (groups × splits) certifications of two thresholds at one budget, O(n log n) each.
    """
    if inputs.group is None:
        raise ValueError("leave_one_group_out needs the pool's groups")
    y, p, b, d = inputs.labels, inputs.probe_prob, inputs.expert_prob, inputs.dv_score
    names, codes = np.unique(inputs.group, return_inverse=True)
    counts = np.bincount(codes, minlength=names.size)
    budget = settings.budget_grid[budget_index : budget_index + 1]
    reps = min(settings.repeats, MAX_SPLITS) if splits is None else splits
    if reps < 1:
        raise ValueError(f"splits must be ≥ 1, got {reps}")
    kept: list[tuple[str, NDArray[np.int64], ControlSettings]] = []
    skipped: dict[str, str] = {}
    for gi, g in enumerate(names):
        keep = np.flatnonzero(codes != gi)
        sub = ControlSettings.for_pool(
            keep.size,
            budgets=budget,
            delta=settings.delta,
            repeats=reps,
            cal_fraction=cal_fraction,
            opt_fraction=opt_fraction,
            seed=settings.seed,
            split=settings.split,
            null_draws=None,
        )
        why = _too_small(y[keep], sub.n_cal)
        if why is None:
            kept.append((str(g), keep, sub))
        else:
            skipped[str(g)] = f"removing its {int(counts[gi])} rows leaves {why}"
    out = np.empty((reps, len(kept)))
    for k, (_, keep, sub) in enumerate(kept):
        for r in range(reps):  # the same split r as a table without the group's rows would get
            cas = SplitCascade.of(sub, y, p, b, keep[split_rng(sub.seed, r).permutation(keep.size)])
            ev = cas.ev
            a = control_auc(ctd_unc_masks(cas, d), p[ev], b[ev], y[ev])
            out[r, k] = a[0, 0] - a[1, 0]
    return LeaveOneGroupOut(
        budget=float(budget[0]),
        splits=reps,
        groups=tuple(g for g, _, _ in kept),
        n_removed=tuple(inputs.n - keep.size for _, keep, _ in kept),
        n_left=tuple(int(keep.size) for _, keep, _ in kept),
        delta=IntervalArray.of(out),
        skipped=skipped,
    )

"""The controls a reviewer asks of a CTD study (issue 18), computed beside ``ctd run``'s headline.

The headline is Δ = AUROC(CTD) − AUROC(calibrated uncertainty) of the cascade on the evaluation rows,
paired over the study's random calibration/evaluation splits of the pool (the same splits as
:func:`ctd_stats.study.runner.run_study`: split ``r`` is drawn from child ``r`` of
``SeedSequence(seed)``). Every control below is evaluated on those same splits, so every difference
is paired. Intervals are the 2.5% / 97.5% quantiles over the repetitions (they describe the spread
of the procedure's outcome, not a confidence statement about a population parameter).

* **Per group** — Δ restricted to the evaluation rows of each group (source) and of each named group
  set (``ctd.controls`` metadata, e.g. the sources the probe was trained on). NaN where a group's
  evaluation rows hold one class (AUROC undefined).
* **Leave one group out** — the headline Δ at the headline budget recomputed on the pool without
  each group in turn, thresholds certified again on the remaining rows, on the same seeds: exactly
  the headline of a table whose group rows were deleted (:mod:`ctd_stats.study.control_logo`).
  Answers "does the headline survive without its strongest group?". Not run over
  :data:`MAX_GROUPS` groups (cost: groups × min(repeats, 100) certifications; 50 groups, 100
  splits, 2,900 pool rows: about 6 s CPU per expert).
* **Protocols** — Δ under both calibration splits: ``opt_ht`` (the paper's: Pareto front on opt,
  budget test on ht) and ``none`` (all calibration rows do both).
* **Labels to the probe** (columns ``probe_prob_refit``, ``dv_score_refit__<expert>``) — the same
  dev labels the DV probe was trained on, spent instead on refitting the safety probe: the refit
  probe alone (no delegation), with calibrated-uncertainty delegation, and with CTD on top.
* **Route by group** — a rule learned on the dev rows only: groups ranked by their mean delegation
  value v on dev (only groups with mean v > 0), sent whole to the expert in that order while their
  dev share fits the budget; the next group is filled by the probe's uncertainty (|p − ½| threshold
  set on its dev rows). Evaluated on the same evaluation rows; its realized rate is reported (it is
  not certified).
* **Oracle ceiling** — the top ⌈α n⌉ evaluation rows by the true v, capped at #{v > 0}; the fraction
  of the oracle − uncertainty gap that CTD closes is mean(CTD − unc) / mean(oracle − unc).
* **Intervals** — besides the split interval: a *pool bootstrap* (the pool resampled with
  replacement, then split at random; the whole procedure rerun) and the *DV refits* (split ``r``
  uses the DV probe refit on bootstrap resample ``r mod K`` of the dev rows, columns
  ``dv_score_boot<k>__<expert>``).
* **No shift** (columns ``probe_prob_noshift``, ``dv_score_noshift__<expert>``) — the headline with
  the safety probe trained on every source (disjoint from dev and pool) and its own DV probe.
* **Null that can fail** — H0: the labels depend on the input only through the probe's score, and
  the expert is uniformly good (its accuracy does not depend on the input). The null world: the
  probe's p is Platt-calibrated on the dev rows (q = σ(a·logit p + c)); labels are redrawn
  y* ~ Bernoulli(q); a *uniform expert* is right with the same probability a_e everywhere (a_e: the
  expert's accuracy on dev) and outputs b* = a_e for the class it names. Then E[v* | x] depends on x
  only through p, so no delegation score — the DV score included — can find more expected value
  than the best function of p: CTD's gain over uncertainty in the null world is what the probe's own
  score explains. Each null replicate m redraws y* and the expert and one split, giving Δ*_m. The
  p-value of the observed mean Δ is (1 + #{m : Δ*_m ≥ Δ_obs}) / (1 + M) per budget. It is
  conservative: Δ_obs is a mean over splits, whose spread is at most that of a single split's Δ (law
  of total variance); ``tests/unit/study/test_controls_null.py`` checks by simulation that
  tables drawn from H0 reject at most at the level (exact binomial tolerance) and that a planted
  gain is rejected.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ctd_stats.stats.metrics import auroc_rows
from ctd_stats.stats.sweep import global_oracle_masks
from ctd_stats.study.control_arms import (
    ControlSettings,
    IntervalArray,
    SplitCascade,
    control_auc,
    control_masks,
    ctd_unc_masks,
    null_world,
    platt_fit,
    pool_bootstrap,
)
from ctd_stats.study.control_inputs import ControlColumns, DevRows
from ctd_stats.study.control_logo import LeaveOneGroupOut, leave_one_group_out
from ctd_stats.study.runner import StudyInputs, split_rng

__all__ = [
    "CONTROL_NAMES",
    "ExpertControls",
    "IntervalArray",
    "RouteRule",
    "compute_controls",
    "platt_fit",
    "route_rule",
]

#: At most this many groups get their own Δ interval (the route rule uses every group).
MAX_GROUPS = 50
#: Keys of ``controls`` in study.json, in report order.
CONTROL_NAMES: tuple[str, ...] = (
    "by_group",
    "leave_one_group_out",
    "protocols",
    "labels_to_probe",
    "route_by_group",
    "oracle",
    "intervals",
    "no_shift",
    "null",
)


@dataclass(frozen=True)
class RouteRule:
    """Route-by-group rule learned on dev: groups in rank order, their dev mean v and share."""

    order: tuple[str, ...]
    mean_v: tuple[float, ...]
    share: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "order": list(self.order),
            "dev_mean_v": list(self.mean_v),
            "dev_share": list(self.share),
        }


@dataclass(frozen=True)
class ExpertControls:
    """Every control of one expert (immutable). ``missing`` maps a control to why it was not run."""

    expert: str
    budgets: NDArray[np.float64]
    split: str
    repeats: int
    auroc: dict[str, NDArray[np.float64]]  # arm -> [repeat, budget] (probe-only arms: [repeat])
    by_group: dict[str, IntervalArray]
    group_n_eval: dict[str, float]
    protocols: dict[str, IntervalArray]
    pool_bootstrap: IntervalArray | None
    dv_refit: IntervalArray | None
    route: RouteRule | None
    route_rate: NDArray[np.float64] | None
    null: dict[str, Any] | None
    missing: dict[str, str] = field(default_factory=dict)
    noshift_caveat: str | None = None
    leave_one_out: LeaveOneGroupOut | None = None

    # ---------------------------------------------------------------- derived quantities
    def has(self, arm: str) -> bool:
        return arm in self.auroc

    def mean_auroc(self, arm: str) -> NDArray[np.float64]:
        a = self.auroc[arm]
        m = np.nanmean(a, axis=0)
        return np.asarray(np.broadcast_to(m, self.budgets.shape), dtype=np.float64)

    def diff(self, a: str, b: str) -> IntervalArray:
        """Paired AUROC difference arm a − arm b over the splits, per budget."""
        x, y = self.auroc[a], self.auroc[b]
        x = x[:, None] if x.ndim == 1 else x
        y = y[:, None] if y.ndim == 1 else y
        return IntervalArray.of(np.broadcast_to(x - y, (self.repeats, self.budgets.size)))

    @property
    def headline(self) -> IntervalArray:
        return self.diff("ctd", "unc")

    def ratio(self, num: tuple[str, str], den: tuple[str, str]) -> NDArray[np.float64]:
        """mean(num[0] − num[1]) / mean(den[0] − den[1]) per budget; NaN where the denominator ≤ 0."""
        n, d = self.diff(*num).mean, self.diff(*den).mean
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(np.where(d > 1e-12, n / d, np.nan), dtype=np.float64)

    def leave_one_out_reference(self) -> tuple[int, IntervalArray, list[str]]:
        """For the leave-one-group-out control: its budget's index j, the headline Δ at j over the
        same (first) splits as the control (shape [1]), and the groups the headline rests on (its
        full interval excludes 0, the interval without the group includes 0 or crosses it)."""
        logo = self.leave_one_out
        assert logo is not None
        j = int(np.argmin(np.abs(self.budgets - logo.budget)))
        same = IntervalArray.of(
            self.auroc["ctd"][: logo.splits, j : j + 1]
            - self.auroc["unc"][: logo.splits, j : j + 1]
        )
        _, lo, hi = self.headline.at(j)
        return j, same, logo.rests_on(lo, hi)

    def _leave_one_out_dict(self) -> dict[str, Any] | None:
        if self.leave_one_out is None:
            return None
        _, same, rests = self.leave_one_out_reference()
        return {
            **self.leave_one_out.to_dict(),
            "headline_same_splits": same.to_list()[0],
            "rests_on": rests,
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (NaN stays NaN here; the caller turns it into null)."""
        fl = lambda a: [float(x) for x in a]  # noqa: E731
        out: dict[str, Any] = {
            "expert": self.expert,
            "budgets": fl(self.budgets),
            "split": self.split,
            "repeats": self.repeats,
            "not_run": dict(self.missing),
            "headline": {
                "ctd": fl(self.mean_auroc("ctd")),
                "unc_calibrated": fl(self.mean_auroc("unc")),
                "delta": self.headline.to_list(),
            },
            "by_group": None
            if not self.by_group
            else {
                name: {"n_eval": self.group_n_eval[name], "delta": iv.to_list()}
                for name, iv in self.by_group.items()
            },
            "leave_one_group_out": self._leave_one_out_dict(),
            "protocols": {k: iv.to_list() for k, iv in self.protocols.items()},
        }
        if self.has("refit_probe"):
            out["labels_to_probe"] = {
                "auroc": {
                    k: fl(self.mean_auroc(k)) for k in ("refit_probe", "refit_unc", "refit_ctd")
                },
                "refit_probe_minus_ctd": self.diff("refit_probe", "ctd").to_list(),
                "refit_unc_minus_ctd": self.diff("refit_unc", "ctd").to_list(),
                "refit_ctd_minus_ctd": self.diff("refit_ctd", "ctd").to_list(),
                "refit_ctd_minus_refit_unc": self.diff("refit_ctd", "refit_unc").to_list(),
            }
        if self.route is not None and self.route_rate is not None:
            out["route_by_group"] = {
                "rule": self.route.to_dict(),
                "auroc": fl(self.mean_auroc("route")),
                "rate": fl(self.route_rate),
                "route_minus_unc": self.diff("route", "unc").to_list(),
                "route_minus_ctd": self.diff("route", "ctd").to_list(),
                "fraction_of_ctd_gain": fl(self.ratio(("route", "unc"), ("ctd", "unc"))),
            }
        out["oracle"] = {
            "auroc": fl(self.mean_auroc("oracle")),
            "oracle_minus_unc": self.diff("oracle", "unc").to_list(),
            "fraction_of_gap_closed_by_ctd": fl(self.ratio(("ctd", "unc"), ("oracle", "unc"))),
        }
        out["intervals"] = {
            "splits": self.headline.to_list(),
            "pool_bootstrap": None
            if self.pool_bootstrap is None
            else self.pool_bootstrap.to_list(),
            "dv_refits": None if self.dv_refit is None else self.dv_refit.to_list(),
        }
        if self.has("noshift_ctd"):
            out["no_shift"] = {
                "probe_auroc": float(np.nanmean(self.auroc["noshift_probe"])),
                "auroc": {
                    k: fl(self.mean_auroc(k))
                    for k in ("noshift_ctd", "noshift_unc", "noshift_oracle")
                },
                "delta": self.diff("noshift_ctd", "noshift_unc").to_list(),
                "oracle_minus_unc": self.diff("noshift_oracle", "noshift_unc").to_list(),
                "caveat": self.noshift_caveat,
            }
        out["null"] = self.null
        out["probe_auroc"] = float(np.nanmean(self.auroc["probe"]))
        return out


# ------------------------------------------------------------------------------------ helpers
def route_rule(
    dev: DevRows, budget_grid: NDArray[np.float64], group: NDArray[np.str_], p: NDArray[np.float64]
) -> tuple[RouteRule, NDArray[np.bool_]]:
    """The route-by-group rule learned on ``dev`` and its delegation masks [budget, row] on rows with
    groups ``group`` and probe scores ``p`` (see the module docstring)."""
    assert dev.group is not None
    names, codes = np.unique(dev.group, return_inverse=True)
    v = dev.delegation_value
    cnt = np.bincount(codes, minlength=names.size)
    mean_v = np.bincount(codes, weights=v, minlength=names.size) / np.maximum(cnt, 1)
    share = cnt / dev.n
    order = [int(i) for i in np.argsort(-mean_v, kind="stable") if mean_v[i] > 0]
    dev_u = np.abs(dev.probe_prob - 0.5)
    u = np.abs(p - 0.5)
    masks = np.zeros((budget_grid.size, p.size), dtype=bool)
    for j, a in enumerate(budget_grid):
        left = float(a)
        for gi in order:
            in_g = group == names[gi]
            if share[gi] <= left + 1e-12:
                masks[j] |= in_g
                left -= share[gi]
                continue
            frac = left / share[gi]
            if frac > 0:  # fill the rest of the budget in this group, most uncertain rows first
                thr = float(np.quantile(dev_u[codes == gi], frac))
                masks[j] |= in_g & (u <= thr)
            break
    rule = RouteRule(
        tuple(str(names[i]) for i in order),
        tuple(float(mean_v[i]) for i in order),
        tuple(float(share[i]) for i in order),
    )
    return rule, masks


# ------------------------------------------------------------------------------------ main
@dataclass(frozen=True)
class _Plan:
    """What one expert's controls run: settings, arms, group sets, the route rule, what is missing."""

    settings: ControlSettings
    sets: dict[str, NDArray[np.bool_]]
    route: RouteRule | None
    route_masks: NDArray[np.bool_] | None
    refit: bool
    noshift: bool
    keys: tuple[str, ...]
    missing: dict[str, str]


def _plan(inputs: StudyInputs, cols: ControlColumns, settings: ControlSettings) -> _Plan:
    missing: dict[str, str] = {}
    group = inputs.group
    sets: dict[str, NDArray[np.bool_]] = {}
    route = route_masks = None
    names = np.unique(group) if group is not None else np.array([])
    if group is None:
        missing["by_group"] = missing["route_by_group"] = missing["leave_one_group_out"] = (
            "the table has no 'group' column"
        )
    elif names.size > MAX_GROUPS:
        missing["by_group"] = (
            f"{names.size} groups (more than {MAX_GROUPS}): per-group intervals skipped"
        )
        missing["leave_one_group_out"] = (
            f"{names.size} groups (more than {MAX_GROUPS}): no group left out in turn"
        )
    elif names.size < 2:
        missing["leave_one_group_out"] = (
            f"the pool has one group ({str(names[0])!r}): leaving it out leaves no rows"
        )
    if group is not None:
        for g in names if names.size <= MAX_GROUPS else []:
            sets[str(g)] = group == g
        for name, members in cols.group_sets.items():
            sets[name] = np.isin(group, list(members))
        if cols.dev is None or cols.dev.group is None:
            missing["route_by_group"] = (
                "the table has no labelled 'dev' rows (with expert and probe scores) to learn the rule on"
            )
        else:
            route, route_masks = route_rule(
                cols.dev, settings.budget_grid, group, inputs.probe_prob
            )
    refit = cols.probe_refit is not None and cols.dv_refit is not None
    if not refit:
        absent = [
            c
            for c, x in (
                ("probe_prob_refit", cols.probe_refit),
                (f"dv_score_refit__{inputs.expert}", cols.dv_refit),
            )
            if x is None
        ]
        missing["labels_to_probe"] = (
            f"column(s) {', '.join(absent)} absent from the table "
            "(see docs/score-table.md, control columns)"
        )
    noshift = cols.probe_noshift is not None and cols.dv_noshift is not None
    if not noshift:
        missing["no_shift"] = (
            "the table declares no shift: columns probe_prob_noshift / "
            f"dv_score_noshift__{inputs.expert} absent"
        )
    if cols.dv_boot is None:
        missing["dv_refit_interval"] = f"no dv_score_boot<k>__{inputs.expert} columns in the table"
    if cols.dev is None:
        missing["null"] = (
            "the table has no labelled 'dev' rows to calibrate the probe and the uniform expert on"
        )
    keys = ("ctd", "unc", "ctd_other", "unc_other", "oracle") + (
        ("ctd_boot",) if cols.dv_boot is not None else ()
    )
    keys += ("route",) if route_masks is not None else ()
    return _Plan(
        settings,
        sets,
        route,
        route_masks,
        refit,
        noshift,
        keys,
        missing,
    )


def _split_controls(
    plan: _Plan, inputs: StudyInputs, cols: ControlColumns, r: int
) -> dict[str, Any]:
    """Every arm's evaluation AUROC on split ``r`` of the study (arrays per budget)."""
    y, p, b, d, v = (
        inputs.labels,
        inputs.probe_prob,
        inputs.expert_prob,
        inputs.dv_score,
        inputs.delegation_value,
    )
    s = plan.settings
    al, J = s.budget_grid, s.budget_grid.size
    cas = SplitCascade.of(s, y, p, b, split_rng(s.seed, r).permutation(inputs.n))
    ev = cas.ev
    ye, pe, be = y[ev], p[ev], b[ev]
    parts = [
        ctd_unc_masks(cas, d),
        ctd_unc_masks(replace(cas, split=s.other_split), d),
        global_oracle_masks(v[ev], al)[None],
    ]
    if cols.dv_boot is not None:
        dk = cols.dv_boot[r % cols.dv_boot.shape[0]]
        parts.append(control_masks(cas, dk)[None])
    out: dict[str, Any] = {}
    if plan.route_masks is not None:
        parts.append(plan.route_masks[:, ev][None])
        out["route_rate"] = plan.route_masks[:, ev].mean(axis=1)
    m = np.concatenate(parts)  # [arm, budget, eval row] in plan.keys order
    out.update(zip(plan.keys, control_auc(m, pe, be, ye), strict=True))
    out["probe"] = auroc_rows(pe[None, :], ye)[0]
    groups = {}
    for name, in_set in plan.sets.items():
        sel = in_set[ev]
        ga = (
            control_auc(m[:2][:, :, sel], pe[sel], be[sel], ye[sel])
            if sel.any()
            else np.full((2, J), np.nan)
        )
        groups[name] = (ga[0] - ga[1], int(sel.sum()))
    out["groups"] = groups
    if plan.refit:
        assert cols.probe_refit is not None and cols.dv_refit is not None
        pr = cols.probe_refit
        ar = control_auc(ctd_unc_masks(replace(cas, probe_prob=pr), cols.dv_refit), pr[ev], be, ye)
        out["refit_ctd"], out["refit_unc"] = ar[0], ar[1]
        out["refit_probe"] = auroc_rows(pr[ev][None, :], ye)[0]
    if plan.noshift:
        assert cols.probe_noshift is not None and cols.dv_noshift is not None
        pn = cols.probe_noshift
        vn = (2.0 * y - 1.0) * (b - pn)
        mn = np.concatenate(
            [
                ctd_unc_masks(replace(cas, probe_prob=pn), cols.dv_noshift),
                global_oracle_masks(vn[ev], al)[None],
            ]
        )
        out["noshift_ctd"], out["noshift_unc"], out["noshift_oracle"] = control_auc(
            mn, pn[ev], be, ye
        )
        out["noshift_probe"] = auroc_rows(pn[ev][None, :], ye)[0]
    return out


def compute_controls(
    inputs: StudyInputs,
    cols: ControlColumns,
    *,
    budgets: NDArray[np.float64] | list[float],
    delta: float,
    repeats: int,
    cal_fraction: float = 0.5,
    opt_fraction: float = 0.3,
    seed: int = 0,
    split: str = "opt_ht",
    null_draws: int | None = None,
) -> ExpertControls:
    """Every control of one expert on the study's splits (see the module docstring).

    ``null_draws`` (the null world's and the pool bootstrap's replicates) defaults to ``repeats``.
    """
    settings = ControlSettings.for_pool(
        inputs.n,
        budgets=budgets,
        delta=delta,
        repeats=repeats,
        cal_fraction=cal_fraction,
        opt_fraction=opt_fraction,
        seed=seed,
        split=split,
        null_draws=null_draws,
    )
    plan = _plan(inputs, cols, settings)
    missing = dict(plan.missing)
    logo = None
    if "leave_one_group_out" not in missing:
        logo = leave_one_group_out(
            inputs,
            settings,
            budget_index=headline_index(settings.budget_grid),
            cal_fraction=cal_fraction,
            opt_fraction=opt_fraction,
        )
        if logo.skipped:
            missing["leave_one_group_out"] = "; ".join(
                f"group {g!r} not left out: {why}" for g, why in logo.skipped.items()
            )
    runs = [_split_controls(plan, inputs, cols, r) for r in range(settings.repeats)]
    arms = [k for k in runs[0] if k not in ("groups", "route_rate")]
    auroc = {k: np.stack([np.asarray(x[k], dtype=np.float64) for x in runs]) for k in arms}
    by_group = {k: IntervalArray.of(np.stack([x["groups"][k][0] for x in runs])) for k in plan.sets}
    g_n = {k: sum(x["groups"][k][1] for x in runs) / settings.repeats for k in plan.sets}
    headline = IntervalArray.of(auroc["ctd"] - auroc["unc"])
    protocols = {
        settings.split: headline,
        settings.other_split: IntervalArray.of(auroc["ctd_other"] - auroc["unc_other"]),
    }
    dv_refit = IntervalArray.of(auroc["ctd_boot"] - auroc["unc"]) if "ctd_boot" in auroc else None
    boot = pool_bootstrap(inputs, settings)
    null = None
    if cols.dev is not None:
        null = null_world(inputs, cols.dev, settings, observed=headline.mean)
    return ExpertControls(
        expert=inputs.expert,
        budgets=settings.budget_grid,
        split=settings.split,
        repeats=settings.repeats,
        auroc=auroc,
        by_group=by_group,
        group_n_eval=g_n,
        protocols=protocols,
        pool_bootstrap=boot,
        dv_refit=dv_refit,
        route=plan.route,
        route_rate=np.mean([x["route_rate"] for x in runs], axis=0)
        if plan.route is not None
        else None,
        null=null,
        missing=missing,
        noshift_caveat=cols.noshift_caveat,
        leave_one_out=logo,
    )


def headline_index(budgets: NDArray[np.float64], budget: float = 0.3) -> int:
    """Index of the budget nearest ``budget``."""
    return int(np.argmin(np.abs(np.asarray(budgets) - budget)))

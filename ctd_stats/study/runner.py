"""Repeated-split study of one expert: CTD against the uncertainty baselines (``ctd run``).

Protocol (as in the paper). The *pool* (rows not used to train the probes) is split at random,
``repeats`` times, into calibration (``cal_fraction``) and evaluation rows; calibration is split
into opt (``opt_fraction``) and ht. For every budget α of the grid:

* **CTD** — DV score d, Pareto testing (:func:`ctd_stats.calibrate_cascade`), delegate iff d > τ̂.
* **CTD budget-only** — the smallest τ certified for the budget alone on d (no Pareto filtering:
  it spends the budget whether or not delegating helps), beside the Pareto arm.
* **Unc. calibrated** — the same calibration on u = −|F̂_cal(p) − ½| (F̂_cal: empirical CDF of
  the calibration probe scores).
* **Unc. top-k** — within each batch of the evaluation stream, the k = round(α·B) items ranked
  nearest the batch median of p (McKenzie et al.). **DV top-k** and **Oracle top-k** — the top k
  by d and by the true delegation value v, per batch. **Oracle** — the global top ⌈α n⌉ by v,
  capped at #{v > 0} (the FAIC reference).
* **Probe only** / **Expert only** — reference lines.

The cascade answers with the expert's probability where it delegates and the probe's elsewhere;
AUROC of that score and accuracy at 0.5 are measured on the evaluation rows. The budget guarantee is
checked by Monte Carlo in a separate world where the pool *is* the population: calibration sets
are drawn i.i.d. (with replacement) from the pool and the true rate of τ̂ is the pool fraction
above it, every budget from the same draws. That is an estimate with limited power (stated with
it), not a proof, and it cannot see dependence in the real rows; next to it, the exact violation
probability in that world (budget-only) and an exact upper bound (Pareto arm) are computed
(:mod:`ctd_stats.study.guarantee`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ctd_stats.engines.local import Engine, LocalEngine
from ctd_stats.errors import CTDInputError
from ctd_stats.stats.dv_targets import predicts_unsafe
from ctd_stats.stats.inputs import as_bool_1d, as_finite_1d, as_probabilities, check_open_unit
from ctd_stats.stats.metrics import faic
from ctd_stats.stats.pareto import CascadeData
from ctd_stats.study import diagnostics as dg
from ctd_stats.study.guarantee import MonteCarloCheck

#: Methods that spend budget, in plotting order.
METHODS: tuple[str, ...] = (
    "ctd",
    "ctd_budget",
    "unc_calibrated",
    "unc_topk",
    "dv_topk",
    "oracle_topk",
    "oracle",
)
METHOD_LABELS: dict[str, str] = {
    "ctd": "CTD (DV probe + Pareto LTT)",
    "ctd_budget": "CTD budget-only (LTT on d, no Pareto)",
    "unc_calibrated": "Unc. calibrated (LTT on |p − ½|)",
    "unc_topk": "Unc. top-k (batch)",
    "dv_topk": "DV top-k (batch)",
    "oracle_topk": "Oracle top-k (batch)",
    "oracle": "Oracle (global)",
}
#: Methods whose threshold is certified, so their realized rate is checked against the budget.
CERTIFIED_METHODS: tuple[str, ...] = ("ctd", "unc_calibrated", "ctd_budget")
#: The reference of the paired differences.
REFERENCE = "unc_calibrated"


@dataclass(frozen=True)
class StudyInputs:
    """One expert's pool rows: labels (unsafe = 1), probe and expert P(unsafe), DV scores, groups."""

    labels: NDArray[np.bool_]
    probe_prob: NDArray[np.float64]
    expert_prob: NDArray[np.float64]
    dv_score: NDArray[np.float64]
    group: NDArray[np.str_] | None = None
    expert: str = "expert"
    seconds_per_call: float | None = None

    def __post_init__(self) -> None:
        d = as_finite_1d("dv_score", self.dv_score)
        n = d.size
        object.__setattr__(self, "dv_score", d)
        object.__setattr__(self, "labels", as_bool_1d("label", self.labels, n))
        object.__setattr__(self, "probe_prob", as_probabilities("probe_prob", self.probe_prob, n))
        object.__setattr__(
            self, "expert_prob", as_probabilities("expert_prob", self.expert_prob, n)
        )
        if self.group is not None and len(self.group) != n:
            raise CTDInputError(f"group has length {len(self.group)}, expected {n}")

    @property
    def n(self) -> int:
        return int(self.dv_score.size)

    @property
    def delegation_value(self) -> NDArray[np.float64]:
        """v = P_expert(y|x) − P_probe(y|x) = (2y − 1)(b − p)."""
        return (2.0 * self.labels - 1.0) * (self.expert_prob - self.probe_prob)

    def cascade_data(self, idx: NDArray[np.int64], scores: NDArray[np.float64]) -> CascadeData:
        y = self.labels[idx]
        return CascadeData(
            scores,
            predicts_unsafe(self.probe_prob[idx]) == y,
            predicts_unsafe(self.expert_prob[idx]) == y,
        )


@dataclass(frozen=True)
class ExpertStudy:
    """Results of :func:`run_study` for one expert (immutable; arrays indexed [repeat, method, budget])."""

    expert: str
    budgets: NDArray[np.float64]
    delta: float
    repeats: int
    n_pool: int
    n_cal: int
    n_eval: int
    batch_size: int
    auroc: NDArray[np.float64]
    accuracy: NDArray[np.float64]
    rate: NDArray[np.float64]
    probe_auroc: NDArray[np.float64]
    probe_accuracy: NDArray[np.float64]
    expert_auroc: NDArray[np.float64]
    expert_accuracy: NDArray[np.float64]
    certified: NDArray[np.bool_]
    groups: tuple[str, ...]
    group_rate: NDArray[np.float64]  # [method, budget, group], mean over repeats
    group_mean_v: NDArray[np.float64]  # [group]
    group_mean_d: NDArray[np.float64]  # [group]
    group_delegated_v: NDArray[np.float64]  # [method, budget, group] mean v of delegated rows
    bootstrap_violations: NDArray[np.int64]  # [budget] CTD Monte Carlo check, pool as population
    bootstrap_trials: int
    bootstrap_rate: NDArray[np.float64]  # [budget] mean true rate of CTD's τ̂ in the bootstrap world
    dv_spearman: float
    seconds_per_call: float | None = None
    split: str = "opt_ht"
    diagnostics: dg.StudyDiagnostics | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    group_sizes: NDArray[np.int64] | None = None  # [group] pool rows per group
    exact_violation: NDArray[np.float64] | None = None  # [budget] exact, budget-only, pool world
    exact_violation_bound: NDArray[np.float64] | None = None  # [budget] exact bound, Pareto arm
    cal_fraction: float = 0.5  # n_cal = round(cal_fraction · n_pool)

    def monte_carlo_check(self) -> MonteCarloCheck:
        """The Monte Carlo check of the CTD arm, with its flag rule, power and exact values."""
        return MonteCarloCheck(
            self.budgets,
            self.delta,
            self.bootstrap_trials,
            self.bootstrap_violations,
            self.exact_violation,
            self.exact_violation_bound,
        )

    def method_index(self, method: str) -> int:
        return METHODS.index(method)

    def mean(self, metric: str) -> NDArray[np.float64]:
        """Mean over repeats of ``auroc``/``accuracy``/``rate``: shape [method, budget]."""
        return np.asarray(np.nanmean(getattr(self, metric), axis=0), dtype=np.float64)

    def paired_delta(self, metric: str = "auroc") -> tuple[NDArray[np.float64], ...]:
        """Per method and budget, ``metric`` minus calibrated uncertainty's on the same split:
        (mean, lo, hi) over the repeated splits, each of shape [method, budget] (see
        :func:`ctd_stats.study.diagnostics.paired_interval`)."""
        a = getattr(self, metric)
        return dg.paired_interval(a - a[:, METHODS.index(REFERENCE)][:, None, :])

    def eval_exceedance(self, method: str = "ctd") -> tuple[NDArray[np.int64], int]:
        """Per budget: how many repeats' realized *evaluation* rate exceeded the budget (a noisy proxy)."""
        r = self.rate[:, self.method_index(method), :]
        return (r > self.budgets[None, :] + 1e-12).sum(axis=0).astype(np.int64), self.repeats

    def faic(self, metric: str = "auroc") -> dict[str, float]:
        """FAIC per method from the mean curves (oracle = the global oracle)."""
        m = self.mean(metric)
        probe = float(np.nanmean(self.probe_auroc if metric == "auroc" else self.probe_accuracy))
        oracle = m[self.method_index("oracle")]
        return {meth: faic(self.budgets, m[i], probe, oracle) for i, meth in enumerate(METHODS)}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types; undefined numbers (NaN: a FAIC with nothing achievable, a correlation
        of a constant score) become None."""
        return dict(finite_or_none(self._raw_dict()))

    def _raw_dict(self) -> dict[str, Any]:
        def rows(metric: str) -> dict[str, list[float]]:
            mm = self.mean(metric)
            return {meth: [float(x) for x in mm[i]] for i, meth in enumerate(METHODS)}

        exceed, reps = self.eval_exceedance("ctd")
        monte_carlo = self.monte_carlo_check().to_dict(self.bootstrap_rate, exceed, reps)
        return {
            "expert": self.expert,
            "budgets": [float(b) for b in self.budgets],
            "delta": self.delta,
            "repeats": self.repeats,
            "n_pool": self.n_pool,
            "n_cal": self.n_cal,
            "n_eval": self.n_eval,
            "batch_size": self.batch_size,
            "split": self.split,
            "probe_only": {
                "auroc": float(np.mean(self.probe_auroc)),
                "accuracy": float(np.mean(self.probe_accuracy)),
            },
            "expert_only": {
                "auroc": float(np.mean(self.expert_auroc)),
                "accuracy": float(np.mean(self.expert_accuracy)),
            },
            "auroc": rows("auroc"),
            "accuracy": rows("accuracy"),
            "rate": rows("rate"),
            "certified_fraction": {
                meth: [float(x) for x in self.certified[:, i, :].mean(axis=0)]
                for i, meth in enumerate(CERTIFIED_METHODS)
            },
            "faic_auroc": self.faic("auroc"),
            "faic_accuracy": self.faic("accuracy"),
            # "guarantee_check" is the older name of "monte_carlo_check" (same content), kept for
            # readers of earlier reports; it will be removed in a later format version.
            "monte_carlo_check": monte_carlo,
            "guarantee_check": monte_carlo,
            "groups": {
                "names": list(self.groups),
                "sizes": None if self.group_sizes is None else [int(x) for x in self.group_sizes],
                "mean_v": [float(x) for x in self.group_mean_v],
                "mean_d": [float(x) for x in self.group_mean_d],
                "rate": {
                    meth: [[float(x) for x in row] for row in self.group_rate[i]]
                    for i, meth in enumerate(METHODS)
                },
            },
            "dv_spearman": self.dv_spearman,
            "seconds_per_call": self.seconds_per_call,
            **{
                f"{metric}_delta": {
                    meth: dg.interval_rows(mean[i], lo[i], hi[i]) for i, meth in enumerate(METHODS)
                }
                for metric in ("auroc", "accuracy")
                for mean, lo, hi in [self.paired_delta(metric)]
            },
            "diagnostics": (
                self.diagnostics.to_dict(METHODS, self.bootstrap_trials)
                if self.diagnostics
                else None
            ),
        }


def finite_or_none(obj: Any) -> Any:
    """``obj`` with every non-finite float (at any depth of dicts and lists) replaced by None."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite_or_none(v) for v in obj]
    return obj


def _group_codes(
    group: Sequence[str] | NDArray[np.str_] | None, n: int
) -> tuple[tuple[str, ...], NDArray[np.int64]]:
    if group is None:
        return ("all",), np.zeros(n, dtype=np.int64)
    names, codes = np.unique(np.asarray(group, dtype=str), return_inverse=True)
    return tuple(names.tolist()), codes.astype(np.int64)


def _group_sums(
    values: NDArray[np.float64] | NDArray[np.bool_], codes: NDArray[np.int64], g: int
) -> NDArray[np.float64]:
    """Per-row sums of ``values`` (shape [m, n]) within each group code (shape [n]): shape [m, g]."""
    onehot = np.zeros((codes.size, g))
    onehot[np.arange(codes.size), codes] = 1.0
    return np.asarray(np.asarray(values, dtype=np.float64) @ onehot, dtype=np.float64)


def _delegation_masks(
    inputs: StudyInputs,
    opt: NDArray[np.int64],
    ht: NDArray[np.int64],
    ev: NDArray[np.int64],
    budget_grid: NDArray[np.float64],
    k_per_batch: NDArray[np.int64],
    batch_size: int,
    delta: float,
    split: str = "opt_ht",
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """One split's delegation masks [method, budget, eval row] and which certified arms certified.

    All budgets at once (:mod:`ctd_stats.stats.sweep`): the same thresholds and masks as one
    :func:`~ctd_stats.stats.pareto.calibrate_cascade` / :func:`~ctd_stats.stats.ltt.budget_threshold` /
    baseline call per budget.
    """
    from ctd_stats.stats.baselines import calibrated_uncertainty
    from ctd_stats.stats.sweep import (
        batch_median_window_masks,
        batch_topk_masks,
        budget_thresholds,
        cascade_thresholds,
        global_oracle_masks,
    )

    p, d, v = inputs.probe_prob, inputs.dv_score, inputs.delegation_value
    cal = np.concatenate([opt, ht])
    u = calibrated_uncertainty(p, p[cal])
    masks = np.zeros((len(METHODS), budget_grid.size, ev.size), dtype=bool)
    certified = np.zeros((len(CERTIFIED_METHODS), budget_grid.size), dtype=bool)
    for ci, (meth, score) in enumerate((("ctd", d), ("unc_calibrated", u))):
        taus = cascade_thresholds(
            opt=inputs.cascade_data(opt, score[opt]),
            ht=inputs.cascade_data(ht, score[ht]),
            budgets=budget_grid,
            delta=delta,
            split=split,
        )
        certified[ci] = np.isfinite(taus)
        masks[METHODS.index(meth)] = score[ev][None, :] > taus[:, None]
    only = budget_thresholds(d[cal], budget_grid, delta)
    certified[CERTIFIED_METHODS.index("ctd_budget")] = np.isfinite(only)
    masks[METHODS.index("ctd_budget")] = d[ev][None, :] > only[:, None]
    masks[METHODS.index("unc_topk")] = batch_median_window_masks(p[ev], k_per_batch, batch_size)
    masks[METHODS.index("dv_topk")] = batch_topk_masks(d[ev], k_per_batch, batch_size)
    masks[METHODS.index("oracle_topk")] = batch_topk_masks(v[ev], k_per_batch, batch_size)
    masks[METHODS.index("oracle")] = global_oracle_masks(v[ev], budget_grid)
    return masks, certified


#: The smallest split :func:`run_study` accepts: calibration and evaluation rows of one split.
MIN_CAL_ROWS, MIN_EVAL_ROWS = 4, 2

#: Splits per task: repeats are grouped so a task is worth sending to a cluster.
REPEATS_PER_TASK = 10


@dataclass(frozen=True)
class _StudyContext:
    """Everything a piece of the study needs (shared by all pieces, read-only)."""

    inputs: StudyInputs
    budget_grid: NDArray[np.float64]
    k_per_batch: NDArray[np.int64]
    batch_size: int
    delta: float
    n_cal: int
    n_opt: int
    gcode: NDArray[np.int64]
    n_groups: int
    seed: int
    repeats: int
    opt_fraction: float
    split: str
    rank_scores: NDArray[np.float64]


def split_rng(seed: int, repeat: int) -> np.random.Generator:
    """Generator of split ``repeat``: child ``repeat`` of ``SeedSequence(seed)`` (engine-free)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(repeat,)))


def _one_split(ctx: _StudyContext, r: int) -> dict[str, Any]:
    """Metrics of random split ``r`` (its own seed), keyed as :func:`run_study` stacks them."""
    inputs, M, J, G = ctx.inputs, len(METHODS), ctx.budget_grid.size, ctx.n_groups
    y, p, b, v, d = (
        inputs.labels,
        inputs.probe_prob,
        inputs.expert_prob,
        inputs.delegation_value,
        inputs.dv_score,
    )
    perm = split_rng(ctx.seed, r).permutation(inputs.n)
    cal, ev = perm[: ctx.n_cal], perm[ctx.n_cal :]
    masks, certified = _delegation_masks(
        inputs,
        cal[: ctx.n_opt],
        cal[ctx.n_opt :],
        ev,
        ctx.budget_grid,
        ctx.k_per_batch,
        ctx.batch_size,
        ctx.delta,
        ctx.split,
    )
    ye, pe, be, ve = y[ev], p[ev], b[ev], v[ev]
    rmask = dg.ranking_masks(ctx.rank_scores[:, ev], ctx.budget_grid)
    bmask = dg.batch_masks(pe, d[ev], ctx.budget_grid)
    ref_masks = np.stack(
        [np.zeros(ev.size, bool), np.ones(ev.size, bool)]
    )  # probe only, expert only
    (auc, acc), (r_auc, r_acc), (b_auc, b_acc), ref_m = dg.grouped_metrics(
        [masks, rmask, bmask, ref_masks], pe, be, ye
    )
    ge = ctx.gcode[ev]
    flat = masks.reshape(M * J, ev.size)
    return {
        "auroc": auc,
        "acc": acc,
        "r_auc": r_auc,
        "r_acc": r_acc,
        "b_auc": b_auc,
        "b_acc": b_acc,
        "ref": np.column_stack(ref_m),
        "rate": masks.mean(axis=2),
        "certified": certified,
        "deleg_v": dg.delegated_mean_v(masks, ve),
        "r_v": dg.delegated_mean_v(rmask, ve),
        "g_count": np.bincount(ge, minlength=G),
        "g_deleg": _group_sums(flat, ge, G).reshape(M, J, G),
        "g_vsum": _group_sums(flat * ve[None, :], ge, G).reshape(M, J, G),
    }


def _guarantee_piece(ctx: _StudyContext) -> list[Any]:
    """The Monte Carlo budget check and the exact values (:func:`ctd_stats.study.guarantee.guarantee_piece`)."""
    from ctd_stats.study.guarantee import guarantee_piece

    pool = ctx.inputs.cascade_data(np.arange(ctx.inputs.n), ctx.inputs.dv_score)
    return guarantee_piece(
        pool,
        ctx.budget_grid,
        ctx.delta,
        n_cal=ctx.n_cal,
        trials=ctx.repeats,
        opt_fraction=ctx.opt_fraction,
        split=ctx.split,
        seed=ctx.seed + 104729,
    )


def _study_piece(ctx: _StudyContext, item: tuple[str, int, int]) -> list[Any]:
    """One task: splits ``range(a, b)`` (``("splits", a, b)``) or the guarantee check (all budgets)."""
    kind, a, b = item
    if kind == "splits":
        return [_one_split(ctx, r) for r in range(a, b)]
    return _guarantee_piece(ctx)


def _study_items(repeats: int, n_budgets: int) -> list[tuple[str, int, int]]:
    splits = [
        ("splits", a, min(a + REPEATS_PER_TASK, repeats))
        for a in range(0, repeats, REPEATS_PER_TASK)
    ]
    return [("guarantee", 0, n_budgets), *splits]  # the longest piece first


def _run_pieces(
    ctx: _StudyContext, engine: Engine | None, progress: Any
) -> tuple[list[dict[str, Any]], list[Any]]:
    items = _study_items(ctx.repeats, ctx.budget_grid.size)
    eng = engine or LocalEngine()
    if progress is not None and eng.name == "local":
        pieces = []
        for item in items:
            pieces.append(_study_piece(ctx, item))
            if item[0] == "splits":
                progress(item[2] - item[1])
    else:
        pieces = eng.map(_study_piece, ctx, items)
    splits = [
        s for item, piece in zip(items, pieces, strict=True) if item[0] == "splits" for s in piece
    ]
    guar = next(piece for item, piece in zip(items, pieces, strict=True) if item[0] == "guarantee")
    return splits, guar


def run_study(
    inputs: StudyInputs,
    *,
    budgets: Sequence[float],
    delta: float = 0.1,
    repeats: int = 200,
    cal_fraction: float = 0.5,
    opt_fraction: float = 0.3,
    batch_size: int = 128,
    seed: int = 0,
    progress: Any = None,
    split: str = "opt_ht",
    engine: Engine | None = None,
) -> ExpertStudy:
    """Run the repeated-split comparison for one expert. See the module docstring.

    ``split`` is the calibration split of the certified arms (``"opt_ht"``: ``opt_fraction`` of the
    calibration rows find the Pareto front, the rest test it; ``"none"``: all calibration rows do
    both, budget guarantee only; see :func:`ctd_stats.calibrate_cascade`).

    Split ``r`` draws its permutation from child ``r`` of ``numpy.random.SeedSequence(seed)``; the
    splits (in groups of :data:`REPEATS_PER_TASK`) and the per-budget guarantee checks are
    independent pieces run by ``engine`` (default: this process), and their results are combined
    in split order, so every engine gives the same numbers.
    """
    from scipy import stats

    budget_grid = np.asarray([check_open_unit("budget", b) for b in budgets], dtype=np.float64)
    dl, cf = check_open_unit("delta", delta), check_open_unit("cal_fraction", cal_fraction)
    if repeats < 1:
        raise CTDInputError(f"repeats must be ≥ 1, got {repeats}")
    N = inputs.n
    n_cal = round(cf * N)
    n_eval = N - n_cal
    if n_cal < MIN_CAL_ROWS or n_eval < MIN_EVAL_ROWS:
        raise CTDInputError(f"pool too small for a calibration/evaluation split: {N} rows")
    p, b, d, v = inputs.probe_prob, inputs.expert_prob, inputs.dv_score, inputs.delegation_value
    groups, gcode = _group_codes(inputs.group, N)
    G = len(groups)
    ctx = _StudyContext(
        inputs=inputs,
        budget_grid=budget_grid,
        k_per_batch=np.round(budget_grid * batch_size).astype(np.int64),
        batch_size=batch_size,
        delta=dl,
        n_cal=n_cal,
        n_opt=min(max(1, round(opt_fraction * n_cal)), n_cal - 1),
        gcode=gcode,
        n_groups=G,
        seed=seed,
        repeats=repeats,
        opt_fraction=opt_fraction,
        split=split,
        rank_scores=np.vstack([d, -np.abs(p - 0.5), dg.ceiling_score(p, b)]),
    )
    splits, guar = _run_pieces(ctx, engine, progress)

    def stack(key: str) -> NDArray[Any]:
        return np.stack([np.asarray(s[key]) for s in splits])

    def total(key: str) -> NDArray[np.float64]:
        acc = np.zeros_like(np.asarray(splits[0][key], dtype=np.float64))
        for s in splits:  # in split order: the same float sums on every engine
            acc += s[key]
        return acc

    g_deleg, g_count, g_vsum = total("g_deleg"), total("g_count"), total("g_vsum")
    group_rate = g_deleg / np.maximum(g_count, 1)[None, None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        group_delegated_v = np.where(g_deleg > 0, g_vsum / g_deleg, np.nan)
    gcount_pool = np.bincount(gcode, minlength=G)
    group_mean_v = np.bincount(gcode, weights=v, minlength=G) / np.maximum(gcount_pool, 1)
    group_mean_d = np.bincount(gcode, weights=d, minlength=G) / np.maximum(gcount_pool, 1)
    ref = stack("ref").astype(np.float64)  # [repeat, (probe, expert), (auroc, accuracy)]
    diagnostics = dg.StudyDiagnostics(
        pool=dg.pool_diagnostics(p, b, d, v),
        ranking_auroc=stack("r_auc"),
        ranking_accuracy=stack("r_acc"),
        ranking_delegated_v=stack("r_v"),
        delegated_v=stack("deleg_v"),
        batch_auroc=stack("b_auc"),
        batch_accuracy=stack("b_acc"),
        budget_only_violations=np.asarray(guar[2], dtype=np.int64),
        budget_only_rate=np.asarray(guar[3], dtype=np.float64),
    )

    return ExpertStudy(
        expert=inputs.expert,
        budgets=budget_grid,
        delta=dl,
        repeats=repeats,
        n_pool=N,
        n_cal=n_cal,
        n_eval=n_eval,
        batch_size=batch_size,
        auroc=stack("auroc"),
        accuracy=stack("acc"),
        rate=stack("rate"),
        probe_auroc=ref[:, 0, 0],
        probe_accuracy=ref[:, 0, 1],
        expert_auroc=ref[:, 1, 0],
        expert_accuracy=ref[:, 1, 1],
        certified=stack("certified").astype(bool),
        groups=groups,
        group_rate=group_rate,
        group_mean_v=group_mean_v,
        group_mean_d=group_mean_d,
        group_delegated_v=group_delegated_v,
        bootstrap_violations=np.asarray(guar[0], dtype=np.int64),
        bootstrap_trials=repeats,
        bootstrap_rate=np.asarray(guar[1], dtype=np.float64),
        exact_violation=np.asarray(guar[4], dtype=np.float64),
        exact_violation_bound=np.asarray(guar[5], dtype=np.float64),
        dv_spearman=float(stats.spearmanr(d, v).statistic),
        seconds_per_call=inputs.seconds_per_call,
        split=split,
        diagnostics=diagnostics,
        group_sizes=gcount_pool.astype(np.int64),
        cal_fraction=cf,
    )

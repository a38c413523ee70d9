"""Diagnostics of the ``ctd run`` study: paired differences, ranking-only curves, the x-measurable
ceiling, batch top-k at several batch sizes, and pool statistics that explain a tie.

Everything is vectorised over rows (masks of shape [..., n]); the only Python loops run over the
budget grid and the batch sizes.

* **Paired differences.** For a method m and the reference (calibrated uncertainty), the per-split
  difference Δ_r = M_m(split r) − M_ref(split r) of a metric M; reported as the mean over the splits
  and the 95% interval *over the repeated splits* (the 2.5% and 97.5% quantiles of Δ_r). The two
  methods share the split, so Δ_r has no evaluation-set noise that is common to both.
* **Ranking-only curves.** On the evaluation rows, delegate the top ⌈α n⌉ rows of a score (no
  threshold, no calibration, no guarantee): how good the *ranking* is, apart from calibration.
* **x-measurable ceiling.** Ranking by g(x) = (p + b − 1)(b − p), the expected gain E[v | p, b] of
  using the expert's output b instead of p when P(y = 1 | x) is taken to be (p + b)/2. It needs the
  expert's output, so it is not deployable; a DV that beats uncertainty by much more than the ceiling
  does is not to be expected on the same table. Ranking by g maximises the expected total v of the
  delegated set (under that η), not the cascade AUROC itself, so a DV close to g can match or exceed
  it by a few thousandths of AUROC on a finite sample: read it as a ceiling up to that noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ctd_stats.stats.dv_targets import predicts_unsafe
from ctd_stats.stats.metrics import auroc_rows, cascade_auroc_rows

#: Scores ranked by the ranking-only curves.
RANKINGS: tuple[str, ...] = ("dv", "uncertainty", "ceiling")
RANKING_LABELS: dict[str, str] = {
    "dv": "DV score d (top ⌈αn⌉)",
    "uncertainty": "uncertainty −|p − ½| (top ⌈αn⌉)",
    "ceiling": "x-measurable ceiling (p + b − 1)(b − p) (not deployable)",
}
#: Batch sizes of the batch top-k diagnostics (the paper's) and the methods run at each.
BATCH_SIZES: tuple[int, ...] = (32, 64, 128)
BATCH_METHODS: tuple[str, ...] = ("unc_topk", "dv_topk")


def ceiling_score(p: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    """g = (p + b − 1)(b − p): the expected delegation value when P(y = 1 | x) = (p + b)/2."""
    return np.asarray((p + b - 1.0) * (b - p), dtype=np.float64)


def top_counts(budget_grid: NDArray[np.float64], n: int) -> NDArray[np.int64]:
    """⌈α n⌉ per budget (α n rounded to 9 decimals first, so 0.3 · 10 gives 3)."""
    return np.ceil(np.round(np.asarray(budget_grid) * n, 9)).astype(np.int64)


def ranking_masks(
    scores: NDArray[np.float64], budget_grid: NDArray[np.float64]
) -> NDArray[np.bool_]:
    """Top-⌈α n⌉ masks of each row of ``scores`` (shape [R, n]) for every α: shape [R, J, n].

    Ties go to the earlier row (stable sort), so exactly ⌈α n⌉ rows are delegated.
    """
    S = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    R, n = S.shape
    order = np.argsort(-S, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.broadcast_to(np.arange(n), (R, n)), axis=1)
    k = top_counts(budget_grid, n)
    return np.asarray(ranks[:, None, :] < k[None, :, None], dtype=bool)


def batch_masks(
    p: NDArray[np.float64], d: NDArray[np.float64], budget_grid: NDArray[np.float64]
) -> NDArray[np.bool_]:
    """Batch top-k masks [method (unc_topk, dv_topk), batch size, budget, n] in stream order."""
    from ctd_stats.stats.sweep import batch_median_window_masks, batch_topk_masks

    out = np.zeros((len(BATCH_METHODS), len(BATCH_SIZES), budget_grid.size, p.size), dtype=bool)
    for si, bs in enumerate(BATCH_SIZES):
        ks = np.asarray([round(float(a) * bs) for a in budget_grid], dtype=np.int64)
        out[0, si] = batch_median_window_masks(p, ks, bs)
        out[1, si] = batch_topk_masks(d, ks, bs)
    return out


def cascade_metrics(
    masks: NDArray[np.bool_], p: NDArray[np.float64], b: NDArray[np.float64], y: NDArray[np.bool_]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """AUROC and accuracy (at 0.5) of the cascade score for every mask; masks [..., n] → [...]."""
    shape = masks.shape[:-1]
    flat = masks.reshape(-1, p.size)
    auc = cascade_auroc_rows(flat, p, b, y).reshape(shape)
    probe_ok = predicts_unsafe(p) == y
    gain = (predicts_unsafe(b) == y).astype(
        np.float64
    ) - probe_ok  # +1 where only the expert is right
    acc = ((int(probe_ok.sum()) + flat @ gain) / p.size).reshape(shape)
    return auc, acc


def grouped_metrics(
    groups: list[NDArray[np.bool_]],
    p: NDArray[np.float64],
    b: NDArray[np.float64],
    y: NDArray[np.bool_],
) -> list[tuple[NDArray[np.float64], NDArray[np.float64]]]:
    """:func:`cascade_metrics` of several mask arrays ([..., n] each) in one ranking pass; returns
    (AUROC, accuracy) per array, each shaped like the array without its last axis."""
    flat = np.concatenate([g.reshape(-1, p.size) for g in groups])
    auc, acc = cascade_metrics(flat, p, b, y)
    out = []
    start = 0
    for g in groups:
        size = int(np.prod(g.shape[:-1]))
        out.append(
            (
                auc[start : start + size].reshape(g.shape[:-1]),
                acc[start : start + size].reshape(g.shape[:-1]),
            )
        )
        start += size
    return out


def delegated_mean_v(masks: NDArray[np.bool_], v: NDArray[np.float64]) -> NDArray[np.float64]:
    """Mean v of the delegated rows of each mask ([..., n] → [...]); NaN where nothing is delegated."""
    count = masks.sum(axis=-1)
    total = (masks * v).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(
            np.where(count > 0, total / np.maximum(count, 1), np.nan), dtype=np.float64
        )


def paired_interval(diffs: NDArray[np.float64]) -> tuple[NDArray[np.float64], ...]:
    """Mean and 95% interval over the repeated splits (axis 0) of paired differences.

    Returns ``(mean, lo, hi)``, each of shape ``diffs.shape[1:]``: the NaN-ignoring mean and the
    2.5% / 97.5% quantiles over splits. All-NaN cells give NaN.
    """
    D = np.asarray(diffs, dtype=np.float64)
    ok = ~np.isnan(D)
    cnt = ok.sum(axis=0)
    mean = np.where(cnt > 0, np.where(ok, D, 0.0).sum(axis=0) / np.maximum(cnt, 1), np.nan)
    filled = np.where(ok, D, np.nan)
    with np.errstate(all="ignore"):
        if ok.all():
            lo, hi = np.quantile(filled, [0.025, 0.975], axis=0)
        else:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                lo, hi = np.nanquantile(filled, [0.025, 0.975], axis=0)
    return np.asarray(mean), np.asarray(lo), np.asarray(hi)


def verdict(lo: float, hi: float) -> str:
    """'better' if the interval lies above 0, 'worse' if below, else 'a tie'."""
    if lo > 0:
        return "better"
    if hi < 0:
        return "worse"
    return "a tie"


@dataclass(frozen=True)
class PoolDiagnostics:
    """Statistics of the whole pool that say how much any DV could gain over uncertainty.

    Attributes
    ----------
    p_v_positive : float
        P(v > 0): the share of rows where the expert's output is closer to the label.
    corr_pb : float
        Pearson correlation of the probe's and the expert's probabilities.
    dv_auroc_v_positive : float
        AUROC of d for the event v > 0 (0.5: d does not find where the expert helps).
    uncertainty_auroc_v_positive : float
        The same for −|p − ½|.
    """

    n: int
    p_v_positive: float
    corr_pb: float
    dv_auroc_v_positive: float
    uncertainty_auroc_v_positive: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "p_v_positive": self.p_v_positive,
            "corr_pb": self.corr_pb,
            "dv_auroc_v_positive": self.dv_auroc_v_positive,
            "uncertainty_auroc_v_positive": self.uncertainty_auroc_v_positive,
        }


def pool_diagnostics(
    p: NDArray[np.float64], b: NDArray[np.float64], d: NDArray[np.float64], v: NDArray[np.float64]
) -> PoolDiagnostics:
    """:class:`PoolDiagnostics` of one expert's pool."""
    pos = v > 0
    aucs = auroc_rows(np.vstack([d, -np.abs(p - 0.5)]), pos)
    sp, sb = float(np.std(p)), float(np.std(b))
    corr = float(np.corrcoef(p, b)[0, 1]) if sp > 0 and sb > 0 else math.nan
    return PoolDiagnostics(
        n=int(p.size),
        p_v_positive=float(pos.mean()),
        corr_pb=corr,
        dv_auroc_v_positive=float(aucs[0]),
        uncertainty_auroc_v_positive=float(aucs[1]),
    )


def interval_rows(
    mean: NDArray[np.float64], lo: NDArray[np.float64], hi: NDArray[np.float64]
) -> list[dict[str, Any]]:
    """``[{mean, ci95: [lo, hi]}]`` per budget (JSON-ready; NaN stays NaN)."""
    return [
        {"mean": float(m), "ci95": [float(a), float(b)]}
        for m, a, b in zip(mean, lo, hi, strict=True)
    ]


def _means(a: NDArray[np.float64]) -> NDArray[np.float64]:
    """NaN-ignoring mean over axis 0 (repeats), NaN where every repeat is NaN."""
    ok = ~np.isnan(a)
    cnt = ok.sum(axis=0)
    return np.asarray(
        np.where(cnt > 0, np.where(ok, a, 0.0).sum(axis=0) / np.maximum(cnt, 1), np.nan),
        dtype=np.float64,
    )


def _floats(a: NDArray[np.float64]) -> list[float]:
    return [float(x) for x in a]


@dataclass(frozen=True)
class StudyDiagnostics:
    """Per-expert diagnostics of a study (arrays indexed [repeat, ...], budgets last).

    ``ranking_*``: [repeat, ranking (:data:`RANKINGS`), budget]; ``delegated_v``: [repeat, method,
    budget], the mean v of the delegated evaluation rows; ``batch_*``: [repeat, method
    (:data:`BATCH_METHODS`), batch size (:data:`BATCH_SIZES`), budget]; ``budget_only_*``: the
    guarantee check of the budget-only arm (pool as population), per budget.
    """

    pool: PoolDiagnostics
    ranking_auroc: NDArray[np.float64]
    ranking_accuracy: NDArray[np.float64]
    ranking_delegated_v: NDArray[np.float64]
    delegated_v: NDArray[np.float64]
    batch_auroc: NDArray[np.float64]
    batch_accuracy: NDArray[np.float64]
    budget_only_violations: NDArray[np.int64]
    budget_only_rate: NDArray[np.float64]

    def ranking_mean(self, metric: str = "auroc") -> NDArray[np.float64]:
        """Mean over repeats of the ranking-only curves: [ranking, budget]."""
        return _means(self.ranking_auroc if metric == "auroc" else self.ranking_accuracy)

    def ranking_gap(self, metric: str = "auroc") -> tuple[NDArray[np.float64], ...]:
        """Paired (mean, lo, hi) per budget of ceiling − uncertainty and of dv − uncertainty: [2, budget]."""
        a = self.ranking_auroc if metric == "auroc" else self.ranking_accuracy
        u = a[:, RANKINGS.index("uncertainty")]
        diffs = np.stack(
            [a[:, RANKINGS.index("ceiling")] - u, a[:, RANKINGS.index("dv")] - u], axis=1
        )
        return paired_interval(diffs)

    def to_dict(self, methods: tuple[str, ...], trials: int) -> dict[str, Any]:
        rm_auc, rm_acc = self.ranking_mean("auroc"), self.ranking_mean("accuracy")
        gm, glo, ghi = self.ranking_gap("auroc")
        dv = _means(self.delegated_v)
        rv = _means(self.ranking_delegated_v)
        ba, bc = _means(self.batch_auroc), _means(self.batch_accuracy)
        return {
            **self.pool.to_dict(),
            "ranking_only": {
                "auroc": {k: _floats(rm_auc[i]) for i, k in enumerate(RANKINGS)},
                "accuracy": {k: _floats(rm_acc[i]) for i, k in enumerate(RANKINGS)},
                "delegated_mean_v": {k: _floats(rv[i]) for i, k in enumerate(RANKINGS)},
                "ceiling_minus_uncertainty_auroc": interval_rows(gm[0], glo[0], ghi[0]),
                "dv_minus_uncertainty_auroc": interval_rows(gm[1], glo[1], ghi[1]),
            },
            "delegated_mean_v": {m: _floats(dv[i]) for i, m in enumerate(methods)},
            "batch_topk": {
                metric: {
                    m: {str(bs): _floats(arr[mi, si]) for si, bs in enumerate(BATCH_SIZES)}
                    for mi, m in enumerate(BATCH_METHODS)
                }
                for metric, arr in (("auroc", ba), ("accuracy", bc))
            },
            "budget_only_guarantee_check": {
                "trials": trials,
                "violations": [int(x) for x in self.budget_only_violations],
                "frequency": [float(x) / trials for x in self.budget_only_violations],
                "mean_true_rate": _floats(self.budget_only_rate),
            },
        }

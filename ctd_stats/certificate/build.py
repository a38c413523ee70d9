"""Calibrate every (expert, budget) of a spec on its score table and build the certificate.

This is the library behind ``ctd calibrate``: it selects the rows of each split, runs the core
(:func:`~ctd_stats.calibrate_cascade` with ``pareto: true``, :func:`~ctd_stats.calibrate_budget` on
the ``ht`` rows otherwise), measures the realized rate and error on ``eval`` rows, and assembles a
:class:`~ctd_stats.certificate.model.Certificate`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ctd_stats._version import __version__
from ctd_stats.errors import CTDInputError
from ctd_stats.spec.cascade_spec import CascadeSpec
from ctd_stats.stats.curves import delegation_counts
from ctd_stats.stats.ltt import Calibration, budget_threshold, calibrate_budget
from ctd_stats.stats.pareto import CascadeCalibration, CascadeData, calibrate_cascade
from ctd_stats.stats.pvalues import pvalue_function
from ctd_stats.table.score_table import ScoreTable

if TYPE_CHECKING:  # the certificate models (pydantic) load on use: `ctd validate` needs none
    from ctd_stats.certificate.model import BudgetCertificate, Certificate, ScoreReference

Progress = Callable[[Iterable[Any]], Iterator[Any]]


@dataclass(frozen=True)
class ExpertData:
    """The rows one expert's calibration and evaluation use.

    ``opt``/``ht`` are set for Pareto calibration (the same object, every calibration row, with
    ``split: none``); ``ht_scores`` always holds the DV scores the budget is tested on; ``eval``
    holds the labelled eval rows with both probabilities (or None).
    """

    name: str
    ht_scores: NDArray[np.float64]
    opt_scores: NDArray[np.float64] | None
    opt: CascadeData | None
    ht: CascadeData | None
    eval_scores: NDArray[np.float64]
    eval: CascadeData | None
    ht_clusters: NDArray[Any] | None = None

    @property
    def calibration_scores(self) -> NDArray[np.float64]:
        if self.opt_scores is None:
            return self.ht_scores
        return np.concatenate([self.opt_scores, self.ht_scores])


@dataclass(frozen=True)
class EvalSummary:
    """Realized delegation rate (and errors, when labelled) of one threshold on the eval rows."""

    n: int
    rate: float
    n_labelled: int
    error: float | None
    probe_error: float | None
    expert_error: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "rate": self.rate,
            "n_labelled": self.n_labelled,
            "error": self.error,
            "probe_error": self.probe_error,
            "expert_error": self.expert_error,
        }


@dataclass(frozen=True)
class CalibrationOutcome:
    """Everything a calibration produced: certificate, core results, data, eval summaries."""

    spec: CascadeSpec
    table: ScoreTable
    certificate: Certificate
    data: dict[str, ExpertData]
    calibrations: dict[tuple[str, float], Calibration]
    evaluation: dict[tuple[str, float], EvalSummary]

    @property
    def all_certified(self) -> bool:
        return all(r.certified for r in self.certificate.results)


def _cascade_data(
    table: ScoreTable, mask: NDArray[np.bool_], expert: str, dv: NDArray[np.float64] | None = None
) -> CascadeData:
    """The masked rows as cascade data (``dv``: their DV scores when already selected)."""
    exp = table.expert(expert)
    assert table.label is not None and table.probe_prob is not None and exp.expert_prob is not None
    return CascadeData.from_probabilities(
        exp.dv_score[mask] if dv is None else dv,
        table.label[mask],
        table.probe_prob[mask],
        exp.expert_prob[mask],
    )


def expert_data(spec: CascadeSpec, table: ScoreTable, expert: str) -> ExpertData:
    """Select the opt / ht / eval rows of ``table`` for ``expert`` as the spec asks."""
    exp = table.expert(expert)
    ht_mask = table.mask("ht")
    opt_mask = table.mask("opt")
    eval_mask = table.mask("eval")
    src = table.name()
    if not ht_mask.any():
        raise CTDInputError(
            f"{src}: no rows in split 'ht' to calibrate on (give rows split = ht, or leave splits "
            "empty and set `splits.ht` > 0)"
        )
    opt = ht = None
    opt_scores = None
    ht_scores = exp.dv_score[ht_mask]
    if spec.calibration.pareto:
        table.require_labelled(
            ht_mask | opt_mask, expert, "Pareto calibration (`calibration.pareto: true`)"
        )
        if spec.calibration.effective_split == "none":  # every calibration row, for front and test
            all_rows = _cascade_data(table, ht_mask | opt_mask, expert)
            opt = ht = all_rows
            ht_scores = all_rows.dv_score
        elif opt_mask.any():
            opt, ht = _cascade_data(table, opt_mask, expert), _cascade_data(table, ht_mask, expert)
        else:
            ht_all = _cascade_data(table, ht_mask, expert)
            opt, ht = ht_all.split(spec.calibration.opt_fraction, spec.splits.seed)
        if opt is not ht:
            opt_scores, ht_scores = opt.dv_score, ht.dv_score
    eval_scores = exp.dv_score[eval_mask]
    ev: CascadeData | None = None
    if eval_mask.any() and table.label is not None and table.probe_prob is not None:
        if exp.expert_prob is not None:
            full = (
                eval_mask
                & ~np.isnan(table.label)
                & ~np.isnan(table.probe_prob)
                & ~np.isnan(exp.expert_prob)
            )
            if full.any():  # when every eval row is labelled, share eval_scores (no second copy)
                shared = eval_scores if np.array_equal(full, eval_mask) else None
                ev = _cascade_data(table, full, expert, shared)
    ht_clusters = None
    if spec.calibration.cluster is not None:
        if table.group is None:
            raise CTDInputError(
                f"{src}: calibration.cluster: column {spec.calibration.cluster!r} not found in the "
                "score table"
            )
        ht_clusters = table.group[ht_mask]
        empty = np.flatnonzero(ht_clusters == "")
        if empty.size:
            raise CTDInputError(
                f"{src}: calibration.cluster: column {spec.calibration.cluster!r} is empty on "
                f"{empty.size} calibration row(s) (first: ht row {int(empty[0])}); every row needs a "
                "cluster id"
            )
    return ExpertData(
        name=exp.name,
        ht_scores=ht_scores,
        opt_scores=opt_scores,
        opt=opt,
        ht=ht,
        eval_scores=eval_scores,
        eval=ev,
        ht_clusters=ht_clusters,
    )


def evaluate(data: ExpertData, threshold: float) -> EvalSummary:
    """Realized rate and (if labelled) cascade / probe / expert error of ``threshold`` on eval."""
    n = int(data.eval_scores.size)
    rate = float(np.mean(data.eval_scores > threshold)) if n else math.nan
    if data.eval is None:
        return EvalSummary(n, rate, 0, None, None, None)
    ev = data.eval
    deleg = ev.dv_score > threshold
    wrong = np.where(deleg, ~ev.expert_correct, ~ev.probe_correct)
    return EvalSummary(
        n=n,
        rate=rate,
        n_labelled=ev.n,
        error=float(wrong.mean()),
        probe_error=float((~ev.probe_correct).mean()),
        expert_error=float((~ev.expert_correct).mean()),
    )


def calibrate_one(spec: CascadeSpec, data: ExpertData, budget: float) -> Calibration:
    """Run the core calibration for one expert and budget."""
    c = spec.calibration
    if c.pareto:
        assert data.opt is not None and data.ht is not None
        split = c.effective_split
        return calibrate_cascade(
            data=data.ht if split == "none" else None,
            opt=None if split == "none" else data.opt,
            ht=None if split == "none" else data.ht,
            split=split,
            budget=budget,
            delta=c.delta,
            error_level=c.error_level,
            joint=c.joint,
            procedure=c.procedure,
            pvalue=c.pvalue,
        )
    if c.cluster is not None:
        from ctd_stats.stats.cluster import calibrate_budget_clustered

        assert data.ht_clusters is not None
        return calibrate_budget_clustered(
            data.ht_scores,
            data.ht_clusters,
            budget,
            c.delta,
            pvalue=c.cluster_pvalue,
            cluster_column=c.cluster,
        )
    on, seed = c.randomize_seed
    if on:
        from ctd_stats.stats.randomized import randomized_budget_threshold

        return randomized_budget_threshold(
            data.ht_scores, budget, c.delta, seed, reproducible=c.reproducible
        )
    if c.procedure == "fixed_sequence":  # the full grid's τ̂ by selection: O(n), no sort
        return budget_threshold(data.ht_scores, budget, c.delta, pvalue=c.pvalue)
    return calibrate_budget(data.ht_scores, budget, c.delta, procedure=c.procedure, pvalue=c.pvalue)


def _test_order(cal: Calibration) -> NDArray[np.int64]:
    """Indices of the tested family in the order it was tested (the certificate lists it that way)."""
    if isinstance(cal, CascadeCalibration) and cal.test_order.size == cal.thresholds.size:
        return np.asarray(cal.test_order, dtype=np.int64)
    return np.arange(int(cal.thresholds.size), dtype=np.int64)


#: Above this many tested thresholds, a budget-only fixed-sequence entry records only its boundary.
MAX_RECORDED_TESTS = 1000


TestedScope = Literal["all", "fixed_sequence_boundary"]


def _recorded(cal: Calibration, order: NDArray[np.int64]) -> tuple[list[int], TestedScope]:
    """The tested hypotheses the certificate lists, and the scope name.

    Every hypothesis is listed, except for a budget-only fixed-sequence chain over more than
    :data:`MAX_RECORDED_TESTS` thresholds (the full grid, or the Pareto front, of a large table):
    there the p-value is monotone along the test order (counts only grow as τ falls), so the last
    rejected and the first non-rejected hypothesis determine every decision, and the chosen τ is the
    last rejected one (on the Pareto front opt error strictly falls along the order); listing all of
    them would cost memory and megabytes of JSON for nothing a verifier needs.
    """
    budget_chain = cal.procedure == "fixed_sequence" and getattr(cal, "error_level", None) is None
    partial = cal.extras.get("family") in ("boundary", "boundary_window")  # not the whole chain
    if not budget_chain or (len(order) <= MAX_RECORDED_TESTS and not partial):
        return [int(i) for i in order], "all"
    rejected = np.asarray(cal.certified)[order]
    first_fail = int(np.argmin(rejected)) if not rejected.all() else len(order)
    keep = [i for i in (first_fail - 1, first_fail) if 0 <= i < len(order)]
    return [int(order[i]) for i in keep], "fixed_sequence_boundary"


def _randomized_sentence(cal: Calibration) -> str:
    if not cal.extras.get("randomized"):
        return ""
    x = cal.extras
    if x.get("provenance") == "fixed_seed":
        return (
            f" The threshold is randomised with a FIXED seed ({x['seed']}, U = {x['u']:.6f}; "
            "reproducibility mode): the guarantee is conditional on this seed. Given U, the "
            f"probability of a violation is up to {x['conditional_level']:.4g} (continuous scores at a "
            f"boundary rate), {'above' if x['conditional_level'] > cal.delta else 'not above'} δ = "
            f"{cal.delta:g}; reusing the seed at every recalibration keeps that conditional level."
        )
    return (
        f" The threshold is randomised: U = {x['u']:.6f} was drawn from operating-system entropy for "
        "this calibration (recorded); the probability is over the calibration draw and U together, "
        "and the level is exactly δ at the boundary. Deploy this draw: calibrating again until a "
        "preferred threshold comes out voids the guarantee."
    )


def budget_certificate(
    cal: Calibration, expert: str, reference: ScoreReference | None, test_scores: ArrayLike
) -> BudgetCertificate:
    """The certificate entry of one core result.

    ``test_scores`` are the DV scores the p-values were computed on (ht split, or every calibration
    row for budget-only); the integer count of scores above each tested threshold is recorded so
    that a verifier can recompute every p-value (:mod:`ctd_stats.certificate.checks`).
    """
    from ctd_stats.certificate.model import (
        BudgetCertificate,
        FrontPoint,
        Randomization,
        TestedThreshold,
    )

    counts = delegation_counts(test_scores, cal.thresholds)
    if not np.array_equal(counts, np.rint(cal.empirical_rates * cal.n)):
        raise RuntimeError("recorded counts disagree with the calibration's rates (a bug)")
    from ctd_stats.stats.cluster import ClusterCalibration

    clustered = isinstance(cal, ClusterCalibration)
    rates = errors = None  # opt rate and error of each front point (Pareto calibration only)
    if isinstance(cal, CascadeCalibration):
        rates, errors = cal.front_rates, cal.front_errors
    recorded, scope = _recorded(cal, _test_order(cal))
    tested = [
        TestedThreshold(
            threshold=float(cal.thresholds[i]),
            pvalue=float(cal.pvalues[i]),
            rejected=bool(cal.certified[i]),
            ht_rate=float(cal.empirical_rates[i]),
            ht_count=int(counts[i]),
            opt_rate=None if rates is None else float(rates[i]),
            opt_error=None if errors is None else float(errors[i]),
            cluster_sum=float(cal.cluster_sums[i]) if isinstance(cal, ClusterCalibration) else None,
        )
        for i in recorded
    ]
    front = None
    if isinstance(cal, CascadeCalibration):
        m = int(cal.front_thresholds.size)
        keep = np.unique(np.linspace(0, m - 1, min(m, MAX_RECORDED_TESTS)).round().astype(np.int64))
        front = [
            FrontPoint(
                threshold=float(cal.front_thresholds[i]),
                opt_rate=float(cal.front_rates[i]),
                opt_error=float(cal.front_errors[i]),
            )
            for i in keep
        ]
    return BudgetCertificate(
        expert=expert,
        budget=cal.budget,
        delta=cal.delta,
        method=(
            "ctd_pareto"
            if isinstance(cal, CascadeCalibration)
            else "budget_only_cluster"
            if clustered
            else "budget_only"
        ),
        procedure=cal.procedure,
        pvalue_kind=cal.pvalue_kind,
        threshold=float(cal.threshold),
        certified=cal.is_certified,
        n_test=int(cal.n),
        tested_scope=scope,
        reason=cal.reason,
        guarantee=cal.guarantee + _randomized_sentence(cal),
        randomization=(
            Randomization(
                seed=cal.extras["seed"],
                u=cal.extras["u"],
                gamma=cal.extras["gamma"],
                provenance=cal.extras["provenance"],
                conditional_level=cal.extras["conditional_level"],
            )
            if cal.extras.get("randomized")
            else None
        ),
        tested=tested,
        pareto_front=front,
        error_level=cal.error_level if isinstance(cal, CascadeCalibration) else None,
        joint=cal.joint if isinstance(cal, CascadeCalibration) else None,
        split=("none" if cal.split == "none" else "opt_ht")
        if isinstance(cal, CascadeCalibration)
        else None,
        score_reference=reference,
        cluster=cal.cluster_column if isinstance(cal, ClusterCalibration) else None,
        n_clusters=cal.n_clusters if isinstance(cal, ClusterCalibration) else None,
    )


def _zero_count_pvalue(kind: str, n: int, budget: float) -> float:
    return float(pvalue_function(kind)(0, n, budget))


def require_certifiable_size(spec: CascadeSpec, n: int, source: str) -> None:
    """Refuse a test split too small to certify *any* of the spec's budgets.

    With ``n`` test rows even zero observed delegations give the p-value ``p(0, n, B)``; if that
    exceeds δ for the largest budget B, no threshold can ever be certified, which is a bad input
    (too few calibration rows), not a calibration outcome.

    Raises
    ------
    CTDInputError
        Naming the table, the row count and the smallest n that could certify the largest budget.
    """
    c = spec.calibration
    b_max = max(c.budget)
    if _zero_count_pvalue(c.pvalue, n, b_max) <= c.delta:
        return
    hi = max(n, 1)
    while _zero_count_pvalue(c.pvalue, hi, b_max) > c.delta:
        hi *= 2
    lo = hi // 2
    while hi - lo > 1:  # smallest n with p(0, n, B) <= delta (p is non-increasing in n)
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if _zero_count_pvalue(c.pvalue, mid, b_max) <= c.delta else (mid, hi)
    raise CTDInputError(
        f"{source}: only {n} calibration rows are used for the test; no budget in the spec can be "
        f"certified from so few (budget {b_max:g} at delta = {c.delta:g} with {c.pvalue} p-values "
        f"needs at least {hi} rows even if nothing is delegated); add rows or raise the budget"
    )


def warn_correlated_groups(table: ScoreTable) -> None:
    """Warn (:class:`~ctd_stats.stats.cluster.ClusterCorrelationWarning`) when the calibration rows carry
    a ``group`` whose members have correlated scores (see :func:`~ctd_stats.stats.cluster.cluster_correlation`):
    if the groups were sampled whole, the row-level certificate over-states its confidence. Called
    only while ``calibration.groups`` is ``unknown``."""
    if table.group is None:
        return
    import warnings

    from ctd_stats.stats.cluster import ClusterCorrelationWarning, cluster_correlation

    rows = (table.mask("ht") | table.mask("opt")) & (table.group != "")
    if np.count_nonzero(rows) < 3:
        return
    for name in table.expert_names:
        diag = cluster_correlation(table.expert(name).dv_score[rows], table.group[rows])
        if diag.correlated:
            warnings.warn(
                ClusterCorrelationWarning(f"{table.name()}: expert {name!r}: " + diag.message()),
                stacklevel=2,
            )


def calibrate_spec(
    spec: CascadeSpec, table: ScoreTable, *, progress: Progress | None = None
) -> CalibrationOutcome:
    """Calibrate every expert and budget of ``spec`` on ``table`` (splits already assigned).

    Returns
    -------
    CalibrationOutcome
        The certificate (fail-closed entries included) and the material for the report.
    """
    from ctd_stats.certificate.model import Certificate, ScoreReference, assumption_text, utc_now

    data = {name: expert_data(spec, table, name) for name in table.expert_names}
    for d in data.values():
        if spec.calibration.cluster is None:
            require_certifiable_size(spec, int(d.ht_scores.size), table.name())
    groups = spec.calibration.groups_declared
    if groups == "unknown":  # strata: rows independent by declaration; clusters: certified as such
        warn_correlated_groups(table)
    jobs = [(name, b) for name in data for b in spec.calibration.budget]
    wrap: Progress = progress or (lambda it: iter(it))
    calibrations: dict[tuple[str, float], Calibration] = {}
    evaluation: dict[tuple[str, float], EvalSummary] = {}
    results: list[BudgetCertificate] = []
    references = {
        name: ScoreReference.from_scores(d.calibration_scores) for name, d in data.items()
    }
    for name, budget in wrap(jobs):
        cal = calibrate_one(spec, data[name], budget)
        calibrations[(name, budget)] = cal
        evaluation[(name, budget)] = evaluate(data[name], cal.threshold)
        results.append(budget_certificate(cal, name, references[name], data[name].ht_scores))
    n = table.counts()
    first = next(iter(data.values()))
    if first.opt is not None and first.ht is not None and first.opt is not first.ht:
        n["opt"], n["ht"] = first.opt.n, first.ht.n
    cert = Certificate(
        cascade=spec.cascade.name,
        created_at=utc_now(),
        package_version=__version__,
        seed=spec.splits.seed,
        spec_sha256=spec.sha256,
        data_sha256=table.sha256,
        n=n,
        assumption=assumption_text(groups, spec.calibration.cluster),
        groups=groups,
        results=results,
    )
    return CalibrationOutcome(spec, table, cert, data, calibrations, evaluation)

"""Family-wise error rate (FWER) control over a family of threshold hypotheses.

Each procedure takes valid p-values (see :mod:`ctd_stats.stats.pvalues`) for hypotheses H_1..H_m and a
level δ, and returns which hypotheses are rejected such that

    P(at least one true null hypothesis is rejected) ≤ δ.

For :class:`FixedSequence` the order of the family must be fixed before the test data are seen
(e.g. descending thresholds for a budget, or an order computed on a separate "opt" split).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ctd_stats.errors import CTDInputError
from ctd_stats.stats.inputs import check_open_unit


class PowerWarning(UserWarning):
    """A valid but needlessly weak procedure was chosen (the guarantee holds; power is lost).

    Emitted when Bonferroni or Holm is run over the full data-derived grid of thresholds. The budget
    hypotheses H_τ: R_B(τ) > budget are nested (R_B is non-increasing in τ, so the nulls hold on an
    interval of small τ), and for a nested family fixed-sequence testing from the largest τ down is
    uniformly more powerful: it tests every hypothesis at the full level δ, whereas Bonferroni/Holm
    divide δ by (up to) the grid size — thousands for a full grid. Mean realised rate at n = 200,
    budget 0.1, δ = 0.1: 0.074 with fixed-sequence against 0.040 with Bonferroni/Holm.
    """


def warn_weak_full_grid(procedure: str, grid_size: int, *, stacklevel: int = 3) -> None:
    """Emit a :class:`PowerWarning` when ``procedure`` is Bonferroni or Holm over a full data grid."""
    if procedure in ("bonferroni", "holm"):
        import warnings

        warnings.warn(
            f"{procedure} over the full data-derived grid ({grid_size} thresholds) divides delta by up "
            "to the grid size; for these nested hypotheses fixed_sequence is valid and uniformly more "
            "powerful. Use procedure='fixed_sequence', or pass a short explicit thresholds grid.",
            PowerWarning,
            stacklevel=stacklevel,
        )


def _pvals(pvalues: ArrayLike) -> NDArray[np.float64]:
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1:
        raise CTDInputError("pvalues must be 1-dimensional")
    if np.isnan(p).any():
        raise CTDInputError("pvalues contain NaN")
    return p


class FWERProcedure(ABC):
    """A multiple-testing procedure with strong FWER control at level δ, registered by a stable id.

    ``id`` is what certificates record; :func:`procedure_by_id` maps it (or an older spelling in
    ``legacy_ids``) back to the object, and :meth:`recheck` lets a certificate check re-run the
    procedure on the recorded p-values instead of comparing strings.
    """

    id: ClassVar[str] = "abstract"
    #: Older spellings of ``id`` found in certificates written by earlier versions.
    legacy_ids: ClassVar[tuple[str, ...]] = ()
    #: Whether this is one fixed-sequence chain along the recorded order (it stops at its first
    #: non-rejection, so nothing after that point may be certified).
    chain: ClassVar[bool] = False

    @property
    def name(self) -> str:
        """The stable id (kept under its old name for callers of 0.1)."""
        return self.id

    @abstractmethod
    def reject(self, pvalues: ArrayLike, delta: float) -> NDArray[np.bool_]:
        """Boolean mask of rejected hypotheses, aligned with ``pvalues`` (in test order)."""

    def recheck(
        self, pvalues: NDArray[np.float64], rejected: NDArray[np.bool_], delta: float
    ) -> str | None:
        """Re-run the procedure on recorded p-values (in test order) against the recorded rejections.

        Returns a short sentence naming the disagreement, or ``None`` when they agree.
        """
        redo = self.reject(pvalues, delta)
        if np.array_equal(redo, rejected):
            return None
        return f"the {self.id} procedure does not give the recorded rejections"


class FixedSequence(FWERProcedure):
    """Fixed-sequence testing: reject H_1, H_2, … in order while p_j ≤ δ; stop at the first failure.

    Controls the FWER at δ for any valid p-values, provided the order does not depend on the data
    the p-values are computed from. Never rejects anything after its first non-rejection.
    """

    id = "fixed_sequence"
    chain = True

    def reject(self, pvalues: ArrayLike, delta: float) -> NDArray[np.bool_]:
        p = _pvals(pvalues)
        d = check_open_unit("delta", delta)
        return np.asarray(np.cumprod(p <= d).astype(bool), dtype=np.bool_)


class Bonferroni(FWERProcedure):
    """Bonferroni: reject H_j iff p_j ≤ δ/m. Controls the FWER at δ under any dependence."""

    id = "bonferroni"

    def reject(self, pvalues: ArrayLike, delta: float) -> NDArray[np.bool_]:
        p = _pvals(pvalues)
        d = check_open_unit("delta", delta)
        if p.size == 0:
            return np.zeros(0, dtype=bool)
        return p <= d / p.size


class Holm(FWERProcedure):
    """Holm's step-down procedure: uniformly more powerful than Bonferroni, FWER ≤ δ under any dependence.

    Sort p ascending; reject p_(1..j) while p_(i) ≤ δ/(m − i + 1).
    """

    id = "holm"

    def reject(self, pvalues: ArrayLike, delta: float) -> NDArray[np.bool_]:
        p = _pvals(pvalues)
        d = check_open_unit("delta", delta)
        m = p.size
        if m == 0:
            return np.zeros(0, dtype=bool)
        order = np.argsort(p, kind="stable")
        ok = p[order] <= d / (m - np.arange(m))
        steps = np.cumprod(ok).astype(bool)
        out = np.zeros(m, dtype=bool)
        out[order] = steps
        return out


class MaxP(FWERProcedure):
    """Joint rule ``max_p``: one fixed-sequence chain at δ on p_J = max(p_B, p_E).

    p_J is a valid p-value for the union null "budget exceeded or error level exceeded", so a
    fixed-sequence chain on it controls the FWER at δ along any order fixed without the test data
    (CTD orders it by the opt split's p-values). :meth:`reject` takes the max p-values in test order;
    :meth:`reject_joint` builds them from the two risks and an order.
    """

    id = "max_p"
    legacy_ids = ("fixed_sequence(max_p, opt p-value order)", "fixed_sequence(max_p)")
    chain = True

    def reject(self, pvalues: ArrayLike, delta: float) -> NDArray[np.bool_]:
        return FixedSequence().reject(pvalues, delta)

    def reject_joint(
        self, p_budget: ArrayLike, p_error: ArrayLike, order: ArrayLike, delta: float
    ) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
        """The joint p-values ``max(p_B, p_E)`` (candidate order) and the chain's rejections along ``order``."""
        pvals = np.maximum(_pvals(p_budget), _pvals(p_error))
        o = np.asarray(order, dtype=np.int64)
        rejected = np.zeros(pvals.size, dtype=bool)
        rejected[o] = FixedSequence().reject(pvals[o], delta)
        return pvals, rejected


class BonferroniSplitChains(FWERProcedure):
    """Joint rule ``bonferroni_split``: several fixed-sequence chains, each at level δ/k (one per risk).

    A candidate is certified only if every chain rejects its hypothesis for that candidate. Each
    chain has its own order (fixed without the test data). By the union bound, the probability that
    any chain makes a false rejection is ≤ k · δ/k = δ, so the joint certification holds with
    probability ≥ 1 − δ.
    """

    id = "bonferroni_split"
    #: Chains in a CTD joint calibration: one for the budget, one for the error risk.
    n_chains: ClassVar[int] = 2

    def reject(  # type: ignore[override]
        self, pvalue_chains: Sequence[ArrayLike], orders: Sequence[ArrayLike], delta: float
    ) -> NDArray[np.bool_]:
        """``pvalue_chains[r][i]``: p-value of risk r at candidate i; ``orders[r]``: test order of chain r."""
        d = check_open_unit("delta", delta)
        k = len(pvalue_chains)
        if k == 0 or len(orders) != k:
            raise CTDInputError("need one order per p-value chain")
        m = _pvals(pvalue_chains[0]).size
        joint = np.ones(m, dtype=bool)
        fs = FixedSequence()
        for pv, order in zip(pvalue_chains, orders, strict=True):
            p = _pvals(pv)
            o = np.asarray(order, dtype=np.int64)
            if p.size != m or o.size != m or not np.array_equal(np.sort(o), np.arange(m)):
                raise CTDInputError("each order must be a permutation of the candidates")
            rej = np.zeros(m, dtype=bool)
            rej[o] = fs.reject(p[o], d / k)
            joint &= rej
        return joint

    def recheck(
        self, pvalues: NDArray[np.float64], rejected: NDArray[np.bool_], delta: float
    ) -> str | None:
        """Certificates record the budget chain's p-values (in its order), not the error chain's: so
        the recorded rejections must lie inside what the budget chain at δ/k rejects."""
        budget_chain = FixedSequence().reject(pvalues, delta / self.n_chains)
        if (rejected & ~budget_chain).any():
            i = int(np.flatnonzero(rejected & ~budget_chain)[0])
            return (
                f"the {self.id} procedure's budget chain (level delta/{self.n_chains}) stops before "
                f"tested threshold #{i}, which is recorded as certified"
            )
        return None


#: Every procedure by its stable id (FWER procedures for one risk, joint rules for two).
REGISTRY: dict[str, FWERProcedure] = {
    p.id: p for p in (FixedSequence(), Bonferroni(), Holm(), MaxP(), BonferroniSplitChains())
}
#: The procedures a single-risk (budget-only) calibration accepts, by id.
PROCEDURES: dict[str, type[FWERProcedure]] = {
    "fixed_sequence": FixedSequence,
    "bonferroni": Bonferroni,
    "holm": Holm,
}
#: The joint rules of a budget-and-error calibration, by id.
JOINT_RULES: dict[str, FWERProcedure] = {
    "max_p": REGISTRY["max_p"],
    "bonferroni_split": REGISTRY["bonferroni_split"],
}
_LEGACY: dict[str, str] = {old: p.id for p in REGISTRY.values() for old in p.legacy_ids}


def procedure_by_id(procedure_id: str) -> FWERProcedure:
    """The registered procedure recorded as ``procedure_id`` (an id, or an older spelling of one).

    Raises
    ------
    CTDInputError
        For an id no procedure has.
    """
    key = _LEGACY.get(procedure_id, procedure_id)
    try:
        return REGISTRY[key]
    except KeyError:
        raise CTDInputError(
            f"unknown procedure {procedure_id!r}: expected one of {', '.join(REGISTRY)}"
        ) from None


def get_procedure(name: str) -> FWERProcedure:
    """A single-risk procedure by id: ``fixed_sequence``, ``bonferroni`` or ``holm``."""
    try:
        return PROCEDURES[name]()
    except KeyError:
        raise CTDInputError(
            f"procedure must be one of {', '.join(PROCEDURES)}; got {name!r}"
        ) from None

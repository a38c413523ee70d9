"""Budget certification with clusters, not rows, as the sampling unit (``calibration.cluster``).

Why. Row-level calibration (:func:`~ctd_stats.stats.ltt.calibrate_budget`) assumes i.i.d. rows. When one
conversation, user or source contributes many rows, the rows of a cluster are correlated, the
delegation count varies far more than a binomial, and the row-level certificate is over-confident:
in ``tests/unit/stats/test_cluster.py`` (40 clusters of 25 rows, δ = 0.1) it violates the budget in
about a quarter of calibrations.

Setting and assumption. The m calibration clusters are i.i.d. draws from a population of clusters,
and deployment draws clusters from the same population. Nothing is assumed about the rows inside a
cluster (any dependence) or about the cluster sizes s_j ≥ 1 (they may vary and depend on the
scores). For a threshold τ, cluster j's delegation fraction is

    F_j(τ) = #{rows i of cluster j : d_ji > τ} / s_j ∈ [0, 1].

What is certified: the **cluster-averaged** delegation rate

    R_C(τ) = E[F_J(τ)]   (J a random cluster; every cluster weighs the same),

the expected fraction of a new cluster's rows that is delegated. The row-level rate is the ratio
E[s_J F_J(τ)] / E[s_J]; it equals R_C(τ) when the sizes are equal, or independent of the
fractions, and otherwise can be larger or smaller (large clusters weigh more in it). This module
certifies R_C; the report's eval rate is the row rate, for comparison.

The p-value. F_1(τ), …, F_m(τ) are i.i.d. in [0, 1] with mean R_C(τ). With S(τ) = Σ_j F_j(τ), for
H_τ: R_C(τ) > B the Hoeffding–Bentkus p-value of a [0, 1]-bounded mean

    p(τ) = min( exp(−m · KL(min(S/m, B) ‖ B)),  e · P(Bin(m, B) ≤ ⌈S⌉) )

is valid: under H_τ, P(S/m ≤ t) ≤ exp(−m KL(t ‖ R_C)) ≤ exp(−m KL(t ‖ B)) for t ≤ B (Hoeffding 1963,
KL form; KL(t ‖ ·) increases above t), and P(S ≤ x) ≤ e · P(Bin(m, R_C) ≤ ⌈x⌉) ≤ e · P(Bin(m, B) ≤ ⌈x⌉)
(Bentkus 2004); each bound is super-uniform, so is their minimum (both bound the same tail event).
``pvalue`` may pick either term alone (``hoeffding``, ``bentkus``). S is a floating-point sum of
rationals; the p-value is evaluated at S + η with η = n · 2⁻⁵² · max(S, 1) (n rows), a bound on the
rounding error of the cumulative sum, so it is never below the p-value of the exact S. With
singleton clusters this is the row-level Hoeffding–Bentkus p-value, up to that η.

Family and validity. Every distinct calibration score is tested by fixed-sequence testing in
descending τ (least delegation first) at level δ. S(τ) is a step function of τ constant between
distinct scores, so this is the same as testing every τ ∈ ℝ; S grows as τ falls and p grows with
S, so the certified set is {τ : S(τ) ≤ s*}. A violation certifies some τ̂ with R_C(τ̂) > B, hence
τ̂ < τ° := inf{τ : R_C(τ) ≤ B} (R_C is right-continuous and non-increasing). Then
S(τ̂) ≥ S⁻(τ°) := Σ_j #{d_ji ≥ τ°} / s_j, a sum of m i.i.d. [0, 1] variables with mean
lim_{τ↑τ°} R_C(τ) ≥ B, and p(S(τ̂)) ≤ δ implies p(S⁻(τ°)) ≤ δ, which has probability ≤ δ. So

    P_cal( R_C(τ̂) ≤ B ) ≥ 1 − δ,

the probability over the draw of the m clusters. Nothing certified: τ̂ = +∞ (fail closed). Cost: one
sort of the n rows and cumulative sums, O(n log n) time, O(n) memory.

Strata or clusters (``calibration.groups``). Rows that share a group (a source, a user, a
conversation) usually have similar scores. Whether that breaks the row-level certificate depends on
how the rows were sampled, not on the scores:

(a) **clusters** — whole groups were sampled (a conversation, user or session enters calibration
    with all its rows). With clusters of s̄ rows and ρ_τ the intra-cluster correlation of the
    delegation indicators 1{d > τ}, Var K(τ) = n R(1 − R) (1 + (s̄ − 1) ρ_τ) (equal sizes;
    approximately otherwise), not binomial; when ρ_τ > 0 the row-level p-value is too small and
    P_cal(R(τ̂) > B) can exceed δ (≈ 0.245 at δ = 0.1 in
    ``tests/unit/stats/test_cluster.py``). Valid: this module's certificate (``cluster: COLUMN``),
    whose guarantee is the one above, on the cluster-averaged rate.
(b) **strata** — every calibration row and every deployment input is an independent draw of
    (G, X) from one mixture: G ~ π, then X | G ~ P_G (or the rows are a random row-by-row partition
    of one pool, as the spec's ``splits`` does: exchangeable, which is all the test needs). Then the
    indicators 1{d(X_i) > τ} are i.i.d. Bernoulli(R(τ)) with R(τ) = Σ_g π_g P_g(d > τ), K(τ) is
    exactly Bin(n, R(τ)) however strongly the scores depend on the group, and the row-level
    guarantee P_cal(R(τ̂) ≤ B) ≥ 1 − δ holds as stated, R being the rate under the same mixture π in
    deployment. It says nothing when deployment has another mixture (a shift), and a design that
    fixed the number of calibration rows per group in advance is not covered by this argument.
    With few groups (the demo has 7) a cluster certificate would be needlessly weak: m = 7 bounded
    observations.

The declaration is an **assumption the data cannot verify**. Given the groups that were drawn,
both designs produce rows that are independent within a group with a group-specific score
distribution; they differ in what was random (whole groups, or each row's group), a fact about how
the data were collected. ``calibration.groups: strata`` declares (b): no warning, and the
certificate's assumption says so; ``cluster: COLUMN`` declares (a); ``unknown`` (the default) keeps
the diagnostic below. The declaration is recorded in the certificate (``groups``).

Diagnostic (:func:`cluster_correlation`). When rows carry a group and the spec declares neither,
:func:`~ctd_stats.certificate.build.calibrate_spec` estimates the intra-cluster correlation of the
scores' ranks (one-way ANOVA estimator) and the design effect 1 + (s₀ − 1) ICC, and warns
(:class:`ClusterCorrelationWarning`) when the design effect is at least :data:`DEFF_WARN` and the
ANOVA F test of "no group effect" has p ≤ :data:`F_PVALUE_WARN`. The F test detects a group effect,
which (a) and (b) both produce; the design effect is the variance inflation of the count *if* the
groups are clusters (a), and means nothing for the validity under (b). So the warning names both
cases and both remedies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from ctd_stats.errors import CTDInputError
from ctd_stats.stats.inputs import as_finite_1d, check_open_unit
from ctd_stats.stats.ltt import Calibration

#: p-values of a [0, 1]-bounded mean that the cluster method accepts (names of the row-level ones).
CLUSTER_PVALUES: tuple[str, ...] = ("hb", "hoeffding", "bentkus")
#: Warn when the estimated design effect is at least this ...
DEFF_WARN = 1.2
#: ... and the ANOVA F test of "no group effect" has a p-value at most this.
F_PVALUE_WARN = 0.01


class ClusterCorrelationWarning(UserWarning):
    """Rows sharing a group are correlated: a row-level certificate over-states its confidence."""


def cluster_pvalue_kind(pvalue: str) -> str:
    """The certificate's name of a cluster p-value (``"hb_cluster"`` …)."""
    return f"{pvalue}_cluster"


def rounding_margin(cluster_sum: ArrayLike, n_rows: int) -> NDArray[np.float64]:
    """η = n · 2⁻⁵² · max(S, 1): a bound on the float error of a cumulative sum of n terms ≤ 1."""
    s = np.asarray(cluster_sum, dtype=np.float64)
    return np.asarray(n_rows * 2.0**-52 * np.maximum(s, 1.0), dtype=np.float64)


def cluster_pvalue(
    cluster_sum: ArrayLike, m: int, budget: float, n_rows: int, pvalue: str = "hb"
) -> NDArray[np.float64]:
    """p-value of H: R_C > ``budget`` from S = Σ_j F_j over ``m`` clusters (see the module docstring).

    Vectorised over ``cluster_sum``; ``n_rows`` sets the rounding margin η.
    """
    if pvalue not in CLUSTER_PVALUES:
        raise CTDInputError(
            f"pvalue {pvalue!r}: with clusters the losses are fractions in [0, 1], so the p-value must "
            f"be one for bounded means: {', '.join(CLUSTER_PVALUES)} (the exact binomial needs 0/1 rows)"
        )
    if isinstance(m, bool) or not isinstance(m, int | np.integer) or m < 1:
        raise CTDInputError(f"the number of clusters must be a positive integer, got {m!r}")
    b = check_open_unit("budget", budget)
    s = np.asarray(cluster_sum, dtype=np.float64)
    if s.size and (s.min() < 0 or s.max() > m * (1 + 1e-12)):
        raise CTDInputError(f"cluster sums must lie in [0, m] = [0, {m}]")
    s_up = np.minimum(s + rounding_margin(s, n_rows), float(m))
    p = np.ones_like(s_up)
    if pvalue in ("hoeffding", "hb"):
        t = np.minimum(s_up / m, b)
        kl = special.rel_entr(t, b) + special.rel_entr(1.0 - t, 1.0 - b)
        p = np.minimum(p, np.exp(-m * kl))
    if pvalue in ("bentkus", "hb"):
        k = np.minimum(np.ceil(s_up), m)
        p = np.minimum(p, np.e * special.bdtr(k, m, b))
    return np.asarray(np.clip(p, 0.0, 1.0), dtype=np.float64)


def _cluster_codes(clusters: ArrayLike, n: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Integer cluster code per row and the size of each cluster; missing ids are an error."""
    c = np.asarray(clusters)
    if c.ndim != 1 or c.size != n:
        raise CTDInputError(f"clusters must have one id per score ({n}), got shape {c.shape}")
    if c.dtype.kind == "f" and np.isnan(c).any():
        raise CTDInputError(
            f"clusters: missing cluster id (NaN) at row {int(np.flatnonzero(np.isnan(c))[0])}"
        )
    if c.dtype.kind == "O":
        none = np.flatnonzero(np.equal(c, np.array(None, dtype=object)))
        if none.size:
            raise CTDInputError(f"clusters: missing cluster id (None) at row {int(none[0])}")
        c = c.astype(str)
    if c.dtype.kind in "UT":
        bad = np.flatnonzero(c == "")
        if bad.size:
            raise CTDInputError(f"clusters: missing (empty) cluster id at row {int(bad[0])}")
    _, codes, sizes = np.unique(c, return_inverse=True, return_counts=True)
    return codes.astype(np.int64).ravel(), sizes.astype(np.int64)


@dataclass(frozen=True)
class ClusterCalibration(Calibration):
    """A budget calibration with clusters as the sampling unit (immutable).

    Adds ``cluster_sums`` (S(τ) = Σ_j F_j(τ) of each tested threshold, in test order),
    ``n_clusters`` (m) and ``cluster_column`` (the table column, when known). ``empirical_rates`` are
    the row rates K(τ)/n, as for every calibration; the p-values come from the cluster sums.
    """

    cluster_sums: NDArray[np.float64] = field(default_factory=lambda: np.empty(0))
    n_clusters: int = 0
    cluster_column: str | None = None

    @property
    def guarantee(self) -> str:
        if math.isinf(self.threshold):
            return (
                f"Nothing could be certified from m = {self.n_clusters} calibration clusters "
                f"({self.n} rows), so the cascade fails closed: τ = +∞, the expert is never called."
            )
        return (
            f"With probability at least {1 - self.delta:.3g} over the draw of the m = "
            f"{self.n_clusters} calibration clusters ({self.n} rows), the cluster-averaged delegation "
            f"rate E[F_J] is at most {self.budget:.3g}, where F_J is the fraction of a new cluster's "
            f"rows with d(X) > {self.threshold:.6g} and every cluster weighs the same. Assumes the "
            "clusters (not the rows) are i.i.d. draws from the deployment's population of clusters; "
            "rows within a cluster may be dependent. It equals the row-level rate when cluster sizes "
            "are equal or unrelated to the scores; it says nothing under distribution shift."
        )

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["n_clusters"] = self.n_clusters
        out["cluster_column"] = self.cluster_column
        for row, s in zip(out["tested"], self.cluster_sums, strict=True):
            row["cluster_sum"] = float(s)
        return out


def calibrate_budget_clustered(
    scores: ArrayLike,
    clusters: ArrayLike,
    budget: float,
    delta: float,
    *,
    pvalue: str = "hb",
    cluster_column: str | None = None,
) -> ClusterCalibration:
    """Certify τ with cluster-averaged delegation rate ≤ ``budget`` with probability ≥ 1 − ``delta``.

    Parameters
    ----------
    scores : array_like, shape (n,)
        DV scores of the calibration rows (finite).
    clusters : array_like, shape (n,)
        Cluster id of each row (any hashable scalars; no missing ids).
    budget, delta : float in (0, 1)
        Budget on the cluster-averaged rate and the allowed probability of violating it.
    pvalue : {"hb", "hoeffding", "bentkus"}
        p-value for a [0, 1]-bounded mean (Hoeffding–Bentkus by default).
    cluster_column : str or None
        Recorded on the result (the table column the ids came from).

    Returns
    -------
    ClusterCalibration
        Full grid, fixed-sequence in descending τ; the smallest certified τ, or +∞ (fail closed).
        The guarantee and its assumption are in the module docstring.
    """
    s = as_finite_1d("scores", scores)
    b = check_open_unit("budget", budget)
    d = check_open_unit("delta", delta)
    n = int(s.size)
    codes, sizes = _cluster_codes(clusters, n)
    m = int(sizes.size)
    order = np.argsort(-s, kind="stable")
    desc = s[order]
    weights = 1.0 / sizes[codes[order]]
    cum = np.concatenate(([0.0], np.cumsum(weights)))  # cum[K] = S of the K largest rows
    first = np.ones(n, dtype=bool)
    np.not_equal(desc[1:], desc[:-1], out=first[1:])
    grid = desc[first]  # distinct scores, descending (test order)
    # K(v) = #{d > v} = index of v's first occurrence in descending order
    counts = np.flatnonzero(first).astype(np.int64)
    sums = cum[counts]
    pvals = cluster_pvalue(sums, m, b, n, pvalue)
    bad = pvals > d
    n_ok = int(np.argmax(bad)) if bad.any() else int(grid.size)  # fixed sequence: a prefix
    rejected = np.zeros(grid.size, dtype=bool)
    rejected[:n_ok] = True
    tau = float(grid[n_ok - 1]) if n_ok else math.inf
    reason = None
    if not n_ok:
        p0 = float(cluster_pvalue(np.zeros(1), m, b, n, pvalue)[0])
        reason = (
            f"no threshold certified: with m = {m} clusters even a threshold above every score has "
            f"p-value {p0:.3g} > delta = {d:g}; more clusters or a larger budget/delta is needed"
        )
    return ClusterCalibration(
        threshold=tau,
        budget=b,
        delta=d,
        procedure="fixed_sequence",
        pvalue_kind=cluster_pvalue_kind(pvalue),
        n=n,
        thresholds=grid,
        pvalues=pvals,
        certified=rejected,
        empirical_rates=counts / n,
        reason=reason,
        method="budget_only_cluster",
        cluster_sums=sums,
        n_clusters=m,
        cluster_column=cluster_column,
    )


@dataclass(frozen=True)
class ClusterDiagnostic:
    """Intra-cluster correlation of the scores' ranks (one-way ANOVA) and what it implies."""

    n_clusters: int
    mean_size: float
    icc: float
    design_effect: float
    f_pvalue: float

    @property
    def correlated(self) -> bool:
        """Design effect ≥ :data:`DEFF_WARN` and F-test p ≤ :data:`F_PVALUE_WARN`."""
        return self.design_effect >= DEFF_WARN and self.f_pvalue <= F_PVALUE_WARN

    def message(self, what: str = "rows") -> str:
        """The warning: the group effect found, and what it means under each sampling design."""
        return (
            f"{what} sharing a group have correlated scores (intra-cluster correlation of score "
            f"ranks {self.icc:.3f}, design effect {self.design_effect:.2f} over {self.n_clusters} "
            f"groups, F-test p = {self.f_pvalue:.2g}). The data cannot tell which of two designs "
            "produced this: if whole groups (conversations, users, sessions) were sampled into "
            "calibration, the rows are not independent and the row-level certificate's level can "
            "exceed δ: set `calibration.cluster: COLUMN` to certify with groups as the sampling "
            "unit; if each row was drawn independently from a mixture of groups (e.g. sources, "
            "rows split at random one by one), the row-level certificate is valid: declare "
            "`calibration.groups: strata`"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_clusters": self.n_clusters,
            "mean_size": self.mean_size,
            "icc": self.icc,
            "design_effect": self.design_effect,
            "f_pvalue": self.f_pvalue,
            "correlated": self.correlated,
        }


def cluster_correlation(scores: ArrayLike, clusters: ArrayLike) -> ClusterDiagnostic:
    """ICC(1) of the scores' ranks by cluster, the design effect 1 + (s₀ − 1)·ICC, and the F test.

    One-way ANOVA on ranks (robust to the score scale): MSB and MSW with m groups and n rows,
    s₀ = (n − Σ s_j² / n) / (m − 1) (unequal sizes), ICC = (MSB − MSW) / (MSB + (s₀ − 1) MSW)
    truncated at 0, F = MSB / MSW on (m − 1, n − m) degrees of freedom. O(n log n).
    """
    s = as_finite_1d("scores", scores)
    n = int(s.size)
    codes, sizes = _cluster_codes(clusters, n)
    m = int(sizes.size)
    if m < 2 or m == n:
        return ClusterDiagnostic(m, n / max(m, 1), 0.0, 1.0, 1.0)
    from scipy import stats

    r = stats.rankdata(s)
    grand = r.mean()
    means = np.bincount(codes, weights=r, minlength=m) / sizes
    ssb = float(np.sum(sizes * (means - grand) ** 2))
    ssw = float(np.sum((r - means[codes]) ** 2))
    msb, msw = ssb / (m - 1), ssw / (n - m)
    s0 = (n - float(np.sum(sizes.astype(np.float64) ** 2)) / n) / (m - 1)
    if msw <= 0:
        icc, f_p = 1.0, 0.0
    else:
        icc = max(0.0, (msb - msw) / (msb + (s0 - 1) * msw))
        f_p = float(stats.f.sf(msb / msw, m - 1, n - m))
    return ClusterDiagnostic(m, n / m, icc, 1.0 + (s0 - 1.0) * icc, f_p)

"""Certificates: the calibration result plus its provenance, as versioned, strict JSON.

A :class:`Certificate` holds one :class:`BudgetCertificate` per (expert, budget): the chosen
threshold τ (``+inf`` = never delegate, written as the string ``"inf"``), the guarantee in words,
every tested threshold with its p-value in test order, the Pareto front, and a reference sample of
the calibration scores for drift checks. Provenance: sha256 of the spec and of the score table,
package version, seed, timestamp and n per split.

:func:`~ctd_stats.certificate.checks.load_certificate` reads one back, checks its schema version and, on request, the hashes.
"""

from __future__ import annotations

import math
import os
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import numpy as np
from numpy.typing import ArrayLike
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from ctd_stats.certificate.reference import ScoreReference
from ctd_stats.certificate.seal import Integrity, deployment_key, seal
from ctd_stats.errors import CTDInputError
from ctd_stats.io import atomic_write_json, json_float
from ctd_stats.spec.calibration import GroupsDeclaration
from ctd_stats.stats.rule import delegate

#: The certificate format written by this package.
SCHEMA_VERSION: Final = "ctd.certificate/2"


def _parse_float(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("inf", "+inf", "infinity", "+infinity"):
            return math.inf
        if text in ("-inf", "-infinity"):
            return -math.inf
    return value


#: A float that may be ±inf; JSON carries infinities as the strings "inf" / "-inf".
ExtFloat = Annotated[
    float,
    BeforeValidator(_parse_float),
    PlainSerializer(json_float, return_type=float | str, when_used="json"),
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TestedThreshold(_Frozen):
    """One tested hypothesis "rate(τ) > budget" (in test order)."""

    __test__ = False  # not a pytest test class

    threshold: ExtFloat = Field(description="Candidate τ; delegation iff d(x) > τ.")
    pvalue: float = Field(description="p-value of the null 'risk(τ) > level' on the ht split.")
    rejected: bool = Field(description="Whether the null was rejected (τ certified).")
    ht_rate: float = Field(description="Empirical delegation rate on the hypothesis-testing split.")
    ht_count: int = Field(
        ge=0, description="Integer count of test rows with d > τ (the p-value is computed from it)."
    )
    opt_rate: float | None = Field(
        None, description="Delegation rate on the opt split (Pareto only)."
    )
    opt_error: float | None = Field(
        None, description="Cascade error on the opt split (Pareto only)."
    )
    cluster_sum: float | None = Field(
        None,
        description="Cluster certificates only: S(τ) = Σ_j F_j(τ), the sum over clusters of the "
        "fraction of each cluster's rows with d > τ (the p-value is computed from it).",
    )

    @model_serializer(mode="wrap")
    def _omit_absent_cluster_sum(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        if out.get("cluster_sum", "") is None:
            del out["cluster_sum"]
        return out


class FrontPoint(_Frozen):
    """A point of the (delegation rate, cascade error) Pareto front on the opt split."""

    threshold: ExtFloat
    opt_rate: float
    opt_error: float


class Randomization(_Frozen):
    """The randomised boundary step of a budget-only result (:mod:`ctd_stats.stats.randomized`)."""

    seed: int = Field(
        ge=0,
        description="What U was drawn from: the fixed seed, or the recorded operating-system entropy "
        "(a verifier replays U from it; it is not a seed to reuse).",
    )
    u: float = Field(ge=0, le=1, description="The uniform U drawn from the seed.")
    gamma: float = Field(
        ge=0, le=1, description="Probability of the extra step, (δ − F(k*)) / (F(k*+1) − F(k*))."
    )
    provenance: Literal["os_entropy", "fixed_seed"] | None = Field(
        default=None,
        description="`os_entropy`: U drawn afresh for this calibration (guarantee over data and U); "
        "`fixed_seed`: reproducibility mode, guarantee conditional on the seed. Absent in older "
        "certificates, which all used a fixed seed.",
    )
    conditional_level: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="P(violation | U) = F(k_U) on continuous scores at a boundary rate; above δ when "
        "U fell in the extra step.",
    )

    @model_serializer(mode="wrap")
    def _omit_absent(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Older certificates were sealed without these keys: keep their digest.
        out: dict[str, Any] = handler(self)
        for key in ("provenance", "conditional_level"):
            if out.get(key, "") is None:
                del out[key]
        return out


class BudgetCertificate(_Frozen):
    """The certified threshold for one expert and one budget."""

    expert: str
    budget: float
    delta: float
    method: Literal["ctd_pareto", "budget_only", "budget_only_cluster"]
    procedure: str
    pvalue_kind: str
    threshold: ExtFloat = Field(description="Certified τ; +inf means never delegate (fail closed).")
    certified: bool
    n_test: int = Field(ge=0, description="Rows the p-values were computed on (ht, or all).")
    reason: str | None = None
    guarantee: str = Field(description="The guarantee in words, with its assumption.")
    tested: list[TestedThreshold] = Field(default_factory=list)
    tested_scope: Literal["all", "fixed_sequence_boundary"] = Field(
        default="all",
        description="'all': every hypothesis in test order; 'fixed_sequence_boundary': budget-only "
        "fixed-sequence over a large grid, where only the last rejected and the first non-rejected "
        "hypothesis are listed (they determine every decision: p-values grow along the order).",
    )
    pareto_front: list[FrontPoint] | None = Field(
        default=None,
        description="The opt split's Pareto front in test order (for plots); a front longer than 1,000 "
        "points is thinned to 1,000 evenly spaced along it, end points kept.",
    )
    error_level: float | None = None
    joint: str | None = None
    split: Literal["none", "opt_ht"] | None = Field(
        None,
        description="Pareto only: `opt_ht` (front on opt, test on ht) or `none` (front, test and "
        "choice on the same n_test rows; budget-only guarantee). Absent in older certificates.",
    )
    score_reference: ScoreReference | None = None
    randomization: Randomization | None = Field(
        default=None, description="Set when the threshold comes from the randomised boundary step."
    )
    cluster: str | None = Field(
        default=None,
        description="budget_only_cluster: the table column whose values are the clusters (the "
        "sampling unit); the guarantee is on the cluster-averaged delegation rate.",
    )
    n_clusters: int | None = Field(
        default=None, ge=1, description="budget_only_cluster: number of calibration clusters m."
    )

    @model_serializer(mode="wrap")
    def _omit_absent_split(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Certificates written before `split` existed were sealed without the key: keep their digest.
        out: dict[str, Any] = handler(self)
        for key in ("split", "cluster", "n_clusters"):
            if out.get(key, "") is None:
                del out[key]
        return out

    def delegate(self, scores: ArrayLike) -> np.ndarray:
        """Decisions of the deployed rule :func:`ctd_stats.stats.rule.delegate` for this entry."""
        return delegate(scores, self.threshold)


class Certificate(_Frozen):
    """A calibration certificate (all budgets, all experts) with provenance."""

    schema_version: Literal["ctd.certificate/2"] = SCHEMA_VERSION
    cascade: str
    created_at: str = Field(description="ISO-8601 UTC timestamp.")
    package_version: str
    seed: int
    spec_sha256: str | None = None
    data_sha256: str | None = None
    n: dict[str, int] = Field(description="Rows per split of the score table.")
    assumption: str
    groups: GroupsDeclaration | None = Field(
        default=None,
        description="The spec's declaration of what the rows' groups are (`calibration.groups`; "
        "`clusters` when `calibration.cluster` is set): an assumption the data cannot check. "
        "Absent in older certificates (written before the declaration existed).",
    )
    results: list[BudgetCertificate]
    integrity: Integrity | None = Field(
        default=None, description="Digest or HMAC over every other field (written by to_json_dict)."
    )

    @model_serializer(mode="wrap")
    def _omit_absent_groups(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Older certificates were sealed without the key: keep their digest.
        out: dict[str, Any] = handler(self)
        if out.get("groups", "") is None:
            del out["groups"]
        return out

    def result(
        self,
        budget: float | None = None,
        expert: str | None = None,
        *,
        options: tuple[str, str] = ("budget=", "expert="),
    ) -> BudgetCertificate:
        """The unique result for ``budget`` and ``expert`` (either may be omitted if unambiguous).

        ``options`` names the two selectors in error messages (the CLI passes ``--budget``,
        ``--expert``).
        """
        hits = [
            r
            for r in self.results
            if (budget is None or math.isclose(r.budget, budget, rel_tol=0, abs_tol=1e-12))
            and (expert is None or r.expert == expert)
        ]
        if len(hits) == 1:
            return hits[0]
        have = ", ".join(f"(expert={r.expert!r}, budget={r.budget:g})" for r in self.results)
        want = f"budget={budget!r}, expert={expert!r}"
        if not hits:
            raise CTDInputError(f"certificate has no result for {want}; it has: {have or 'none'}")
        raise CTDInputError(
            f"certificate has {len(hits)} results for {want}; pass {options[0]} and/or "
            f"{options[1]} to pick one of: {have}"
        )

    @property
    def budgets(self) -> list[float]:
        return sorted({r.budget for r in self.results})

    @property
    def experts(self) -> list[str]:
        return list(dict.fromkeys(r.expert for r in self.results))

    @property
    def any_certified(self) -> bool:
        return any(r.certified for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON-ready dict (infinite thresholds as ``"inf"``), sealed.

        The ``integrity`` block is computed here over every other field: an HMAC-SHA256 when a
        deployment key is set (``CTD_CERTIFICATE_KEY`` / ``CTD_CERTIFICATE_KEY_FILE``), else a
        sha256 digest (see :mod:`ctd_stats.certificate.seal` for what each protects against).
        """
        content = self.model_dump(mode="json", exclude={"integrity"})
        content["integrity"] = seal(content, deployment_key()).model_dump(mode="json")
        return content

    def to_json_dict(self) -> dict[str, Any]:
        """Deprecated alias of :meth:`to_dict` (0.1 name)."""
        warnings.warn(
            "Certificate.to_json_dict is deprecated; use Certificate.to_dict",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.to_dict()

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the certificate atomically as indented JSON."""
        return atomic_write_json(path, self.to_dict())


def utc_now() -> str:
    """The current time as ISO-8601 UTC (seconds precision)."""
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


ASSUMPTION = (
    "The calibration rows and the inputs seen in deployment are i.i.d. (exchangeable) draws from "
    "one distribution, and the DV score was fitted on data disjoint from the calibration rows. "
    "Nothing is guaranteed under distribution shift; audit deployment logs to check."
)
_DISJOINT_AND_SHIFT = (
    "The DV score was fitted on data disjoint from the calibration rows. Nothing is guaranteed "
    "under distribution shift (a change in the mixture of groups included); audit deployment logs "
    "to check."
)


def assumption_text(groups: GroupsDeclaration = "unknown", cluster: str | None = None) -> str:
    """The certificate's assumption for a ``calibration.groups`` declaration (see the spec field).

    ``unknown``: :data:`ASSUMPTION` (i.i.d. rows). ``strata``: the same i.i.d. rows, said to be
    independent draws from a mixture of groups. ``clusters``: the clusters of column ``cluster``,
    not the rows, are the i.i.d. sampling unit.
    """
    if groups == "strata":
        return (
            "The calibration rows and the inputs seen in deployment are i.i.d. (exchangeable) draws "
            "from one distribution: rows drawn independently from a mixture of groups (declared: "
            "groups are strata, not sampling clusters); rows of one group may have similar scores. "
            + _DISJOINT_AND_SHIFT
        )
    if groups == "clusters":
        column = f" (values of column {cluster!r})" if cluster else ""
        return (
            f"The calibration clusters{column} and the clusters seen in deployment are i.i.d. draws "
            "from one population of clusters (declared: groups are sampling clusters); rows within "
            "a cluster may be dependent. " + _DISJOINT_AND_SHIFT
        )
    return ASSUMPTION

"""The ``calibration:`` section of a cascade spec (what to certify and how), with its rules.

Split from :mod:`ctd_stats.spec` (which re-exports every name) to keep modules small.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from ctd_stats.spec.types import Budgets, OpenUnit, SpecModel
from ctd_stats.stats.pvalues import PValueKind

#: Procedures accepted by the calibration core.
Procedure = Literal["fixed_sequence", "bonferroni", "holm"]
JointRule = Literal["max_p", "bonferroni_split"]
CalibrationSplit = Literal["none", "opt_ht"]
#: What the table's groups are for the sampling assumption (``calibration.groups``).
GroupsDeclaration = Literal["unknown", "strata", "clusters"]


class CalibrationSpec(SpecModel):
    """What to certify and how."""

    budget: Budgets = Field(
        default=[0.3],
        description="Delegation budget(s): the certified P(d(X) > τ) ≤ budget. One number or a list.",
    )
    delta: OpenUnit = Field(
        default=0.1,
        description="δ: the guarantee holds with probability ≥ 1 − δ over the calibration data.",
    )
    procedure: Procedure = Field(
        default="fixed_sequence",
        description="Family-wise error control: fixed-sequence testing (descending τ; uniformly more "
        "powerful for these nested hypotheses) or Bonferroni/Holm (valid but weaker; a PowerWarning over "
        "the full grid). Budget-only and Pareto budget paths only: with `error_level`, `joint` decides.",
    )
    pvalue: PValueKind = Field(
        default="binomial",
        description="p-value: exact binomial, Hoeffding, Bentkus, or Hoeffding–Bentkus.",
    )
    pareto: bool = Field(
        default=True,
        description="true: Pareto testing (CTD) over delegation rate and cascade error (needs labels "
        "and both probabilities; `split` says on which rows the front is found). false: budget-only "
        "calibration on the `ht` rows (needs only `dv_score`).",
    )
    opt_fraction: OpenUnit = Field(
        default=0.3,
        description="With `pareto: true`, split `opt_ht` and no `opt` rows, this fraction of the `ht` "
        "rows is used for optimisation instead (seeded); also the opt share of `ctd run`'s repeated "
        "splits with `opt_ht`.",
    )
    error_level: OpenUnit | None = Field(
        default=None,
        description="Optional joint guarantee: cascade error ≤ this level as well as the budget.",
    )
    joint: JointRule = Field(
        default="bonferroni_split",
        description="How the two risks share δ when `error_level` is set: Bonferroni-split chains "
        "(one fixed-sequence chain per risk at δ/2; default, the more powerful in simulation), or one "
        "chain on the max of the two p-values ordered by opt p-values.",
    )
    split: CalibrationSplit | None = Field(
        default=None,
        description="Pareto calibration only. `none`: the Pareto front, its order and the choice are "
        "computed on all calibration rows (opt and ht together), the same rows the budget test uses; "
        "valid for the budget guarantee, which is monotone in τ. `opt_ht`: front on `opt`, test on `ht` "
        "(Pareto Testing proper; required with `error_level`). Default: `none` for budget-only "
        "certificates, `opt_ht` with `error_level`.",
    )

    randomize: bool | Annotated[int, Field(ge=0)] | None = Field(
        default=None,
        description="Optional randomised boundary step (budget-only, fixed-sequence, binomial): the "
        "level becomes exactly δ instead of below it at small n, so more of the budget is spent. "
        "`true`: U is drawn from operating-system entropy at every calibration (recorded in the "
        "certificate). An integer: a fixed seed, accepted only with `reproducible: true`, and the "
        "guarantee is then conditional on that seed. Default: off.",
    )
    reproducible: bool = Field(
        default=False,
        description="With an integer `randomize` seed: accept a guarantee conditional on the seed "
        "(the certificate and report say so, with the conditional level), in exchange for reruns "
        "that give the same threshold.",
    )

    @model_validator(mode="after")
    def _randomize_needs_budget_only_binomial(self) -> CalibrationSpec:
        on = self.randomize is not None and self.randomize is not False
        if on and (self.pareto or self.procedure != "fixed_sequence" or self.pvalue != "binomial"):
            raise ValueError(
                "calibration.randomize: the randomised boundary step exists for budget-only calibration "
                "(`pareto: false`) with `procedure: fixed_sequence` and `pvalue: binomial`"
            )
        fixed = on and self.randomize is not True
        if fixed and not self.reproducible:
            raise ValueError(
                f"calibration.randomize: a fixed seed ({self.randomize}) makes the guarantee conditional "
                "on the seed (rerunning the spec with it at every recalibration can violate the budget "
                "with probability above δ); write `randomize: true` to draw U from operating-system "
                "entropy, or add `reproducible: true` to accept the conditional guarantee"
            )
        if self.reproducible and not fixed:
            raise ValueError(
                "calibration.reproducible: only meaningful with an integer `randomize` seed"
            )
        return self

    cluster: str | None = Field(
        default=None,
        min_length=1,
        description="Column of the score table holding a cluster id (conversation, user, session) "
        "per row: certify with clusters, not rows, as the i.i.d. sampling unit (declares the groups "
        "sampling clusters: `groups: clusters`; for sources drawn row by row see `groups: strata`). "
        "The guarantee is then "
        "on the cluster-averaged delegation rate (every cluster weighs the same), with a "
        "Hoeffding–Bentkus p-value of the per-cluster delegation fractions (`pvalue: hb` by default; "
        "`hoeffding` or `bentkus` also valid). Budget-only (`pareto: false`), fixed-sequence. The "
        "column is read as the table's group column. Default: rows are the sampling unit.",
    )

    groups: GroupsDeclaration = Field(
        default="unknown",
        description="What the rows' groups (the table's `group` column: sources, conversations, "
        "users) are, for the sampling assumption; an assumption the data cannot check (a group "
        "effect on the scores looks the same either way), recorded in the certificate. `strata`: "
        "every calibration row and every deployment input is an independent draw from one mixture "
        "of groups (e.g. a pool split into calibration and evaluation at random row by row, "
        "whatever the group); rows of one group may have similar scores and the row-level "
        "certificate is still valid, so no ClusterCorrelationWarning. `clusters`: groups were "
        "sampled whole (a conversation, user or session enters calibration with all its rows), so "
        "rows are dependent and a row-level level can exceed δ; declared by setting `cluster` "
        "(which implies it; `groups: clusters` is accepted only next to `cluster`). `unknown` "
        "(default): a ClusterCorrelationWarning when the groups' scores are correlated.",
    )

    @model_validator(mode="after")
    def _groups_agree_with_cluster(self) -> CalibrationSpec:
        if self.groups == "strata" and self.cluster is not None:
            raise ValueError(
                f"calibration.groups: `strata` declares that rows were drawn independently from a "
                f"mixture of groups, but `cluster: {self.cluster}` certifies with clusters sampled "
                "whole; keep `cluster` (groups sampled whole) or `groups: strata` (rows drawn one by "
                "one), not both"
            )
        if self.groups == "clusters" and self.cluster is None:
            raise ValueError(
                "calibration.groups: `clusters` declares that groups were sampled whole, so a "
                "row-level certificate is not valid for these rows; set `calibration.cluster: "
                "COLUMN` (the column holding the cluster id) to certify with clusters as the sampling "
                "unit (it implies `groups: clusters`)"
            )
        return self

    @property
    def groups_declared(self) -> GroupsDeclaration:
        """The declaration in force: ``clusters`` whenever ``cluster`` is set, else ``groups``."""
        return "clusters" if self.cluster is not None else self.groups

    @model_validator(mode="after")
    def _cluster_needs_budget_only(self) -> CalibrationSpec:
        if self.cluster is None:
            return self
        if self.pareto or self.procedure != "fixed_sequence":
            raise ValueError(
                "calibration.cluster: cluster-level certification exists for budget-only calibration "
                "(`pareto: false`) with `procedure: fixed_sequence`"
            )
        if self.randomize is not None and self.randomize is not False:
            raise ValueError("calibration.cluster: the randomised boundary step is for i.i.d. rows")
        if self.pvalue == "binomial" and "pvalue" in self.model_fields_set:
            raise ValueError(
                "calibration.pvalue: the exact binomial p-value needs 0/1 losses of i.i.d. rows; with "
                "`cluster` the losses are per-cluster fractions: use hb (default), hoeffding or bentkus"
            )
        return self

    @property
    def cluster_pvalue(self) -> str:
        """The p-value the cluster method uses: ``hb`` unless another bounded-mean one is set."""
        return "hb" if self.pvalue == "binomial" else self.pvalue

    @property
    def cluster_columns(self) -> dict[str, str]:
        """Column-map override that reads the cluster column as the table's group column."""
        return {"group": self.cluster} if self.cluster else {}

    @property
    def randomize_seed(self) -> tuple[bool, int | None]:
        """``(on, seed)``: whether the randomised step runs, and its fixed seed (None: OS entropy)."""
        if self.randomize is None or self.randomize is False:
            return False, None
        if self.randomize is True:
            return True, None
        return True, int(self.randomize)

    @model_validator(mode="after")
    def _opt_fraction_needs_pareto(self) -> CalibrationSpec:
        if "opt_fraction" in self.model_fields_set and not self.pareto:
            raise ValueError(
                "calibration.opt_fraction: applies only with `pareto: true` (budget-only calibration "
                "uses no opt rows, so it would be ignored); remove it or set `pareto: true`"
            )
        return self

    @model_validator(mode="after")
    def _split_needs_budget_only(self) -> CalibrationSpec:
        if self.split == "none" and self.error_level is not None:
            raise ValueError(
                "calibration.split: `none` certifies the budget only; a joint guarantee "
                "(`error_level`) needs `split: opt_ht` (or leave `split` unset)"
            )
        return self

    @property
    def effective_split(self) -> CalibrationSplit:
        """The split used: the explicit `split`, else `none` (budget only) or `opt_ht` (`error_level`)."""
        if self.split is not None:
            return self.split
        return "none" if self.error_level is None else "opt_ht"

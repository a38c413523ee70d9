"""The ``simulation:`` section of a cascade spec: which population ``ctd simulate`` draws from.

These are *specs* of populations (validated YAML); the populations themselves, which draw samples,
are :class:`ctd_stats.stats.simulate.Population` subclasses built from them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Discriminator, Field, Tag, model_validator

from ctd_stats.limits import MAX_TRIALS
from ctd_stats.spec.types import (
    Budgets,
    FiniteFloat,
    SpecModel,
    nonempty,
    unique_items,
)

Distribution = Literal["uniform", "normal", "beta", "lognormal", "discrete", "point_mass"]

#: Parameters each parametric distribution takes, with defaults (as in
#: :func:`ctd_stats.stats.simulate.make_population`).
DISTRIBUTION_PARAMS: dict[str, dict[str, Any]] = {
    "uniform": {},
    "normal": {"loc": 0.0, "scale": 1.0},
    "beta": {"a": 2.0, "b": 5.0},
    "lognormal": {"sigma": 1.0},
    "discrete": {"values": [0.0, 1.0, 2.0, 3.0], "probs": [0.4, 0.3, 0.2, 0.1]},
    "point_mass": {"atom": 0.0, "mass": 0.5},
}


class ParametricPopulation(SpecModel):
    """Scores drawn from a known distribution (the true rate is computed exactly)."""

    kind: Literal["parametric"] = Field(default="parametric", description="A parametric generator.")
    distribution: Distribution = Field(
        default="uniform",
        description="uniform on [0, 1]; normal(loc, scale); beta(a, b); lognormal(sigma); "
        "discrete(values, probs) — ties; point_mass(atom, mass): an atom of probability `mass` "
        "plus a standard normal.",
    )
    params: dict[str, FiniteFloat | list[FiniteFloat]] = Field(
        default_factory=dict, description="Distribution parameters; missing ones take defaults."
    )

    @model_validator(mode="after")
    def _check_params(self) -> ParametricPopulation:
        allowed = DISTRIBUTION_PARAMS[self.distribution]
        unknown = sorted(set(self.params) - set(allowed))
        if unknown:
            expected = ", ".join(allowed) if allowed else "no parameters"
            raise ValueError(
                f"unknown parameter(s) {', '.join(unknown)} for {self.distribution} (expected: {expected})"
            )
        p = self.resolved_params()
        for key, default in allowed.items():
            if isinstance(default, list) != isinstance(p[key], list):
                kind = "a list of numbers" if isinstance(default, list) else "a number"
                raise ValueError(f"params.{key}: expected {kind}")
        checks = {
            "normal": (p.get("scale", 1) > 0, "params.scale: expected a positive number"),
            "beta": (p.get("a", 1) > 0 and p.get("b", 1) > 0, "params: expected a > 0 and b > 0"),
            "lognormal": (p.get("sigma", 1) > 0, "params.sigma: expected a positive number"),
            "point_mass": (
                0 <= p.get("mass", 0.5) <= 1,
                "params.mass: expected a number in [0, 1]",
            ),
        }
        ok, message = checks.get(self.distribution, (True, ""))
        if not ok:
            raise ValueError(message)
        if self.distribution == "discrete":
            values, probs = p["values"], p["probs"]
            if len(values) != len(probs) or not values:
                raise ValueError(
                    "params: expected `values` and `probs` of the same, non-zero length"
                )
            if any(q < 0 for q in probs) or abs(sum(probs) - 1.0) > 1e-6:
                raise ValueError("params.probs: expected non-negative probabilities summing to 1")
        return self

    def resolved_params(self) -> dict[str, Any]:
        """Parameters with defaults filled in."""
        return {**DISTRIBUTION_PARAMS[self.distribution], **self.params}


class TablePopulation(SpecModel):
    """The score table's DV scores, resampled with replacement (the table is the population)."""

    kind: Literal["table"] = Field(default="table", description="Resample the score table.")
    splits: list[Literal["train", "dev", "opt", "ht", "eval", "pool"]] | None = Field(
        default=None, description="Which splits' rows form the population (default: all rows)."
    )
    expert: str | None = Field(
        default=None, description="Whose DV score (default: the first expert)."
    )


def _population_kind(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("kind", "parametric"))
    return str(getattr(value, "kind", "parametric"))


PopulationSpec = Annotated[
    Annotated[ParametricPopulation, Tag("parametric")] | Annotated[TablePopulation, Tag("table")],
    Discriminator(
        _population_kind,
        custom_error_type="population_kind",
        custom_error_message="expected `kind: parametric` or `kind: table`",
    ),
]


class SimulationSpec(SpecModel):
    """Checking the guarantee in simulation: many calibration draws from a known population."""

    population: PopulationSpec = Field(
        default_factory=ParametricPopulation,
        description="Where scores come from: `kind: parametric` or `kind: table`.",
    )
    trials: int = Field(
        default=2000,
        ge=1,
        le=MAX_TRIALS,
        description="Simulated calibration sets per setting (at most 10,000,000).",
    )
    sizes: Annotated[list[Annotated[int, Field(ge=1)]], AfterValidator(nonempty)] = Field(
        default=[1000], description="Calibration set sizes n to simulate."
    )
    budgets: Budgets | None = Field(
        default=None, description="Budgets to simulate (default: `calibration.budget`)."
    )
    procedures: Annotated[
        list[Literal["fixed_sequence", "bonferroni"]],
        AfterValidator(nonempty),
        AfterValidator(unique_items),
    ] = Field(
        default=["fixed_sequence", "bonferroni"],
        description="Procedures to compare (budget-only calibration, exact binomial p-value).",
    )
    seed: int = Field(default=0, ge=0, description="Seed of the simulation.")

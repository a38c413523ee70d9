"""The cascade spec: a typed YAML description of one Calibrate-Then-Delegate study.

A spec names the score table (or the ``probes:`` block that produces one), how rows without a
``split`` are assigned, the budgets and δ to certify, how to evaluate and simulate, and where to
write outputs. Every model forbids unknown keys and every field has a description and a default,
so ``ctd schema`` gives editors a complete JSON Schema.

:func:`load_spec` reads a YAML file safely and turns every validation error into one
:class:`~ctd_stats.errors.CTDInputError` line of the form
``spec.yaml:12:11: calibration.budget: expected a number strictly between 0 and 1 (got 1.5)``.
"""

from __future__ import annotations

import hashlib
import importlib
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from ctd_stats.errors import CTDInputError
from ctd_stats.yaml_loader import YAMLDocument, format_location, format_path, load_yaml

#: Version of the spec format understood by this package.
SPEC_VERSION = 1

#: Split names of the score table (see ``docs/score-table.md``).
SPLIT_NAMES: tuple[str, ...] = ("train", "dev", "opt", "ht", "eval")

#: Procedures and p-values accepted by the calibration core.
Procedure = Literal["fixed_sequence", "bonferroni", "holm"]
PValueKind = Literal["binomial", "hoeffding", "bentkus", "hb"]
JointRule = Literal["max_p", "bonferroni_split"]
OutputFormat = Literal["md", "html", "json"]


# --------------------------------------------------------------------------------- value types
def _open_unit(value: float) -> float:
    if not (0.0 < value < 1.0):  # also rejects NaN
        raise ValueError("expected a number strictly between 0 and 1")
    return float(value)


def _unit(value: float) -> float:
    if not (0.0 <= value <= 1.0):
        raise ValueError("expected a number between 0 and 1 (inclusive)")
    return float(value)


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("expected a finite number")
    return float(value)


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, int | float) and not isinstance(value, bool) else value


def _unique(values: list[Any]) -> list[Any]:
    seen: set[Any] = set()
    for v in values:
        if v in seen:
            raise ValueError(f"expected distinct values ({v!r} appears twice)")
        seen.add(v)
    return values


def _nonempty(values: list[Any]) -> list[Any]:
    if not values:
        raise ValueError("expected at least one value")
    return values


def _name(value: str) -> str:
    if not value or not all(c.isalnum() or c in "-_." for c in value):
        raise ValueError("expected a non-empty name of letters, digits, '-', '_' or '.'")
    return value


#: A number in the open interval (0, 1): budgets, δ, fractions of a pool.
OpenUnit = Annotated[
    float,
    AfterValidator(_open_unit),
    WithJsonSchema({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}),
]
#: A number in the closed interval [0, 1].
Unit = Annotated[
    float, AfterValidator(_unit), WithJsonSchema({"type": "number", "minimum": 0, "maximum": 1})
]
FiniteFloat = Annotated[float, AfterValidator(_finite), WithJsonSchema({"type": "number"})]
Name = Annotated[
    str, AfterValidator(_name), WithJsonSchema({"type": "string", "pattern": r"^[A-Za-z0-9_.\-]+$"})
]
#: One budget or a list of budgets; always a list after validation.
Budgets = Annotated[
    list[OpenUnit],
    BeforeValidator(_as_list),
    AfterValidator(_nonempty),
    AfterValidator(_unique),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                {
                    "type": "array",
                    "items": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                    "minItems": 1,
                },
            ]
        }
    ),
]


class _Model(BaseModel):
    """Base of every spec model: frozen-free, strict types, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_default=True)


# ------------------------------------------------------------------------------------ sections
class CascadeInfo(_Model):
    """What the cascade is."""

    name: Name = Field(
        default="cascade", description="Short name; used in reports and certificates."
    )
    description: str = Field(default="", description="Free text shown at the top of reports.")


class ColumnMap(_Model):
    """Which table column holds each documented field (see ``docs/score-table.md``)."""

    id: str = Field(
        default="id", description="Row identifier (optional in the table; row number if absent)."
    )
    split: str = Field(
        default="split",
        description="Split of each row: train, dev, opt, ht, eval, or empty to let `splits` assign "
        "it (optional column: absent means every row is unassigned).",
    )
    group: str = Field(
        default="group", description="Group of each row, for analysis only (optional column)."
    )
    label: str = Field(
        default="label", description="Ground truth, 0/1 with unsafe = 1 (may be missing)."
    )
    probe_prob: str = Field(default="probe_prob", description="Probe probability p(x) of 'unsafe'.")
    expert_prob: str = Field(
        default="expert_prob",
        description="Expert probability b(x) of 'unsafe' (missing where not run).",
    )
    dv_score: str = Field(
        default="dv_score", description="Delegation-value score d(x); delegate iff d > τ."
    )


class ExpertColumns(_Model):
    """Columns of one expert in a multi-expert table (defaults: ``<column>__<expert name>``)."""

    expert_prob: str | None = Field(
        default=None,
        description="Column of this expert's probability; default `expert_prob__<name>`.",
    )
    dv_score: str | None = Field(
        default=None,
        description="Column of the DV score for this expert; default `dv_score__<name>`.",
    )


class DataSpec(_Model):
    """The score table: one row per input."""

    table: str | None = Field(
        default=None,
        description="Path of the score table (Parquet or CSV), relative to the spec file. With a "
        "`probes:` block this is where the generated table is written.",
    )
    format: Literal["auto", "parquet", "csv"] = Field(
        default="auto", description="Table format; `auto` decides by suffix (.parquet/.pq or .csv)."
    )
    columns: ColumnMap = Field(
        default_factory=ColumnMap, description="Mapping of documented fields to table columns."
    )
    experts: dict[Name, ExpertColumns | None] | None = Field(
        default=None,
        description="Several experts in one table: `{name: {expert_prob: col, dv_score: col}}`. "
        "Absent: one expert named `expert` using `columns.expert_prob` and `columns.dv_score` "
        "(or, if the table has `dv_score__<name>` columns and no `dv_score`, those experts).",
    )


class SplitsSpec(_Model):
    """How rows whose ``split`` is empty are assigned; rows that carry a split keep it."""

    dev: Unit = Field(default=0.0, description="Fraction of unassigned rows sent to `dev`.")
    opt: Unit = Field(default=0.15, description="Fraction sent to `opt` (Pareto optimisation).")
    ht: Unit = Field(default=0.35, description="Fraction sent to `ht` (hypothesis testing).")
    eval: Unit = Field(default=0.5, description="Fraction sent to `eval` (held-out evaluation).")
    seed: int = Field(
        default=0, ge=0, description="Seed of the random assignment and of calibration."
    )

    @model_validator(mode="after")
    def _fractions_sum(self) -> SplitsSpec:
        total = self.dev + self.opt + self.ht + self.eval
        if total > 1.0 + 1e-9:
            raise ValueError(
                f"expected dev + opt + ht + eval ≤ 1 (got {total:.6g}); the rest stays unused"
            )
        return self


class CalibrationSpec(_Model):
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
        description="Family-wise error control: fixed-sequence testing (descending τ) or Bonferroni/Holm.",
    )
    pvalue: PValueKind = Field(
        default="binomial",
        description="p-value: exact binomial, Hoeffding, Bentkus, or Hoeffding–Bentkus.",
    )
    pareto: bool = Field(
        default=True,
        description="true: Pareto testing (CTD) over delegation rate and cascade error, optimised on "
        "`opt` and tested on `ht` (needs labels and both probabilities). false: budget-only "
        "calibration on the `ht` rows (needs only `dv_score`).",
    )
    opt_fraction: OpenUnit = Field(
        default=0.3,
        description="With `pareto: true` and no `opt` rows, this fraction of the `ht` rows is used "
        "for optimisation instead (seeded).",
    )
    error_level: OpenUnit | None = Field(
        default=None,
        description="Optional joint guarantee: cascade error ≤ this level as well as the budget.",
    )
    joint: JointRule = Field(
        default="max_p",
        description="How the two risks share δ when `error_level` is set: max of p-values, or "
        "Bonferroni-split chains.",
    )


class EvaluationSpec(_Model):
    """Repeated random calibration/evaluation splits (used by ``ctd run``)."""

    repeats: int = Field(
        default=200, ge=1, description="Number of random calibration/evaluation splits."
    )
    batch_size: int = Field(
        default=128, ge=1, description="Batch size of the batch top-k baselines."
    )
    budgets: Budgets = Field(
        default=[0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5],
        description="Budget grid for curves against budget.",
    )


Distribution = Literal["uniform", "normal", "beta", "lognormal", "discrete", "point_mass"]

#: Parameters each parametric distribution takes, with defaults (as in
#: :func:`ctd_stats.simulate.make_population`).
DISTRIBUTION_PARAMS: dict[str, dict[str, Any]] = {
    "uniform": {},
    "normal": {"loc": 0.0, "scale": 1.0},
    "beta": {"a": 2.0, "b": 5.0},
    "lognormal": {"sigma": 1.0},
    "discrete": {"values": [0.0, 1.0, 2.0, 3.0], "probs": [0.4, 0.3, 0.2, 0.1]},
    "point_mass": {"atom": 0.0, "mass": 0.5},
}


class ParametricPopulation(_Model):
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


class TablePopulation(_Model):
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


Population = Annotated[
    Annotated[ParametricPopulation, Tag("parametric")] | Annotated[TablePopulation, Tag("table")],
    Discriminator(
        _population_kind,
        custom_error_type="population_kind",
        custom_error_message="expected `kind: parametric` or `kind: table`",
    ),
]


class SimulationSpec(_Model):
    """Checking the guarantee in simulation: many calibration draws from a known population."""

    population: Population = Field(
        default_factory=ParametricPopulation,
        description="Where scores come from: `kind: parametric` or `kind: table`.",
    )
    trials: int = Field(default=2000, ge=1, description="Simulated calibration sets per setting.")
    sizes: Annotated[list[Annotated[int, Field(ge=1)]], AfterValidator(_nonempty)] = Field(
        default=[1000], description="Calibration set sizes n to simulate."
    )
    budgets: Budgets | None = Field(
        default=None, description="Budgets to simulate (default: `calibration.budget`)."
    )
    procedures: Annotated[
        list[Literal["fixed_sequence", "bonferroni"]],
        AfterValidator(_nonempty),
        AfterValidator(_unique),
    ] = Field(
        default=["fixed_sequence", "bonferroni"],
        description="Procedures to compare (budget-only calibration, exact binomial p-value).",
    )
    seed: int = Field(default=0, ge=0, description="Seed of the simulation.")


class OutputsSpec(_Model):
    """Where results go."""

    directory: str = Field(
        default="ctd-output",
        description="Output directory, relative to the spec file; replaced atomically.",
    )
    formats: Annotated[list[OutputFormat], AfterValidator(_nonempty), AfterValidator(_unique)] = (
        Field(
            default=["md", "html", "json"],
            description="Report formats: md, html, and json (the report's data). The certificate "
            "(`certificate.json`) is always written.",
        )
    )


class CascadeSpec(_Model):
    """A Calibrate-Then-Delegate cascade: data, splits, calibration, evaluation, simulation, outputs."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        validate_default=True,
        title="CascadeSpec",
        json_schema_extra={"$comment": "ctd cascade spec; `ctd schema` prints this schema."},
    )

    version: Literal[1] = Field(default=1, description="Spec format version.")
    cascade: CascadeInfo = Field(default_factory=CascadeInfo, description="Name and description.")
    data: DataSpec = Field(default_factory=DataSpec, description="The score table.")
    probes: dict[str, Any] | None = Field(
        default=None,
        description="Produce the score table from texts with the probes layer (see the probes "
        "documentation); validated by `probes.spec.ProbesSpec` when the probes layer is installed.",
    )
    splits: SplitsSpec = Field(
        default_factory=SplitsSpec, description="Assignment of unsplit rows."
    )
    calibration: CalibrationSpec = Field(
        default_factory=CalibrationSpec, description="Budgets, δ and procedure."
    )
    evaluation: EvaluationSpec = Field(
        default_factory=EvaluationSpec, description="Repeated-split evaluation (`ctd run`)."
    )
    simulation: SimulationSpec = Field(
        default_factory=SimulationSpec,
        description="Guarantee check in simulation (`ctd simulate`).",
    )
    outputs: OutputsSpec = Field(
        default_factory=OutputsSpec, description="Output directory and formats."
    )

    _source: Path | None = PrivateAttr(None)
    _sha256: str | None = PrivateAttr(None)
    _probes_model: Any = PrivateAttr(None)

    @model_validator(mode="after")
    def _data_or_probes(self) -> CascadeSpec:
        if self.data.table is None and self.probes is None:
            raise ValueError("expected `data.table` (a score table) or a `probes:` block")
        return self

    # ----------------------------------------------------------------------------- helpers
    @property
    def source(self) -> Path | None:
        """The spec file this spec was loaded from (None when built in Python)."""
        return self._source

    @property
    def sha256(self) -> str | None:
        """sha256 of the spec file's bytes (None when built in Python)."""
        return self._sha256

    @property
    def base_dir(self) -> Path:
        """Directory that relative paths are resolved against (the spec file's directory)."""
        return self._source.parent if self._source is not None else Path.cwd()

    def table_path(self) -> Path | None:
        """Absolute path of the score table, or None if the spec names none."""
        if self.data.table is None:
            return None
        p = Path(os.path.expanduser(self.data.table))
        return p if p.is_absolute() else self.base_dir / p

    def output_dir(self) -> Path:
        """Absolute path of the output directory."""
        p = Path(os.path.expanduser(self.outputs.directory))
        return p if p.is_absolute() else self.base_dir / p

    @property
    def probes_spec(self) -> Any:
        """The ``probes:`` block as a ``probes.spec.ProbesSpec`` (or the raw dict without it)."""
        return self._probes_model if self._probes_model is not None else self.probes

    def simulation_budgets(self) -> list[float]:
        """Budgets simulated by ``ctd simulate`` (default: the calibration budgets)."""
        return list(self.simulation.budgets or self.calibration.budget)


# ------------------------------------------------------------------------------- probes hook
def _probes_spec_class() -> type[BaseModel] | None:
    """``probes.spec.ProbesSpec`` if the probes layer provides it, else None."""
    try:
        module = importlib.import_module("probes.spec")
    except ImportError:
        return None
    cls = getattr(module, "ProbesSpec", None)
    return cls if isinstance(cls, type) and issubclass(cls, BaseModel) else None


def spec_json_schema() -> dict[str, Any]:
    """The JSON Schema of :class:`CascadeSpec` (with the probes block's schema when available)."""
    schema = CascadeSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    probes_cls = _probes_spec_class()
    if probes_cls is not None:
        sub = probes_cls.model_json_schema(ref_template="#/$defs/{model}")
        defs = schema.setdefault("$defs", {})
        defs.update(sub.pop("$defs", {}))
        defs[probes_cls.__name__] = sub
        schema["properties"]["probes"] = {
            "anyOf": [{"$ref": f"#/$defs/{probes_cls.__name__}"}, {"type": "null"}],
            "default": None,
            "description": CascadeSpec.model_fields["probes"].description,
        }
    return schema


# ------------------------------------------------------------------------------ error format
def _allowed_keys(loc: Sequence[str | int]) -> list[str] | None:
    """Field names of the model at ``loc`` (for 'unknown key' messages)."""
    model: Any = CascadeSpec
    for seg in loc:
        if isinstance(seg, int):
            continue
        fields = getattr(model, "model_fields", None)
        if fields is None:
            return None
        if seg in fields:
            model = _first_model(fields[seg].annotation)
        elif seg in ("parametric", "table"):
            model = ParametricPopulation if seg == "parametric" else TablePopulation
        else:
            model = model  # a dict key (e.g. an expert name): keep the value model
        if model is None:
            return None
    fields = getattr(model, "model_fields", None)
    return list(fields) if fields else None


def _first_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _first_model(arg)
        if found is not None:
            return found
    return None


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def format_validation_error(
    exc: ValidationError, doc: YAMLDocument | None, file: str, prefix: tuple[str | int, ...] = ()
) -> str:
    """One line per error: ``file:line:col: field.path: what was expected (got X)``."""
    lines: list[tuple[tuple[int, int], str]] = []
    seen: set[str] = set()
    for err in exc.errors(include_url=False):
        loc = (*prefix, *err["loc"])
        etype = err["type"]
        if doc is not None:
            path, pos, _ = doc.resolve(loc, trailing_key=etype in ("missing", "extra_forbidden"))
        else:
            path, pos = tuple(loc), None
        if etype == "extra_forbidden":
            key = loc[-1]
            if doc is not None:
                pos = doc.key_position(path) or pos
            allowed = _allowed_keys(loc[:-1]) if not prefix else None
            hint = f" (expected one of: {', '.join(allowed)})" if allowed else ""
            what = f"unknown key {key!r}{hint}"
        elif etype == "missing":
            what = "required field is missing"
        else:
            msg = str(err["msg"])
            for lead in ("Value error, ", "Assertion failed, "):
                if msg.startswith(lead):
                    msg = msg[len(lead) :]
            if msg.startswith("Input should be "):
                msg = "expected " + msg[len("Input should be ") :]
                msg = re.sub(r"^expected (greater|less) than", r"expected a number \1 than", msg)
            what = msg
            if err.get("input") is not None and etype not in ("union_tag_invalid",):
                if not isinstance(err["input"], dict | list) or "type" in etype:
                    what += f" (got {_short(err['input'])})"
        where = f"{format_location(file, pos)}: " if pos is not None else f"{file}: "
        line = f"{where}{format_path(path)}: {what}"
        if line not in seen:
            seen.add(line)
            key_sort = (pos.line, pos.column) if pos is not None else (0, 0)
            lines.append((key_sort, line))
    lines.sort(key=lambda t: t[0])
    return "\n".join(text for _, text in lines)


# ----------------------------------------------------------------------------------- loading
def validate_spec_data(
    data: Any, *, doc: YAMLDocument | None = None, file: str = "<spec>"
) -> CascadeSpec:
    """Validate already-parsed spec data (a dict); errors become :class:`CTDInputError`."""
    if data is None:
        raise CTDInputError(f"{file}: the spec is empty (expected a mapping with `data:` etc.)")
    if not isinstance(data, dict):
        pos = doc.values.get(()) if doc is not None else None
        where = format_location(file, pos) if pos is not None else file
        raise CTDInputError(f"{where}: expected a mapping at the top level (got {_short(data)})")
    try:
        spec = CascadeSpec.model_validate(data)
    except ValidationError as exc:
        raise CTDInputError(format_validation_error(exc, doc, file)) from None
    if spec.probes is not None:
        probes_cls = _probes_spec_class()
        if probes_cls is not None:
            try:
                spec._probes_model = probes_cls.model_validate(spec.probes)
            except ValidationError as exc:
                raise CTDInputError(format_validation_error(exc, doc, file, ("probes",))) from None
    return spec


def load_spec(path: str | os.PathLike[str]) -> CascadeSpec:
    """Read a cascade spec from a YAML file.

    Parameters
    ----------
    path
        The spec file. Relative paths inside it resolve against its directory.

    Returns
    -------
    CascadeSpec
        The validated spec, with :attr:`CascadeSpec.source` and :attr:`CascadeSpec.sha256` set.

    Raises
    ------
    CTDInputError
        Missing file, malformed YAML, or a field that fails validation; the message names
        ``file:line:column`` and the field path and says what was expected.
    """
    p = Path(path)
    doc = load_yaml(p)
    spec = validate_spec_data(doc.data, doc=doc, file=str(p))
    spec._source = p.resolve()
    spec._sha256 = hashlib.sha256(p.read_bytes()).hexdigest()
    return spec

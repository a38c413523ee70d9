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
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from ctd_stats.errors import CTDInputError
from ctd_stats.limits import MAX_REPEATS
from ctd_stats.spec.blocks import block_model, register_block_model  # noqa: F401  (re-exported)
from ctd_stats.spec.calibration import (  # noqa: F401  (re-exported)
    CalibrationSpec,
    CalibrationSplit,
    JointRule,
    Procedure,
)
from ctd_stats.spec.errors import format_validation_error, short_text
from ctd_stats.spec.loader import YAMLDocument, format_location, load_yaml
from ctd_stats.spec.simulation import (
    ParametricPopulation,
    SimulationSpec,
    TablePopulation,
)
from ctd_stats.spec.types import (
    Budgets,
    Name,
    SpecModel,
    Unit,
    nonempty,
    unique_items,
)
from ctd_stats.table.score_table import SPLITS, ScoreTable

#: Version of the spec format understood by this package.
SPEC_VERSION = 1

#: Split names of the score table (see ``docs/score-table.md``).
SPLIT_NAMES: tuple[str, ...] = SPLITS

OutputFormat = Literal["md", "html", "json"]


# ------------------------------------------------------------------------------------ sections
class CascadeInfo(SpecModel):
    """What the cascade is."""

    name: Name = Field(
        default="cascade", description="Short name; used in reports and certificates."
    )
    description: str = Field(default="", description="Free text shown at the top of reports.")


class ColumnMap(SpecModel):
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


class ExpertColumns(SpecModel):
    """Columns of one expert in a multi-expert table (defaults: ``<column>__<expert name>``)."""

    expert_prob: str | None = Field(
        default=None,
        description="Column of this expert's probability; default `expert_prob__<name>`.",
    )
    dv_score: str | None = Field(
        default=None,
        description="Column of the DV score for this expert; default `dv_score__<name>`.",
    )


class DataSpec(SpecModel):
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


class SplitsSpec(SpecModel):
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


class EvaluationSpec(SpecModel):
    """Repeated random calibration/evaluation splits (used by ``ctd run``)."""

    repeats: int = Field(
        default=200,
        ge=1,
        le=MAX_REPEATS,
        description="Number of random calibration/evaluation splits (at most 100,000; `ctd run` "
        "prints its time estimate first).",
    )
    batch_size: int = Field(
        default=128, ge=1, description="Batch size of the batch top-k baselines."
    )
    budgets: Budgets = Field(
        default=[0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5],
        description="Budget grid for curves against budget.",
    )


class OutputsSpec(SpecModel):
    """Where results go."""

    directory: str = Field(
        default="ctd-output",
        description=(
            "Output directory, relative to the spec file; each file is written atomically and "
            "recorded in `manifest.json`; files the run did not write are never touched."
        ),
    )
    formats: Annotated[
        list[OutputFormat], AfterValidator(nonempty), AfterValidator(unique_items)
    ] = Field(
        default=["md", "html", "json"],
        description="Report formats: md, html, and json (the report's data). The certificate "
        "(`certificate.json`) is always written.",
    )


class CascadeSpec(SpecModel):
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
        return _normalised(self.base_dir, self.data.table)

    def output_dir(self) -> Path:
        """Absolute path of the output directory."""
        return _normalised(self.base_dir, self.outputs.directory)

    @property
    def probes_spec(self) -> Any:
        """The ``probes:`` block as its registered model (see :func:`register_block_model`), else the raw dict."""
        return self._probes_model if self._probes_model is not None else self.probes

    def load_table(self, *, require_file: bool = True) -> ScoreTable | None:
        """Read the score table this spec names, with its column map, and fill its calibration splits.

        Returns None when the spec names no table, or (with ``require_file=False``) when the file
        does not exist yet.

        Raises
        ------
        CTDInputError
            The table is missing (with a hint to ``ctd scores`` when a ``probes:`` block could build
            it) or invalid (see :func:`ctd_stats.table.score_table.read_score_table`).
        """
        from ctd_stats.table.score_table import (
            ColumnNames,
            ExpertColumnNames,
            fill_splits,
            read_score_table,
        )

        path = self.table_path()
        if path is None or (not path.exists() and not require_file):
            return None
        if not path.exists():
            hint = (
                " (run `ctd scores SPEC` to produce it from the `probes:` block)"
                if self.probes
                else ""
            )
            where = f"{self.source}: data.table: " if self.source is not None else ""
            raise CTDInputError(f"{where}score table {path} not found{hint}")
        c = self.data.columns
        experts = None
        if self.data.experts:
            experts = {
                name: ExpertColumnNames(
                    expert_prob=(ec.expert_prob if ec is not None and ec.expert_prob else "")
                    or f"{c.expert_prob}__{name}",
                    dv_score=(ec.dv_score if ec is not None and ec.dv_score else "")
                    or f"{c.dv_score}__{name}",
                )
                for name, ec in self.data.experts.items()
            }
        table = read_score_table(
            path,
            columns=ColumnNames(**{**c.model_dump(), **self.calibration.cluster_columns}),
            experts=experts,
            fmt=self.data.format,
            require_labels=self.calibration.pareto,
        )
        s = self.splits
        fractions = {"dev": s.dev, "opt": s.opt, "ht": s.ht, "eval": s.eval}
        return table.with_split(fill_splits(table.split, fractions, s.seed))

    def simulation_budgets(self) -> list[float]:
        """Budgets simulated by ``ctd simulate`` (default: the calibration budgets)."""
        return list(self.simulation.budgets or self.calibration.budget)


# ------------------------------------------------------------------------ plugin blocks
#: Models of optional top-level blocks supplied by plugins (e.g. ``probes`` by the probes layer).
def spec_json_schema() -> dict[str, Any]:
    """The JSON Schema of :class:`CascadeSpec` (with the probes block's schema when available)."""
    schema = CascadeSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    probes_cls = block_model("probes")
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
        raise CTDInputError(
            f"{where}: expected a mapping at the top level (got {short_text(data)})"
        )
    try:
        spec = CascadeSpec.model_validate(data)
    except ValidationError as exc:
        raise CTDInputError(
            format_validation_error(
                exc,
                doc,
                file,
                root=CascadeSpec,
                variants={"parametric": ParametricPopulation, "table": TablePopulation},
            )
        ) from None
    if spec.probes is not None:
        probes_cls = block_model("probes")
        if probes_cls is not None:
            try:
                # Relative paths inside the block (models, shard stores, ...) are resolved
                # against the spec file's folder, as data.table and outputs.directory are.
                base = str(Path(file).resolve().parent) if file != "<spec>" else None
                spec._probes_model = probes_cls.model_validate(
                    spec.probes, context={"base_dir": base}
                )
            except ValidationError as exc:
                raise CTDInputError(format_validation_error(exc, doc, file, ("probes",))) from None
    return spec


def _normalised(base: Path, text: str) -> Path:
    """``text`` (``~`` expanded) relative to ``base``, with ``..`` folded (``specs/../data/t.csv`` ->
    ``data/t.csv``) unless a symlink makes the folded path another file (then as written)."""
    p = Path(os.path.expanduser(text))
    joined = p if p.is_absolute() else base / p
    folded = Path(os.path.normpath(joined))
    if folded == joined or os.path.realpath(folded) != os.path.realpath(joined):
        return joined
    return folded


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

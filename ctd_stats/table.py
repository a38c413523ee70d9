"""The score table: reading, column mapping, validation and split assignment.

One row per input, with the columns documented in ``docs/score-table.md``. :func:`read_score_table`
reads Parquet or CSV, maps the spec's column names onto the documented fields, checks every value
(errors name the column, the file and the first bad row) and returns a :class:`ScoreTable` of plain
numpy arrays. :func:`assign_splits` fills empty ``split`` cells from the spec's fractions; rows that
carry a split keep it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ctd_stats.errors import CTDInputError

#: Valid values of the ``split`` column ("" = unassigned; "pool" = left unused by the splitter).
SPLITS: tuple[str, ...] = ("train", "dev", "opt", "ht", "eval")
UNASSIGNED = ""
POOL = "pool"
#: Parquet schema-metadata key holding per-expert cost metadata (JSON).
EXPERTS_METADATA_KEY = "ctd.experts"
DEFAULT_EXPERT = "expert"


@dataclass(frozen=True)
class ColumnNames:
    """Table column names of the documented fields (see :class:`ctd_stats.spec.ColumnMap`)."""

    id: str = "id"
    split: str = "split"
    group: str = "group"
    label: str = "label"
    probe_prob: str = "probe_prob"
    expert_prob: str = "expert_prob"
    dv_score: str = "dv_score"


@dataclass(frozen=True)
class ExpertColumnNames:
    """Columns of one expert."""

    expert_prob: str
    dv_score: str


@dataclass(frozen=True)
class ExpertScores:
    """One expert's columns as arrays (``expert_prob`` is NaN where the expert was not run)."""

    name: str
    dv_score: NDArray[np.float64]
    expert_prob: NDArray[np.float64] | None
    cost: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ScoreTable:
    """A validated score table.

    Attributes
    ----------
    path : Path or None
        The file read (None for tables built in memory).
    ids, split, group : ndarray of str
        Row ids, splits (``""`` = unassigned until :func:`assign_splits`), groups (None if absent).
    label, probe_prob : ndarray of float or None
        Labels (0/1, NaN = missing) and probe probabilities (NaN = missing); None if the column is
        absent.
    experts : dict
        Expert name -> :class:`ExpertScores`, in table order.
    sha256 : str or None
        sha256 of the file's bytes.
    """

    path: Path | None
    ids: NDArray[np.str_]
    split: NDArray[np.str_]
    group: NDArray[np.str_] | None
    label: NDArray[np.float64] | None
    probe_prob: NDArray[np.float64] | None
    experts: dict[str, ExpertScores]
    sha256: str | None = None

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def expert_names(self) -> list[str]:
        return list(self.experts)

    def expert(self, name: str | None = None) -> ExpertScores:
        """The named expert (default: the first)."""
        if name is None:
            return next(iter(self.experts.values()))
        try:
            return self.experts[name]
        except KeyError:
            raise CTDInputError(
                f"unknown expert {name!r} (the table has: {', '.join(self.experts)})"
            ) from None

    def mask(self, *splits: str) -> NDArray[np.bool_]:
        """Boolean mask of the rows in any of ``splits``."""
        return np.isin(self.split, list(splits))

    def counts(self) -> dict[str, int]:
        """Rows per split (only the splits present)."""
        names, counts = np.unique(self.split, return_counts=True)
        order = {s: i for i, s in enumerate((*SPLITS, POOL, UNASSIGNED))}
        pairs = sorted(
            zip(names.tolist(), counts.tolist(), strict=True), key=lambda t: order.get(t[0], 99)
        )
        return {(s or "unassigned"): int(c) for s, c in pairs}

    def with_split(self, split: NDArray[np.str_]) -> ScoreTable:
        """A copy with another ``split`` column."""
        return replace(self, split=np.asarray(split, dtype=str))

    def name(self) -> str:
        return str(self.path) if self.path is not None else "<table>"

    def require_labelled(self, mask: NDArray[np.bool_], expert: str | None, what: str) -> None:
        """Check that the masked rows have a label, a probe probability and the expert's probability."""
        exp = self.expert(expert)
        for col, values in (
            ("label", self.label),
            ("probe_prob", self.probe_prob),
            (f"expert_prob of expert {exp.name!r}", exp.expert_prob),
        ):
            if values is None:
                raise CTDInputError(
                    f"{self.name()}: {what} needs the column for {col}, which is absent"
                )
            bad = np.flatnonzero(mask & np.isnan(values))
            if bad.size:
                raise CTDInputError(
                    f"{self.name()}: {what} needs {col} on every row it uses; row {_row_ref(self, int(bad[0]))} "
                    f"has none ({bad.size} such rows)"
                )


def _row_ref(table: ScoreTable, i: int) -> str:
    return f"{i} (id {str(table.ids[i])!r})"


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def detect_format(path: Path, fmt: str = "auto") -> str:
    """``parquet`` or ``csv`` from the suffix (or the explicit ``fmt``)."""
    if fmt != "auto":
        return fmt
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".csv", ".txt"):
        return "csv"
    raise CTDInputError(
        f"{path}: cannot tell the table format from the suffix {suffix!r}; "
        "use .parquet or .csv, or set data.format"
    )


def _read_frame(path: Path, fmt: str, wanted: Iterable[str]) -> tuple[Any, dict[str, Any]]:
    """Read the wanted columns that exist; return (DataFrame, expert cost metadata)."""
    import pandas as pd

    costs: dict[str, Any] = {}
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            schema = pq.read_schema(path)
        except Exception as exc:  # pyarrow raises several types for non-Parquet bytes
            raise CTDInputError(f"{path}: not a readable Parquet file ({exc})") from None
        meta = schema.metadata or {}
        raw = meta.get(EXPERTS_METADATA_KEY.encode())
        if raw:
            try:
                parsed = json.loads(raw)
                costs = parsed if isinstance(parsed, dict) else {}
            except ValueError:
                costs = {}
        present = [c for c in dict.fromkeys(wanted) if c in schema.names]
        extra = [
            c for c in schema.names if "__" in c and c.startswith(("dv_score__", "expert_prob__"))
        ]
        cols = list(dict.fromkeys([*present, *extra]))
        frame = pq.read_table(path, columns=cols).to_pandas()
        frame.attrs["all_columns"] = list(schema.names)
        return frame, costs
    try:
        frame = pd.read_csv(
            path, dtype=str, keep_default_na=False, na_values=[], skipinitialspace=True
        )
    except pd.errors.EmptyDataError:
        raise CTDInputError(f"{path}: the CSV file is empty (expected a header row)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise CTDInputError(f"{path}: not a readable CSV file ({exc})") from None
    frame.attrs["all_columns"] = list(frame.columns)
    return frame, costs


_MISSING_STRINGS = {"", "na", "nan", "null", "none"}


def _numeric(frame: Any, col: str, path: Path, fmt: str) -> NDArray[np.float64]:
    """Column as float64; NaN for missing cells; error naming the first non-numeric cell."""
    import pandas as pd

    s = frame[col]
    if fmt == "csv" or s.dtype == object:
        text = s.astype(str).str.strip()
        missing = text.str.lower().isin(_MISSING_STRINGS) | s.isna()
        lowered = text.str.lower()
        text = text.mask(lowered == "true", "1").mask(lowered == "false", "0")
        values = pd.to_numeric(text.mask(missing, None), errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(np.isnan(values) & ~missing.to_numpy())
        if bad.size:
            i = int(bad[0])
            raise CTDInputError(
                f"{path}: column {col!r}: expected numbers, got {str(s.iloc[i])!r} at row {i}"
                + (f" (line {i + 2})" if fmt == "csv" else "")
            )
        return values
    try:
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        raise CTDInputError(f"{path}: column {col!r}: expected numbers (got {s.dtype})") from None


def _strings(frame: Any, col: str) -> NDArray[np.str_]:
    s = frame[col]
    return np.asarray(s.fillna("").astype(str).str.strip().to_numpy(), dtype=str)


def _where(path: Path, fmt: str, i: int, ids: NDArray[np.str_]) -> str:
    line = f", line {i + 2}" if fmt == "csv" else ""
    return f"row {i} (id {str(ids[i])!r}{line})"


def resolve_expert_columns(
    columns: ColumnNames,
    experts: Mapping[str, ExpertColumnNames | None] | None,
    available: Sequence[str],
) -> dict[str, ExpertColumnNames]:
    """Expert name -> its columns, applying the ``<column>__<name>`` defaults and auto-detection."""
    if experts:
        return {
            name: ExpertColumnNames(
                expert_prob=(cols.expert_prob if cols is not None else None)
                or f"{columns.expert_prob}__{name}",
                dv_score=(cols.dv_score if cols is not None else None)
                or f"{columns.dv_score}__{name}",
            )
            for name, cols in experts.items()
        }
    if columns.dv_score not in available:
        prefix = f"{columns.dv_score}__"
        found = [
            c[len(prefix) :] for c in available if c.startswith(prefix) and len(c) > len(prefix)
        ]
        if found:
            return {
                name: ExpertColumnNames(f"{columns.expert_prob}__{name}", f"{prefix}{name}")
                for name in found
            }
    return {DEFAULT_EXPERT: ExpertColumnNames(columns.expert_prob, columns.dv_score)}


def read_score_table(
    path: str | os.PathLike[str],
    *,
    columns: ColumnNames | None = None,
    experts: Mapping[str, ExpertColumnNames | None] | None = None,
    fmt: str = "auto",
    require_labels: bool = False,
) -> ScoreTable:
    """Read and validate a score table.

    Parameters
    ----------
    path
        Parquet or CSV file.
    columns
        Column names of the documented fields (default: the documented names).
    experts
        Multi-expert columns (``None``: one expert, or the ``dv_score__<name>`` columns if the table
        has no ``dv_score`` column).
    fmt
        ``"auto"`` (by suffix), ``"parquet"`` or ``"csv"``.
    require_labels
        Also require the ``label``, ``probe_prob`` and ``expert_prob`` columns (Pareto calibration).

    Raises
    ------
    CTDInputError
        Missing file or column, non-numeric values, NaN/inf in a DV score, labels other than 0/1,
        probabilities outside [0, 1], unknown split names, an empty table. The message names the
        column, the file and the first bad row.
    """
    p = Path(path)
    cols = columns or ColumnNames()
    if not p.exists():
        raise CTDInputError(f"{p}: score table not found")
    if p.is_dir():
        raise CTDInputError(f"{p}: is a directory, expected a score table file")
    kind = detect_format(p, fmt)
    base = [
        cols.id,
        cols.split,
        cols.group,
        cols.label,
        cols.probe_prob,
        cols.expert_prob,
        cols.dv_score,
    ]
    wanted = list(base)
    for spec in (experts or {}).values():
        if spec is not None:
            wanted += [c for c in (spec.expert_prob, spec.dv_score) if c]
    frame, costs = _read_frame(p, kind, wanted)
    available: list[str] = list(frame.attrs.get("all_columns", frame.columns))
    expert_cols = resolve_expert_columns(cols, experts, available)

    def need(col: str, role: str) -> None:
        if col not in frame.columns:
            shown = ", ".join(map(repr, available[:12])) + (" ..." if len(available) > 12 else "")
            raise CTDInputError(
                f"{p}: missing column {col!r} ({role}); the table has columns: {shown or 'none'}"
            )

    for name, ec in expert_cols.items():
        need(ec.dv_score, f"dv_score of expert {name!r}")
    if require_labels:
        need(cols.label, "label")
        need(cols.probe_prob, "probe_prob")
        for name, ec in expert_cols.items():
            need(ec.expert_prob, f"expert_prob of expert {name!r}")

    n = len(frame)
    if n == 0:
        raise CTDInputError(f"{p}: the score table has no rows")
    ids = _strings(frame, cols.id) if cols.id in frame.columns else np.arange(n).astype(str)
    if cols.id in frame.columns:
        uniq, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            dup = uniq[counts > 1][0]
            raise CTDInputError(
                f"{p}: column {cols.id!r}: duplicate id {str(dup)!r} (ids must be unique)"
            )

    split = _strings(frame, cols.split) if cols.split in frame.columns else np.full(n, UNASSIGNED)
    bad_split = np.flatnonzero(~np.isin(split, [*SPLITS, UNASSIGNED, POOL]))
    if bad_split.size:
        i = int(bad_split[0])
        raise CTDInputError(
            f"{p}: column {cols.split!r}: expected one of {', '.join(SPLITS)} or empty, got "
            f"{str(split[i])!r} at {_where(p, kind, i, ids)}"
        )
    group = _strings(frame, cols.group) if cols.group in frame.columns else None

    def probability(col: str) -> NDArray[np.float64] | None:
        if col not in frame.columns:
            return None
        v = _numeric(frame, col, p, kind)
        bad = np.flatnonzero(~np.isnan(v) & ((v < 0) | (v > 1)))
        if bad.size:
            i = int(bad[0])
            raise CTDInputError(
                f"{p}: column {col!r}: expected probabilities in [0, 1], got {float(v[i])!r} at "
                f"{_where(p, kind, i, ids)}"
            )
        return v

    label: NDArray[np.float64] | None = None
    if cols.label in frame.columns:
        label = _numeric(frame, cols.label, p, kind)
        bad = np.flatnonzero(~np.isnan(label) & (label != 0) & (label != 1))
        if bad.size:
            i = int(bad[0])
            raise CTDInputError(
                f"{p}: column {cols.label!r}: expected labels 0 or 1 (unsafe = 1) or empty, got "
                f"{float(label[i])!r} at {_where(p, kind, i, ids)}"
            )
    probe = probability(cols.probe_prob)

    out: dict[str, ExpertScores] = {}
    for name, ec in expert_cols.items():
        dv = _numeric(frame, ec.dv_score, p, kind)
        bad = np.flatnonzero(~np.isfinite(dv))
        if bad.size:
            i = int(bad[0])
            what = "NaN (missing)" if np.isnan(dv[i]) else repr(float(dv[i]))
            raise CTDInputError(
                f"{p}: column {ec.dv_score!r}: expected finite DV scores on every row, got {what} at "
                f"{_where(p, kind, i, ids)} ({bad.size} bad rows in all)"
            )
        cost = costs.get(name, {}) if isinstance(costs.get(name, {}), dict) else {}
        out[name] = ExpertScores(
            name=name, dv_score=dv, expert_prob=probability(ec.expert_prob), cost=cost
        )

    return ScoreTable(
        path=p,
        ids=ids,
        split=split,
        group=group,
        label=label,
        probe_prob=probe,
        experts=out,
        sha256=file_sha256(p),
    )


def assign_splits(
    split: Sequence[str] | NDArray[np.str_],
    fractions: Mapping[str, float],
    seed: int,
) -> NDArray[np.str_]:
    """Fill empty split cells at random; rows that carry a split keep it.

    Parameters
    ----------
    split
        Current split per row (``""`` = unassigned).
    fractions
        Fraction of the unassigned rows per split name (e.g. ``{"dev": 0, "opt": .15, "ht": .35,
        "eval": .5}``), summing to at most 1; the remainder becomes ``"pool"`` (unused).
    seed
        Seed of the random permutation; the same seed and table give the same assignment.
    """
    out = np.asarray(split, dtype=object).astype(str)
    free = np.flatnonzero(out == UNASSIGNED)
    if free.size == 0:
        return out
    total = sum(fractions.values())
    if total > 1 + 1e-9 or any(f < 0 for f in fractions.values()):
        raise CTDInputError("split fractions must be non-negative and sum to at most 1")
    perm = np.random.default_rng(seed).permutation(free)
    bounds = np.rint(np.cumsum([0.0, *fractions.values()]) * free.size).astype(int)
    bounds = np.minimum(bounds, free.size)
    out = out.astype(object)
    for name, lo, hi in zip(fractions, bounds[:-1], bounds[1:], strict=True):
        out[perm[lo:hi]] = name
    out[perm[bounds[-1] :]] = POOL
    return np.asarray(out, dtype=str)


def load_spec_table(spec: Any, *, require_file: bool = True) -> ScoreTable | None:
    """Read the table a :class:`~ctd_stats.spec.CascadeSpec` points to and assign its splits."""
    path = spec.table_path()
    if path is None:
        return None
    if not path.exists() and not require_file:
        return None
    if not path.exists():
        hint = (
            " (run `ctd scores SPEC` to produce it from the `probes:` block)" if spec.probes else ""
        )
        where = f"{spec.source}: data.table: " if spec.source is not None else ""
        raise CTDInputError(f"{where}score table {path} not found{hint}")
    c = spec.data.columns
    experts = None
    if spec.data.experts:
        experts = {
            name: ExpertColumnNames(
                expert_prob=(ec.expert_prob if ec is not None and ec.expert_prob else "")
                or f"{c.expert_prob}__{name}",
                dv_score=(ec.dv_score if ec is not None and ec.dv_score else "")
                or f"{c.dv_score}__{name}",
            )
            for name, ec in spec.data.experts.items()
        }
    table = read_score_table(
        path,
        columns=ColumnNames(**c.model_dump()),
        experts=experts,
        fmt=spec.data.format,
        require_labels=spec.calibration.pareto,
    )
    s = spec.splits
    fractions = {"dev": s.dev, "opt": s.opt, "ht": s.ht, "eval": s.eval}
    return table.with_split(assign_splits(table.split, fractions, s.seed))

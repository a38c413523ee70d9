"""THE score table: the seam between the probes layer and the core (read, write, splits, metadata).

One row per input, with the columns documented in ``docs/score-table.md``. This module alone owns
the format: :func:`read_score_table` reads Parquet or CSV, maps a spec's column names onto the
documented fields, checks every value (errors name the column, the file and the first bad row) and
returns a :class:`ScoreTable` of plain numpy arrays; :func:`write_score_table` writes a frame with
its metadata atomically (the probes layer builds a frame and calls it); :func:`fill_splits` fills
empty ``split`` cells from a spec's calibration fractions. The table reader knows no spec: a spec
reads its table with :meth:`ctd_stats.spec.cascade_spec.CascadeSpec.load_table`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ctd_stats.errors import CTDInputError
from ctd_stats.input_files import TABLE, check_regular_file
from ctd_stats.table.read import (
    CSV_EXPERTS_SIDECAR,
    EXPERTS_METADATA_KEY,
    PROBES_METADATA_KEY,
    compact_strings,
    detect_format,
    file_sha256,
    id_column,
    numeric_column,
    read_frame,
    row_where,
    string_column,
)
from ctd_stats.table.splits import POOL, SPLITS, TRAINING_SPLITS, UNASSIGNED

__all__ = [
    "CSV_EXPERTS_SIDECAR",
    "DEFAULT_EXPERT",
    "EXPERTS_METADATA_KEY",
    "POOL",
    "PROBES_METADATA_KEY",
    "SPLITS",
    "TRAINING_SPLITS",
    "UNASSIGNED",
    "ColumnNames",
    "ExpertColumnNames",
    "ExpertScores",
    "ScoreTable",
    "detect_format",
    "file_sha256",
    "fill_splits",
    "read_score_table",
    "resolve_expert_columns",
    "write_score_table",
]

DEFAULT_EXPERT = "expert"


@dataclass(frozen=True)
class ColumnNames:
    """Table column names of the documented fields (see :class:`ctd_stats.spec.cascade_spec.ColumnMap`)."""

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
    ids : ndarray of str
        Row ids, in numpy's variable-width ``StringDType`` (an object array on numpy < 2), so that
        one long id does not widen every row (see :func:`ctd_stats.table.read.compact_strings`).
    split, group : ndarray of str
        Splits (``""`` = unassigned until :func:`fill_splits`), groups (None if absent).
    label, probe_prob : ndarray of float or None
        Labels (0/1, NaN = missing) and probe probabilities (NaN = missing); None if the column is
        absent.
    experts : dict
        Expert name -> :class:`ExpertScores`, in table order.
    sha256 : str or None
        sha256 of the file's bytes.
    """

    path: Path | None
    ids: NDArray[Any]
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
        known = (*SPLITS, POOL, UNASSIGNED)
        found = {s: int(np.count_nonzero(self.split == s)) for s in known}
        if sum(found.values()) != len(self.split):  # other names too: sort every row's split
            names, counts = np.unique(self.split, return_counts=True)
            found = dict(zip(names.tolist(), counts.tolist(), strict=True))
        order = {s: i for i, s in enumerate(known)}
        pairs = sorted(((s, c) for s, c in found.items() if c), key=lambda t: order.get(t[0], 99))
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
    check_regular_file(p, TABLE)  # no FIFO, device or oversized file (named in the error)
    kind = detect_format(p, fmt)
    wanted = [
        cols.id,
        cols.split,
        cols.group,
        cols.label,
        cols.probe_prob,
        cols.expert_prob,
        cols.dv_score,
    ]
    for spec in (experts or {}).values():
        if spec is not None:
            wanted += [c for c in (spec.expert_prob, spec.dv_score) if c]
    frame, costs = read_frame(p, kind, wanted)
    available: list[str] = list(frame.attrs.get("all_columns", frame.columns))
    expert_cols = resolve_expert_columns(cols, experts, available)
    _check_columns(p, frame, available, cols, expert_cols, require_labels)
    if len(frame) == 0:
        raise CTDInputError(f"{p}: the score table has no rows")
    cells = _Cells(frame, p, kind, _ids(frame, cols.id, p))
    split = cells.split(cols.split)
    group = string_column(frame, cols.group) if cols.group in frame.columns else None
    label = cells.label(cols.label)
    probe = cells.probability(cols.probe_prob)
    out: dict[str, ExpertScores] = {}
    for name, ec in expert_cols.items():
        cost = costs.get(name, {})
        out[name] = ExpertScores(
            name=name,
            dv_score=cells.finite(ec.dv_score),
            expert_prob=cells.probability(ec.expert_prob),
            cost=cost if isinstance(cost, dict) else {},
        )
    return ScoreTable(
        path=p,
        ids=cells.ids,
        split=split,
        group=group,
        label=label,
        probe_prob=probe,
        experts=out,
        sha256=file_sha256(p),
    )


def _check_columns(
    p: Path,
    frame: Any,
    available: list[str],
    cols: ColumnNames,
    expert_cols: Mapping[str, ExpertColumnNames],
    require_labels: bool,
) -> None:
    """Raise naming the first required column that is absent."""
    needed = [(ec.dv_score, f"dv_score of expert {name!r}") for name, ec in expert_cols.items()]
    if require_labels:
        needed += [(cols.label, "label"), (cols.probe_prob, "probe_prob")]
        needed += [
            (ec.expert_prob, f"expert_prob of expert {name!r}") for name, ec in expert_cols.items()
        ]
    for col, role in needed:
        if col not in frame.columns:
            shown = ", ".join(map(repr, available[:12])) + (" ..." if len(available) > 12 else "")
            raise CTDInputError(
                f"{p}: missing column {col!r} ({role}); the table has columns: {shown or 'none'}"
            )


def _ids(frame: Any, col: str, p: Path) -> NDArray[Any]:
    """Row ids (row numbers when the column is absent); duplicates are an error."""
    if col not in frame.columns:
        return compact_strings(np.arange(len(frame)))
    ids = id_column(frame, col)
    ordered = np.sort(ids)
    dup = np.flatnonzero(ordered[1:] == ordered[:-1])
    if dup.size:  # the smallest duplicated id
        raise CTDInputError(
            f"{p}: column {col!r}: duplicate id {str(ordered[dup[0]])!r} (ids must be unique)"
        )
    return ids


@dataclass(frozen=True)
class _Cells:
    """Typed, checked columns of one frame; errors name the column, file and first bad row."""

    frame: Any
    path: Path
    kind: str
    ids: NDArray[Any]

    def _fail(self, col: str, expected: str, got: str, i: int, extra: str = "") -> CTDInputError:
        where = row_where(self.path, self.kind, i, self.ids)
        return CTDInputError(
            f"{self.path}: column {col!r}: expected {expected}, got {got} at {where}{extra}"
        )

    def split(self, col: str) -> NDArray[np.str_]:
        if col not in self.frame.columns:
            return np.full(len(self.frame), UNASSIGNED)
        split = string_column(self.frame, col)
        bad = np.flatnonzero(~np.isin(split, [*SPLITS, UNASSIGNED, POOL]))
        if bad.size:
            i = int(bad[0])
            raise self._fail(col, f"one of {', '.join(SPLITS)} or empty", repr(str(split[i])), i)
        return split

    def probability(self, col: str) -> NDArray[np.float64] | None:
        if col not in self.frame.columns:
            return None
        v = numeric_column(self.frame, col, self.path, self.kind)
        bad = np.flatnonzero(~np.isnan(v) & ((v < 0) | (v > 1)))
        if bad.size:
            i = int(bad[0])
            raise self._fail(col, "probabilities in [0, 1]", repr(float(v[i])), i)
        return v

    def label(self, col: str) -> NDArray[np.float64] | None:
        if col not in self.frame.columns:
            return None
        y = numeric_column(self.frame, col, self.path, self.kind)
        bad = np.flatnonzero(~np.isnan(y) & (y != 0) & (y != 1))
        if bad.size:
            i = int(bad[0])
            raise self._fail(col, "labels 0 or 1 (unsafe = 1) or empty", repr(float(y[i])), i)
        return y

    def finite(self, col: str) -> NDArray[np.float64]:
        v = numeric_column(self.frame, col, self.path, self.kind)
        bad = np.flatnonzero(~np.isfinite(v))
        if bad.size:
            i = int(bad[0])
            what = "NaN (missing)" if np.isnan(v[i]) else repr(float(v[i]))
            raise self._fail(
                col, "finite DV scores on every row", what, i, f" ({bad.size} bad rows in all)"
            )
        return v


def write_score_table(
    frame: Any,
    path: str | os.PathLike[str],
    *,
    experts: Mapping[str, Mapping[str, Any]] | None = None,
    probes_summary: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write a score table atomically: Parquet by default, CSV for a ``.csv`` path.

    Parameters
    ----------
    frame
        A pandas DataFrame with the documented columns (``id``, ``split``, ``group``, ``label``,
        ``probe_prob``, ``expert_prob[__<name>]``, ``dv_score[__<name>]``).
    path
        Destination; written to a temporary file in the same folder and renamed, so a reader never
        sees a half-written table.
    experts
        Per-expert metadata (costs, description) stored under :data:`EXPERTS_METADATA_KEY` (Parquet
        schema metadata; for CSV, the sidecar ``<path>.experts.json``), read back as
        :attr:`ExpertScores.cost`.
    probes_summary
        The probes layer's build summary, stored under :data:`PROBES_METADATA_KEY` (Parquet only).
    metadata
        Further Parquet schema metadata, key -> JSON-able value (e.g. ``ctd.controls``; Parquet only).

    Returns
    -------
    Path
        The table written.
    """
    from ctd_stats.io import atomic_write_bytes, atomic_write_json

    p = Path(path)
    if "id" not in frame.columns:
        raise CTDInputError(f"{p}: cannot write a score table without an 'id' column")
    if detect_format(p) == "csv":
        atomic_write_bytes(p, frame.to_csv(index=False).encode())
        if experts:
            atomic_write_json(p.with_name(p.name + CSV_EXPERTS_SIDECAR), dict(experts))
        return p
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    if experts is not None:
        meta[EXPERTS_METADATA_KEY.encode()] = json.dumps(dict(experts)).encode()
    if probes_summary is not None:
        meta[PROBES_METADATA_KEY.encode()] = json.dumps(dict(probes_summary)).encode()
    for key, value in (metadata or {}).items():
        meta[key.encode()] = json.dumps(value).encode()
    buf = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(meta), buf, compression="zstd")
    return atomic_write_bytes(p, buf.getvalue())


def fill_splits(
    split: Sequence[str] | NDArray[np.str_],
    fractions: Mapping[str, float],
    seed: int,
) -> NDArray[np.str_]:
    """Fill empty split cells at random (the calibration splits); rows that carry a split keep it.

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
    current = np.asarray(split, dtype=str)
    free = np.flatnonzero(current == UNASSIGNED)
    if free.size == 0:
        return current.copy()
    total = sum(fractions.values())
    if total > 1 + 1e-9 or any(f < 0 for f in fractions.values()):
        raise CTDInputError("split fractions must be non-negative and sum to at most 1")
    perm = free  # shuffled in place: the same order as rng.permutation(free), one copy fewer
    np.random.default_rng(seed).shuffle(perm)
    bounds = np.rint(np.cumsum([0.0, *fractions.values()]) * free.size).astype(int)
    bounds = np.minimum(bounds, free.size)
    # Fixed width wide enough for every name written (no per-row Python strings).
    width = max(current.dtype.itemsize // 4, len(POOL), *(len(name) for name in fractions))
    out = current.astype(f"<U{width}")
    for name, lo, hi in zip(fractions, bounds[:-1], bounds[1:], strict=True):
        out[perm[lo:hi]] = name
    out[perm[bounds[-1] :]] = POOL
    return out

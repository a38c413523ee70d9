"""The control columns of a score table, read for the study's controls (:mod:`ctd_stats.study.controls`).

Column convention (``docs/score-table.md``, "Control columns"): ``probe_prob_refit``,
``dv_score_refit__<expert>``, ``dv_score_boot<k>__<expert>``, ``probe_prob_noshift``,
``dv_score_noshift__<expert>``; optional Parquet metadata ``ctd.controls`` (JSON) may name
``group_sets`` (``{name: [group, ...]}``, e.g. the sources the probe was trained on) and a
``noshift_caveat``. Every column is optional: a control whose columns are absent is reported as not
run, with that reason.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ctd_stats.errors import CTDInputError

__all__ = ["CONTROLS_METADATA_KEY", "ControlColumns", "DevRows", "read_control_columns"]

#: Parquet metadata key of the control-column build's description.
CONTROLS_METADATA_KEY = "ctd.controls"
_BOOT = re.compile(r"^dv_score_boot(\d+)__(.+)$")


@dataclass(frozen=True)
class DevRows:
    """The rows the DV probe trained on (split ``dev``): labels, probe and expert P(unsafe), groups."""

    labels: NDArray[np.bool_]
    probe_prob: NDArray[np.float64]
    expert_prob: NDArray[np.float64]
    group: NDArray[np.str_] | None = None

    @property
    def n(self) -> int:
        return int(self.labels.size)

    @property
    def delegation_value(self) -> NDArray[np.float64]:
        return (2.0 * self.labels - 1.0) * (self.expert_prob - self.probe_prob)


@dataclass(frozen=True)
class ControlColumns:
    """One expert's control columns on the pool rows (None where absent), its dev rows, and metadata."""

    probe_refit: NDArray[np.float64] | None = None
    dv_refit: NDArray[np.float64] | None = None
    probe_noshift: NDArray[np.float64] | None = None
    dv_noshift: NDArray[np.float64] | None = None
    dv_boot: NDArray[np.float64] | None = None  # [K, n_pool]
    dev: DevRows | None = None
    group_sets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    noshift_caveat: str | None = None


def _metadata(path: Path) -> dict[str, Any]:
    if path.suffix != ".parquet":
        return {}
    import pyarrow.parquet as pq

    try:
        raw = (pq.read_schema(path).metadata or {}).get(CONTROLS_METADATA_KEY.encode())
        value = json.loads(raw) if raw else {}
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _read_columns(path: Path, names: list[str]) -> dict[str, NDArray[np.float64]]:
    if not names:
        return {}
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        tab = pq.read_table(path, columns=names)
        return {
            c: np.asarray(tab.column(c).to_numpy(zero_copy_only=False), dtype=np.float64)
            for c in names
        }
    import pandas as pd

    frame = pd.read_csv(path, usecols=names, dtype=str, keep_default_na=False)
    return {
        c: np.asarray(pd.to_numeric(frame[c].replace("", "nan"), errors="coerce"), dtype=np.float64)
        for c in names
    }


def _column_names(path: Path) -> list[str]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    import pandas as pd

    return list(pd.read_csv(path, nrows=0).columns)


def read_control_columns(table: Any, expert: str) -> ControlColumns:
    """The control columns of ``expert`` in ``table`` (a :class:`~ctd_stats.table.score_table.ScoreTable`) on
    its pool rows (not ``train``/``dev``), and its dev rows.

    Raises
    ------
    CTDInputError
        A control column with a non-finite value on a pool row (or a probability outside [0, 1]);
        the message names the column, the file and the row.
    """
    from ctd_stats.table.score_table import TRAINING_SPLITS

    pool = ~np.isin(table.split, TRAINING_SPLITS)
    dev_mask = table.split == "dev"
    ex = table.expert(expert)
    dev = None
    if (
        dev_mask.any()
        and table.label is not None
        and table.probe_prob is not None
        and ex.expert_prob is not None
    ):
        ok = (
            dev_mask
            & np.isfinite(table.label)
            & np.isfinite(table.probe_prob)
            & np.isfinite(ex.expert_prob)
        )
        if ok.any():
            dev = DevRows(
                labels=table.label[ok].astype(bool),
                probe_prob=table.probe_prob[ok],
                expert_prob=ex.expert_prob[ok],
                group=table.group[ok] if table.group is not None else None,
            )
    if table.path is None:
        return ControlColumns(dev=dev)
    path = Path(table.path)
    names = _column_names(path)
    single = {
        "probe_refit": "probe_prob_refit",
        "dv_refit": f"dv_score_refit__{expert}",
        "probe_noshift": "probe_prob_noshift",
        "dv_noshift": f"dv_score_noshift__{expert}",
    }
    boots = sorted(
        (int(m.group(1)), c) for c in names if (m := _BOOT.match(c)) and m.group(2) == expert
    )
    wanted = [c for c in single.values() if c in names] + [c for _, c in boots]
    values = _read_columns(path, wanted)
    pool_rows = np.flatnonzero(pool)
    for c, arr in values.items():
        bad = ~np.isfinite(arr[pool])
        if c.startswith("probe_prob"):
            bad |= (arr[pool] < 0) | (arr[pool] > 1)
        if bad.any():
            i = int(pool_rows[np.flatnonzero(bad)[0]])
            raise CTDInputError(
                f"{path}: column {c!r}: expected a finite {'probability' if c.startswith('probe') else 'number'} "
                f"on every pool row, got {arr[i]!r} at row {i} (id {table.ids[i]!s})"
            )
    got = {k: values[c][pool] for k, c in single.items() if c in values}
    meta = _metadata(path)
    sets = meta.get("group_sets") if isinstance(meta.get("group_sets"), dict) else {}
    return ControlColumns(
        probe_refit=got.get("probe_refit"),
        dv_refit=got.get("dv_refit"),
        probe_noshift=got.get("probe_noshift"),
        dv_noshift=got.get("dv_noshift"),
        dv_boot=np.stack([values[c][pool] for _, c in boots]) if boots else None,
        dev=dev,
        group_sets={
            str(k): tuple(str(g) for g in v) for k, v in (sets or {}).items() if isinstance(v, list)
        },
        noshift_caveat=str(meta["noshift_caveat"]) if meta.get("noshift_caveat") else None,
    )

"""An expert whose scores were computed elsewhere: a column of a table."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from probes.experts.base import (
    CostMeter,
    ExpertCost,
    ExpertError,
    check_output,
    check_texts,
    snippet,
)

__all__ = ["PrecomputedColumnExpert"]


class PrecomputedColumnExpert:
    """Expert whose scores were computed elsewhere and stored in a table column.

    Two ways to use it:

    * **Keyed** (``values`` is a mapping, or an array with ``keys``): ``score(keys)`` looks each
      key up (an id or the text itself). A missing key raises :class:`ExpertError`.
    * **Positional** (``values`` is an array without ``keys``): ``score(texts)`` returns the whole
      column and requires ``len(texts) == len(values)``: the caller's rows are the table's rows.

    A NaN in the column means "the expert was not run on this row" (as in the score table), and
    scoring such a row raises :class:`ExpertError` rather than inventing a value.

    Parameters
    ----------
    name : str
        Expert name (the ``<name>`` of ``expert_prob__<name>``).
    values : mapping of str to float, or array_like of float, shape (m,)
        P(unsafe) per row, in [0, 1], or NaN where missing.
    keys : sequence of str, optional
        Keys of an array ``values`` (unique, same length).
    cost : ExpertCost, optional
        The cost of the expert that produced the column (e.g. read from the score table's
        metadata); reported by :attr:`cost`. Default: the measured cost of the look-ups.

    Raises
    ------
    ValueError
        On a value outside [0, 1], mismatched or duplicate keys, or ``keys`` given with a mapping.
    """

    @classmethod
    def from_file(
        cls,
        name: str,
        path: str | os.PathLike[str],
        *,
        id_column: str = "id",
        prob_column: str = "expert_prob",
    ) -> PrecomputedColumnExpert:
        """A keyed expert read from a Parquet (by suffix) or CSV file of ``id_column, prob_column``.

        Raises
        ------
        CTDInputError
            The file does not exist or lacks a column (the message names the spec field).
        """
        import pandas as pd

        from ctd_stats.errors import CTDInputError

        src = Path(path)
        if not src.exists():
            raise CTDInputError(f"probes.experts[{name}].params.path: no such file {src}")
        table = pd.read_parquet(src) if src.suffix == ".parquet" else pd.read_csv(src)
        for col in (id_column, prob_column):
            if col not in table.columns:
                raise CTDInputError(f"probes.experts[{name}]: {src} has no column {col!r}")
        return cls(name, table[prob_column].to_numpy(), keys=table[id_column].astype(str).tolist())

    def __init__(
        self,
        name: str,
        values: Mapping[str, float] | ArrayLike,
        *,
        keys: Sequence[str] | None = None,
        cost: ExpertCost | None = None,
    ) -> None:
        self.name = name
        self._fixed_cost = cost
        self._meter = CostMeter()
        self._table: dict[str, float] | None
        if isinstance(values, Mapping):
            if keys is not None:
                raise ValueError("keys: must be None when values is a mapping")
            table = {str(k): float(v) for k, v in values.items()}
            self._check_values(np.fromiter(table.values(), dtype=np.float64, count=len(table)))
            self._table, self._column = table, None
        else:
            col = np.asarray(values, dtype=np.float64)
            if col.ndim != 1:
                raise ValueError(f"values: expected a 1-D array, got shape {col.shape}")
            self._check_values(col)
            if keys is None:
                self._table, self._column = None, col.copy()
            else:
                key_list = [str(k) for k in keys]
                if len(key_list) != col.size:
                    raise ValueError(f"keys: length {len(key_list)} != length of values {col.size}")
                table = dict(zip(key_list, col.tolist(), strict=True))
                if len(table) != len(key_list):
                    raise ValueError("keys: must be unique")
                self._table, self._column = table, None

    @staticmethod
    def _check_values(col: NDArray[np.float64]) -> None:
        bad = ~np.isnan(col) & ((col < 0.0) | (col > 1.0) | ~np.isfinite(col))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"values: probabilities must lie in [0, 1] (or be NaN); item {i} is {col[i]!r}"
            )

    def score(self, texts: Sequence[str]) -> NDArray[np.float64]:
        """Look up P(unsafe) for each key (keyed mode) or return the column (positional mode)."""
        items = check_texts(texts)
        start = time.perf_counter()
        if self._table is not None:
            out = np.empty(len(items), dtype=np.float64)
            for i, key in enumerate(items):
                try:
                    out[i] = self._table[key]
                except KeyError:
                    raise ExpertError(
                        f"expert {self.name!r}: no precomputed score for key {snippet(key, 60)!r} (item {i})"
                    ) from None
        else:
            assert self._column is not None
            if len(items) != self._column.size:
                raise ExpertError(
                    f"expert {self.name!r}: positional column has {self._column.size} rows, "
                    f"got {len(items)} texts"
                )
            out = self._column.copy()
        missing = np.isnan(out)
        if missing.any():
            i = int(np.flatnonzero(missing)[0])
            raise ExpertError(
                f"expert {self.name!r}: no score for item {i} (the expert was not run there)"
            )
        self._meter.add(time.perf_counter() - start, len(items))
        return check_output(self.name, out, len(items))

    @property
    def cost(self) -> ExpertCost:
        """The cost given at construction, else the measured cost of the look-ups."""
        return self._fixed_cost if self._fixed_cost is not None else self._meter.snapshot()

    def __repr__(self) -> str:
        mode = "keyed" if self._table is not None else "positional"
        return f"PrecomputedColumnExpert({self.name!r}, {mode})"

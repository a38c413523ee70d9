"""The split vocabulary, defined once.

Two different things are called a "split", and each has one enum here:

* :class:`Split` — the ``split`` column of a score table: which part of the data a row belongs to
  (``train``/``dev`` train the probes; ``opt``/``ht`` calibrate; ``eval`` evaluates). Plus the two
  non-split cell values :data:`UNASSIGNED` (empty: the spec's splitter fills it) and :data:`POOL`.
* :class:`CalibrationSplit` — how a Pareto calibration uses its rows: ``opt_ht`` (front on opt,
  test on ht) or ``none`` (front and test on the same rows; budget guarantee only).

Both are :class:`enum.StrEnum`, so a member equals its string (``Split.HT == "ht"``) and specs,
tables and certificates keep their plain-string values.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "CALIBRATION_SPLITS",
    "POOL",
    "SPLITS",
    "TRAINING_SPLITS",
    "UNASSIGNED",
    "CalibrationSplit",
    "Split",
]


class Split(StrEnum):
    """Values of a score table's ``split`` column."""

    TRAIN = "train"
    DEV = "dev"
    OPT = "opt"
    HT = "ht"
    EVAL = "eval"


class CalibrationSplit(StrEnum):
    """How a Pareto calibration splits its rows (``calibration.split`` in a spec)."""

    OPT_HT = "opt_ht"
    NONE = "none"


#: Every table split name, in pipeline order (plain strings, for messages and ``np.isin``).
SPLITS: tuple[str, ...] = tuple(s.value for s in Split)
#: Rows that train the probes and never enter calibration.
TRAINING_SPLITS: tuple[str, ...] = (Split.TRAIN.value, Split.DEV.value)
#: Calibration split modes of Pareto testing.
CALIBRATION_SPLITS: tuple[str, ...] = tuple(s.value for s in CalibrationSplit)
#: An empty ``split`` cell: the spec's splitter assigns the row.
UNASSIGNED = ""
#: A row the splitter left unused (outside the spec's calibration/evaluation fractions).
POOL = "pool"

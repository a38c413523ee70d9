"""ctd_stats: the calibration core of Calibrate-Then-Delegate (no torch).

Certify a delegation threshold τ on DV scores so that, with probability ≥ 1 − δ over the calibration
draw (i.i.d. data), the delegation rate P(d(X) > τ) stays within a budget.

The public names below are imported lazily (on first attribute access), so ``import ctd_stats`` and
``ctd --version`` do not pay for scipy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ctd_stats._version import __version__

#: Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    "CTDInputError": "ctd_stats.errors",
    "PowerWarning": "ctd_stats.fwer",
    "Calibration": "ctd_stats.ltt",
    "calibrate_budget": "ctd_stats.ltt",
    "calibrate_budget_batch": "ctd_stats.ltt",
    "budget_threshold": "ctd_stats.ltt",
    "randomized_budget_threshold": "ctd_stats.randomized",
    "certified_count": "ctd_stats.ltt",
    "expected_rate": "ctd_stats.planning",
    "violation_probability": "ctd_stats.planning",
    "CascadeCalibration": "ctd_stats.pareto",
    "CascadeData": "ctd_stats.pareto",
    "calibrate_cascade": "ctd_stats.pareto",
    "pareto_front": "ctd_stats.pareto",
    "certifiable_budget": "ctd_stats.planning",
    "min_calibration_size": "ctd_stats.planning",
    "chernoff_size": "ctd_stats.planning",
    "SimulationResult": "ctd_stats.simulate",
    "make_population": "ctd_stats.simulate",
    "simulate_budget_guarantee": "ctd_stats.simulate",
    "simulate_cascade_guarantee": "ctd_stats.simulate",
    "Cascade": "ctd_stats.cascade",
    "clopper_pearson": "ctd_stats.intervals",
    "CTDCalibrator": "ctd_stats.estimator",
}

__all__ = [
    "CTDCalibrator",
    "CTDInputError",
    "Calibration",
    "Cascade",
    "CascadeCalibration",
    "CascadeData",
    "PowerWarning",
    "SimulationResult",
    "__version__",
    "budget_threshold",
    "calibrate_budget",
    "calibrate_budget_batch",
    "calibrate_cascade",
    "certifiable_budget",
    "certified_count",
    "chernoff_size",
    "clopper_pearson",
    "expected_rate",
    "make_population",
    "min_calibration_size",
    "pareto_front",
    "randomized_budget_threshold",
    "simulate_budget_guarantee",
    "simulate_cascade_guarantee",
    "violation_probability",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from ctd_stats.cascade import Cascade
    from ctd_stats.errors import CTDInputError
    from ctd_stats.estimator import CTDCalibrator
    from ctd_stats.fwer import PowerWarning
    from ctd_stats.intervals import clopper_pearson
    from ctd_stats.ltt import (
        Calibration,
        budget_threshold,
        calibrate_budget,
        calibrate_budget_batch,
        certified_count,
    )
    from ctd_stats.pareto import CascadeCalibration, CascadeData, calibrate_cascade, pareto_front
    from ctd_stats.planning import (
        certifiable_budget,
        chernoff_size,
        expected_rate,
        min_calibration_size,
        violation_probability,
    )
    from ctd_stats.randomized import randomized_budget_threshold
    from ctd_stats.simulate import (
        SimulationResult,
        make_population,
        simulate_budget_guarantee,
        simulate_cascade_guarantee,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ctd_stats' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})

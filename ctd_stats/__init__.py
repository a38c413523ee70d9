"""ctd_stats: the calibration core of Calibrate-Then-Delegate (no torch).

Certify a delegation threshold τ on DV scores so that, with probability ≥ 1 − δ over the calibration
draw (i.i.d. data), the delegation rate P(d(X) > τ) stays within a budget.
"""

from __future__ import annotations

__version__ = "0.1.0"

from ctd_stats.errors import CTDInputError
from ctd_stats.ltt import Calibration, calibrate_budget, calibrate_budget_batch
from ctd_stats.pareto import CascadeCalibration, CascadeData, calibrate_cascade, pareto_front
from ctd_stats.planning import certifiable_budget, min_calibration_size
from ctd_stats.simulate import (
    SimulationResult,
    make_population,
    simulate_budget_guarantee,
    simulate_cascade_guarantee,
)

__all__ = [
    "CTDInputError",
    "Calibration",
    "CascadeCalibration",
    "CascadeData",
    "SimulationResult",
    "__version__",
    "calibrate_budget",
    "calibrate_budget_batch",
    "calibrate_cascade",
    "certifiable_budget",
    "make_population",
    "min_calibration_size",
    "pareto_front",
    "simulate_budget_guarantee",
    "simulate_cascade_guarantee",
]

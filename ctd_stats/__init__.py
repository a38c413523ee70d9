"""ctd_stats: the calibration core of Calibrate-Then-Delegate (no torch).

Certify a delegation threshold τ on DV scores so that, with probability ≥ 1 − δ over the calibration
draw (i.i.d. data), the delegation rate P(d(X) > τ) stays within a budget.

The public face is :data:`__all__`: the calibrations and their results, the certificate, the deployed
cascade, the score table, the audit, the simulations and sample-size planning. Every result is a
typed, immutable object with ``to_dict()``. The names are imported lazily (on first attribute
access), so ``import ctd_stats`` and ``ctd --version`` do not pay for scipy. Everything else lives in
the stage packages (``ctd_stats.stats``, ``.table``, ``.spec``, ``.certificate``, ``.study``,
``.audit``, ``.reports``); see ``docs/architecture.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ctd_stats._version import __version__

#: The public face: name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    "CTDInputError": "ctd_stats.errors",
    # calibrate
    "calibrate_budget": "ctd_stats.stats.ltt",
    "Calibration": "ctd_stats.stats.ltt",
    "calibrate_cascade": "ctd_stats.stats.pareto",
    "CascadeData": "ctd_stats.stats.pareto",
    "CascadeCalibration": "ctd_stats.stats.pareto",
    "CTDCalibrator": "ctd_stats.stats.estimator",
    # certificate and deployment
    "load_certificate": "ctd_stats.certificate.checks",
    "Certificate": "ctd_stats.certificate.model",
    "Cascade": "ctd_stats.certificate.cascade",
    # data in, logs out
    "read_score_table": "ctd_stats.table.score_table",
    "ScoreTable": "ctd_stats.table.score_table",
    "audit_log": "ctd_stats.audit.run",
    "AuditResult": "ctd_stats.audit.result",
    # simulate and plan
    "simulate_budget_guarantee": "ctd_stats.stats.simulate",
    "SimulationResult": "ctd_stats.stats.simulate",
    "simulate_cascade_guarantee": "ctd_stats.stats.simulate",
    "CascadeSimulationResult": "ctd_stats.stats.simulate",
    "min_calibration_size": "ctd_stats.stats.planning",
}

#: 0.1 names kept importable from the top level (not in ``__all__``): the budget-only variants
#: and helpers now live in their stage modules.
_COMPAT: dict[str, str] = {
    "PowerWarning": "ctd_stats.stats.fwer",
    "calibrate_budget_batch": "ctd_stats.stats.ltt",
    "budget_threshold": "ctd_stats.stats.ltt",
    "certified_count": "ctd_stats.stats.ltt",
    "randomized_budget_threshold": "ctd_stats.stats.randomized",
    "expected_rate": "ctd_stats.stats.planning",
    "violation_probability": "ctd_stats.stats.planning",
    "certifiable_budget": "ctd_stats.stats.planning",
    "chernoff_size": "ctd_stats.stats.planning",
    "pareto_front": "ctd_stats.stats.pareto",
    "make_population": "ctd_stats.stats.simulate",
    "clopper_pearson": "ctd_stats.stats.intervals",
}

__all__ = [
    "AuditResult",
    "CTDCalibrator",
    "CTDInputError",
    "Calibration",
    "Cascade",
    "CascadeCalibration",
    "CascadeData",
    "CascadeSimulationResult",
    "Certificate",
    "ScoreTable",
    "SimulationResult",
    "__version__",
    "audit_log",
    "calibrate_budget",
    "calibrate_cascade",
    "load_certificate",
    "min_calibration_size",
    "read_score_table",
    "simulate_budget_guarantee",
    "simulate_cascade_guarantee",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from ctd_stats.audit.result import AuditResult
    from ctd_stats.audit.run import audit_log
    from ctd_stats.certificate.cascade import Cascade
    from ctd_stats.certificate.checks import load_certificate
    from ctd_stats.certificate.model import Certificate
    from ctd_stats.errors import CTDInputError
    from ctd_stats.stats.estimator import CTDCalibrator
    from ctd_stats.stats.ltt import Calibration, calibrate_budget
    from ctd_stats.stats.pareto import CascadeCalibration, CascadeData, calibrate_cascade
    from ctd_stats.stats.planning import min_calibration_size
    from ctd_stats.stats.simulate import (
        CascadeSimulationResult,
        SimulationResult,
        simulate_budget_guarantee,
        simulate_cascade_guarantee,
    )
    from ctd_stats.table.score_table import ScoreTable, read_score_table


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name) or _COMPAT.get(name)
    if module is None:
        raise AttributeError(f"module 'ctd_stats' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})

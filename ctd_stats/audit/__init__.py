"""Budget-compliance audit of deployment decision logs (see ``docs/audit.md``).

>>> from ctd_stats.audit import audit_log, BudgetMonitor

The public names are imported on first use (module ``__getattr__``), so a module that needs only a
part of the audit — the gateway reads :mod:`ctd_stats.audit.logs` and the change monitor — does not
pay for scipy.stats and pandas at start-up.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> the module that defines it.
_WHERE: dict[str, str] = {
    "ScoreReference": "ctd_stats.audit.drift",
    "reference_from_scores": "ctd_stats.audit.drift",
    "BetaPrior": "ctd_stats.audit.monitor",
    "BudgetMonitor": "ctd_stats.audit.monitor",
    "MixtureMartingale": "ctd_stats.audit.monitor",
    "confidence_sequence": "ctd_stats.audit.monitor",
    "default_prior": "ctd_stats.audit.monitor",
    "simulate_alarm_times": "ctd_stats.audit.monitor",
    "AuditResult": "ctd_stats.audit.run",
    "audit_log": "ctd_stats.audit.run",
    "binomial_exceedance_pvalue": "ctd_stats.stats.intervals",
    "clopper_pearson": "ctd_stats.stats.intervals",
    "fixed_n_audit": "ctd_stats.stats.intervals",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'ctd_stats.audit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))

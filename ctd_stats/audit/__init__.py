"""Budget-compliance audit of deployment decision logs (see ``docs/audit.md``).

>>> from ctd_stats.audit import audit_log, BudgetMonitor
"""

from __future__ import annotations

from ctd_stats.audit.drift import ScoreReference, reference_from_scores
from ctd_stats.audit.monitor import (
    BetaPrior,
    BudgetMonitor,
    MixtureMartingale,
    confidence_sequence,
    default_prior,
    simulate_alarm_times,
)
from ctd_stats.audit.run import AuditResult, audit_log
from ctd_stats.stats.intervals import binomial_exceedance_pvalue, clopper_pearson, fixed_n_audit

__all__ = [
    "AuditResult",
    "BetaPrior",
    "BudgetMonitor",
    "MixtureMartingale",
    "ScoreReference",
    "audit_log",
    "binomial_exceedance_pvalue",
    "build_report",
    "clopper_pearson",
    "confidence_sequence",
    "default_prior",
    "fixed_n_audit",
    "reference_from_scores",
    "simulate_alarm_times",
    "write_audit",
]


def __getattr__(name: str) -> object:
    # The report writers live in the reports wing (ctd_stats.reports.audit), which imports this
    # package; they are re-exported lazily so that `from ctd_stats.audit import write_audit` works.
    if name in ("build_report", "write_audit"):
        from ctd_stats.reports import audit as _reports_audit

        return getattr(_reports_audit, name)
    raise AttributeError(f"module 'ctd_stats.audit' has no attribute {name!r}")

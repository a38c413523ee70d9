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
    "clopper_pearson",
    "confidence_sequence",
    "default_prior",
    "fixed_n_audit",
    "reference_from_scores",
    "simulate_alarm_times",
]

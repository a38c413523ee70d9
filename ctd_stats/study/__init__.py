"""The CTD study behind ``ctd run``: repeated calibration/evaluation splits, baselines, metrics."""

from ctd_stats.stats.metrics import auroc_rows, faic
from ctd_stats.study.runner import METHODS, ExpertStudy, StudyInputs, run_study

__all__ = ["METHODS", "ExpertStudy", "StudyInputs", "auroc_rows", "faic", "run_study"]

"""The CTD study behind ``ctd run``: repeated calibration/evaluation splits, baselines, metrics."""

from ctd_stats.study.engine import METHODS, ExpertStudy, StudyInputs, run_study
from ctd_stats.study.metrics import auroc_rows, faic

__all__ = ["METHODS", "ExpertStudy", "StudyInputs", "auroc_rows", "faic", "run_study"]

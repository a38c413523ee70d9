"""ctd_stats: the calibration core of Calibrate-Then-Delegate (no torch)."""

from __future__ import annotations

__version__ = "0.1.0"

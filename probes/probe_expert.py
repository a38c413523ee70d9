"""Alias kept for existing imports: the probe expert lives in :mod:`probes.experts.probe`."""

from __future__ import annotations

from probes.experts.probe import ProbeExpert

__all__ = ["ProbeExpert"]

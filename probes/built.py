"""What a score-table build produced: the frame, per-expert metadata, the summary, the monitor.

Shared by the two builds of the probes layer (:mod:`probes.pipeline`, fractions of rows;
:mod:`probes.role_build`, declared roles). The file format belongs to the core:
:meth:`BuiltScores.write` hands the frame to :func:`ctd_stats.table.score_table.write_score_table`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from ctd_stats.errors import CTDInputError

__all__ = ["BuiltScores", "ExpertSummary", "ScoreSummary", "monitor_bundle"]


class ExpertSummary(BaseModel):
    """What one expert cost and how good it was (on the pool rows)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: str
    description: str = ""
    seconds_per_call: float
    tokens_per_call: float | None = None
    auroc_pool: float | None = None
    auroc_pool_by_group: dict[str, float | None] = Field(default_factory=dict)
    expert_layer: int | None = None
    dv_layer: int | None = None
    dv_alpha: float | None = Field(
        default=None, description="ridge penalty; None = activations not used"
    )
    dv_features: str = "activations"
    dv_training: str = Field(
        default="dev", description="rows of the DV probe's fit (see ProbesSpec.dv_training)"
    )
    dv_rows: int | None = Field(
        default=None, description="number of rows the DV probe was fitted on"
    )
    dv_spearman_pool: float | None = Field(
        default=None, description="Spearman(dv_score, realised DV) on the pool"
    )
    dv_mean_pool: float | None = None


class ScoreSummary(BaseModel):
    """Provenance and headline figures of a score table."""

    model_config = ConfigDict(extra="forbid")

    model: str
    pooling: str
    probe_layer: int | None
    probe_cv_auroc: list[float]
    probe_auroc_train_oof: float | None = Field(
        default=None,
        description="out-of-fold AUROC of the safety probe on train (cross-fitting only)",
    )
    n_rows: int
    n_by_split: dict[str, int]
    n_by_group: dict[str, int]
    probe_auroc_pool: float | None
    probe_auroc_pool_by_group: dict[str, float | None]
    probe_seconds_per_text: float
    experts: list[ExpertSummary]
    dv_target: str
    dv_training: str = "dev"
    crossfit_folds: int | None = None
    seed: int
    wall_seconds: float


class BuiltScores:
    """What :func:`build_score_table` produced: the frame, per-expert metadata and the summary.

    The file format belongs to the core: :meth:`write` hands the frame to
    :func:`ctd_stats.table.score_table.write_score_table`.
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        experts_meta: dict[str, dict[str, Any]],
        summary: ScoreSummary,
        monitor: dict[str, Any] | None = None,
        *,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.frame = frame
        self.experts_meta = experts_meta
        self.summary = summary
        #: What :func:`probes.monitor.save_monitor` needs (fitted probes and feature settings).
        self.monitor = monitor
        #: Further Parquet metadata (key -> JSON-able value), e.g. ``ctd.controls``.
        self.metadata = dict(metadata or {})

    def save_monitor(self, directory: str | os.PathLike[str]) -> Path:
        """Write the deployable monitor bundle (probed model name, layers, fitted linear probes)."""
        from probes.monitor import save_monitor

        if self.monitor is None or not self.monitor.get("dv_probes"):
            raise CTDInputError(
                "no monitor to save: the spec has no experts, so no DV probe was fitted"
            )
        return save_monitor(directory, **self.monitor)

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the score table atomically (Parquet, or CSV by suffix) with its metadata."""
        from ctd_stats.table.score_table import write_score_table

        return write_score_table(
            self.frame,
            path,
            experts=self.experts_meta,
            probes_summary=self.summary.model_dump(),
            metadata=self.metadata,
        )


def monitor_bundle(
    spec: Any, layers: list[int], probe: Any, dv_probes: dict[str, Any]
) -> dict[str, Any]:
    """What :func:`probes.monitor.save_monitor` needs to deploy a build: the probed model, its
    feature settings (from the ``ProbesSpec``), the fitted safety probe and the DV probes."""
    return {
        "model": spec.model,
        "layers": layers,
        "pooling": spec.pooling,
        "max_length": spec.max_length,
        "batch_size": spec.batch_size,
        "dv_features": spec.dv_features,
        "probe": probe,
        "dv_probes": dv_probes,
    }

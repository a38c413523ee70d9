"""The deployable monitor: texts -> (safety probe P(unsafe), DV score), from the probes `ctd scores` fitted.

``ctd scores SPEC --save-monitor DIR`` writes a bundle: ``monitor.json`` (format, probed model,
hidden-state layers, pooling, token limit, DV features, one DV probe per expert) and one safetensors
file per linear probe (no pickle anywhere). :class:`TextMonitor` loads it once (the probed model
included) and scores texts exactly as the pipeline scored the table's rows, so a gateway
(``ctd serve --probes DIR``) can decide on raw texts with the certified threshold.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ctd_stats.errors import CTDInputError

#: Format tag of ``monitor.json``.
MONITOR_FORMAT: Literal["ctd.monitor/1"] = "ctd.monitor/1"
MANIFEST = "monitor.json"


class MonitorManifest(BaseModel):
    """``monitor.json``: what to load and how to feed it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["ctd.monitor/1"] = MONITOR_FORMAT
    model: str = Field(description="registered probed model (probes.assets.MODELS)")
    layers: list[int] = Field(
        min_length=1, description="hidden-state indices the probes were fitted on"
    )
    pooling: Literal["last", "mean"]
    max_length: int = Field(ge=8)
    batch_size: int = Field(ge=1)
    dv_features: Literal["activations", "activations+probe"]
    safety_probe: str = Field(description="file of the safety probe, relative to the bundle")
    dv_probes: dict[str, str] = Field(
        min_length=1, description="expert name -> file of its DV probe"
    )


def save_monitor(
    directory: str | os.PathLike[str],
    *,
    model: str,
    layers: Sequence[int],
    pooling: Literal["last", "mean"],
    max_length: int,
    batch_size: int,
    dv_features: Literal["activations", "activations+probe"],
    probe: Any,
    dv_probes: dict[str, Any],
) -> Path:
    """Write a monitor bundle (each file atomically, the manifest last); returns the manifest path."""
    from ctd_stats.io import atomic_write_text

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    probe.save(d / "safety_probe.safetensors")
    files = {}
    for name, dvp in dv_probes.items():
        files[name] = f"dv_probe__{name}.safetensors"
        dvp.save(d / files[name])
    manifest = MonitorManifest(
        model=model,
        layers=list(layers),
        pooling=pooling,
        max_length=max_length,
        batch_size=batch_size,
        dv_features=dv_features,
        safety_probe="safety_probe.safetensors",
        dv_probes=files,
    )
    return atomic_write_text(d / MANIFEST, manifest.model_dump_json(indent=2) + "\n")


def read_manifest(directory: str | os.PathLike[str]) -> MonitorManifest:
    """Read and validate ``monitor.json``; errors name the file and the field."""
    path = Path(directory) / MANIFEST
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CTDInputError(
            f"{path}: no monitor bundle here (write one with `ctd scores SPEC --save-monitor DIR`)"
        ) from None
    try:
        return MonitorManifest.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise CTDInputError(f"{path}: invalid monitor manifest: {loc}: {first['msg']}") from None


class TextMonitor:
    """Scores raw texts with a saved bundle: activations -> safety probe p -> DV probe d.

    Parameters
    ----------
    directory
        The bundle written by :func:`save_monitor`.
    expert
        Whose DV probe to use; may be omitted when the bundle has one.
    device
        Torch device for the probed model (default: the loader's choice).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        expert: str | None = None,
        *,
        device: str | None = None,
    ) -> None:
        d = Path(directory)
        self.manifest = m = read_manifest(d)  # before the heavy imports: a wrong path fails fast

        from probes import assets
        from probes.activations import ActivationExtractor
        from probes.linear import DVProbe, SafetyProbe  # linear re-exports DVProbe (import order)

        if expert is None:
            if len(m.dv_probes) != 1:
                raise CTDInputError(
                    f"{d / MANIFEST}: several DV probes ({', '.join(m.dv_probes)}); name the expert"
                )
            expert = next(iter(m.dv_probes))
        if expert not in m.dv_probes:
            raise CTDInputError(
                f"{d / MANIFEST}: no DV probe for expert {expert!r} (has: {', '.join(m.dv_probes)})"
            )
        self.expert = expert
        self.probe = SafetyProbe.load(d / m.safety_probe)
        self.dv_probe = DVProbe.load(d / m.dv_probes[expert])
        loaded = assets.load_model(m.model, device=device) if device else assets.load_model(m.model)
        self.extractor = ActivationExtractor.from_loaded(
            loaded, max_length=m.max_length, batch_size=m.batch_size, cache_dir=None, progress=False
        )

    def score_texts(self, texts: Sequence[str]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """``(probe_prob, dv_score)`` per text, as the pipeline computed them for the score table."""
        if not texts:
            return np.zeros(0), np.zeros(0)
        x, _ = self.extractor.extract(list(texts), self.manifest.layers, self.manifest.pooling)
        p = np.asarray(self.probe.predict_proba(x), dtype=np.float64)
        extra = (
            np.c_[p, np.abs(p - 0.5)] if self.manifest.dv_features == "activations+probe" else None
        )
        d = np.asarray(self.dv_probe.predict(x, extra=extra), dtype=np.float64)
        return p, d

"""What the linear probes share: activation/label checks and the safetensors probe file format.

Used by :class:`probes.linear.SafetyProbe` and :class:`probes.dv_probe.DVProbe`. Importing this
module does not import torch (the functions do).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ctd_stats.errors import CTDInputError

__all__ = ["as_3d", "check_xy", "load_probe", "save_probe"]


def as_3d(x: Any) -> Any:
    """Activations as a torch tensor ``[n, layers, d]`` (a ``[n, d]`` input gets one layer)."""
    import torch

    x = torch.as_tensor(x)
    if x.ndim == 2:
        x = x[:, None, :]
    if x.ndim != 3:
        raise CTDInputError(
            f"activations must be [n, d] or [n, layers, d], got shape {tuple(x.shape)}"
        )
    return x


def check_xy(x: Any, y: Any) -> tuple[Any, Any]:
    """Checked (activations, float64 labels) for fitting: one finite row per label, at least 4 rows."""
    import torch

    x = as_3d(x)
    y = torch.as_tensor(np.asarray(y), dtype=torch.float64)
    if y.ndim != 1 or len(y) != x.shape[0]:
        raise CTDInputError(
            f"labels must be 1-D with one entry per row ({x.shape[0]}), got {tuple(y.shape)}"
        )
    if x.shape[0] < 4:
        raise CTDInputError(f"need at least 4 rows to fit a probe, got {x.shape[0]}")
    if not torch.isfinite(x).all():
        raise CTDInputError("activations contain NaN or infinite values")
    return x, y


def save_probe(path: str | os.PathLike[str], arrays: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Write a probe's arrays and JSON metadata as one safetensors file, atomically."""
    import torch
    from safetensors.torch import save

    from ctd_stats.io import atomic_write_bytes

    blob = save(
        {k: torch.as_tensor(np.ascontiguousarray(v, dtype=np.float64)) for k, v in arrays.items()},
        metadata={"ctd.probe": json.dumps(meta, allow_nan=True)},
    )
    return atomic_write_bytes(path, blob)


def load_probe(
    path: str | os.PathLike[str], kind: str
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a probe file written by :func:`save_probe`, refusing a file of another ``kind``."""
    from safetensors import safe_open

    p = Path(path)
    if not p.exists():
        raise CTDInputError(f"{p}: no such probe file")
    with safe_open(str(p), framework="pt") as fh:
        raw = (fh.metadata() or {}).get("ctd.probe")
        if raw is None:
            raise CTDInputError(f"{p}: not a ctd probe file (no 'ctd.probe' metadata)")
        meta = json.loads(raw)
        if meta.get("kind") != kind:
            raise CTDInputError(f"{p}: holds a {meta.get('kind')!r}, expected a {kind!r}")
        tensors = {k: fh.get_tensor(k).numpy() for k in fh.keys()}
    return tensors, meta

"""Helpers the Ray scoring tests ship to workers (importable as ``tests.distributed.tiny_model``)."""

from __future__ import annotations

import os
import time
from typing import Any


def tiny_loaded() -> Any:
    """The probes tests' tiny random Llama (seed 0) as a ``LoadedModel``, built on the worker."""
    import torch

    from probes.assets import LoadedModel, ModelSpec, PackageFile
    from tests.unit.probes.conftest import make_model, make_tokenizer

    torch.set_num_threads(1)
    spec = ModelSpec(
        name="tiny-test",
        description="tiny random Llama",
        packages=("none==0",),
        source="gguf",
        files=(PackageFile(module="none", path="none.gguf"),),
        sha256="0" * 64,
        num_layers=3,
        hidden_size=32,
        default_layers=(1, 2, 3),
        license="n/a",
    )
    return LoadedModel(make_model(), make_tokenizer(), spec, "cpu")


def record_pid_and_wait(pid_file: str, dwell_s: float, batch: Any) -> None:
    """Before each batch: append this worker's pid to ``pid_file``, then dwell ``dwell_s`` seconds."""
    with open(pid_file, "a", encoding="utf-8") as fh:
        fh.write(f"{os.getpid()}\n")
    time.sleep(dwell_s)

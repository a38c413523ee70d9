"""A small local Ray cluster shared by the Ray tests (2 CPUs, no dashboard), shut down at the end."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

ray = pytest.importorskip("ray")


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """``ray`` connected to a fresh local cluster; workers import this checkout."""
    from ctd_stats.engines.ray_engine import init_local

    if ray.is_initialized():
        ray.shutdown()
    init_local(num_cpus=2)
    yield ray
    ray.shutdown()

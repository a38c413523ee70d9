"""The Ray engine: pieces of work as Ray tasks (imported only with ``--engine ray``).

Connecting: an explicit address (``auto``, ``HOST:PORT``, ``ray://HOST:PORT``) joins that cluster;
without one, the cluster this process is already connected to is used, else a small local cluster
is started (``num_cpus`` = this machine's CPUs, no dashboard). An address that cannot be reached is
a :class:`~ctd_stats.errors.CTDInputError` (one line, exit code 2), found by a short TCP probe
before Ray's own (long) connection retries.

Local clusters started here put this checkout on the workers' ``PYTHONPATH``, so the workers import
the same ``ctd_stats``/``probes`` code as the driver (an editable install elsewhere would win
otherwise). On a real cluster, install the package on every node (``pip install '.[ray]'``).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ctd_stats.errors import CTDInputError

S = TypeVar("S")
T = TypeVar("T")
R = TypeVar("R")

#: Seconds to wait for a TCP connection to a cluster address before calling it unreachable.
PROBE_TIMEOUT_S = 3.0
#: Times Ray re-runs a task whose worker died.
TASK_RETRIES = 3


def code_root() -> str:
    """The folder that holds the ``ctd_stats`` package (put on local workers' ``PYTHONPATH``)."""
    return str(Path(__file__).resolve().parent.parent)


def local_runtime_env() -> dict[str, Any]:
    """Runtime environment of a local cluster: this checkout first on ``PYTHONPATH``."""
    path = os.pathsep.join(p for p in (code_root(), os.environ.get("PYTHONPATH", "")) if p)
    return {"env_vars": {"PYTHONPATH": path}}


def _host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of ``HOST:PORT`` or ``ray://HOST:PORT``; ``None`` for ``auto``."""
    if address in ("auto", "local"):
        return None
    rest = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = rest.rstrip("/").rpartition(":")
    if not sep or not port.isdigit():
        raise CTDInputError(f"--address {address!r}: expected auto, HOST:PORT or ray://HOST:PORT")
    return host or "127.0.0.1", int(port)


def check_reachable(address: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Raise :class:`CTDInputError` if nothing listens at the cluster address."""
    hp = _host_port(address)
    if hp is None:
        return
    try:
        with socket.create_connection(hp, timeout=timeout):
            pass
    except OSError as exc:
        raise CTDInputError(
            f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}); start it with "
            "`ray start --head` or check --address"
        ) from exc


def connect(address: str | None = None, num_cpus: int | None = None) -> Any:
    """Connect to (or start) a Ray cluster and return the ``ray`` module."""
    import ray

    if address is None and ray.is_initialized():
        return ray
    if address is not None:
        check_reachable(address)
        if ray.is_initialized():
            ray.shutdown()
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, TimeoutError) as exc:
            raise CTDInputError(f"cannot reach the Ray cluster at {address} ({exc})") from exc
        return ray
    ray.init(
        num_cpus=num_cpus or os.cpu_count() or 1,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env=local_runtime_env(),
    )
    return ray


def init_local(num_cpus: int = 2) -> Any:
    """Start a small local cluster for tests and benchmarks (call ``ray.shutdown()`` after)."""
    return connect(None, num_cpus=num_cpus)


class RayEngine:
    """Runs every piece as a Ray task (retried if its worker dies); results in item order.

    Parameters
    ----------
    address : str, optional
        See :func:`connect`.
    """

    name = "ray"

    def __init__(self, address: str | None = None) -> None:
        self.ray = connect(address)

    def map(self, fn: Callable[[S, T], R], shared: S, items: Sequence[T]) -> list[R]:
        """Run ``fn(shared, item)`` as one task per item; ``shared`` is put in the object store once."""
        ray = self.ray
        ref = ray.put(shared)
        remote = ray.remote(max_retries=TASK_RETRIES)(fn)
        return list(ray.get([remote.remote(ref, item) for item in items]))

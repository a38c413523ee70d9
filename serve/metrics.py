"""The gateway's counters and expert-latency histogram, exposed with ``prometheus_client``.

Each :class:`Metrics` owns its own :class:`prometheus_client.CollectorRegistry` (never the process
global one), so several gateways in one process (tests, replicas behind one ASGI server) keep
separate counts. The gateway's state (budget, realised rate, monitor evidence, log commits, ...)
is read at scrape time and exposed by a collector of the same registry: gauges, and counters for
the names ending in ``_total``. The text is the Prometheus exposition format (v0.0.4).
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

#: Upper bounds (seconds) of the expert-latency histogram buckets.
LATENCY_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Content type of ``GET /metrics``.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: What the gateway reports at scrape time: metric name -> (help, value).
Gauges = dict[str, tuple[str, float]]


class _StateCollector(Collector):
    """The gateway's state, read when scraped (a gauge each; a counter for ``*_total`` names)."""

    def __init__(self) -> None:
        self.read: Callable[[], Gauges] = dict

    def collect(self) -> Iterator[Metric]:
        for name, (text, value) in self.read().items():
            if name.endswith("_total"):
                yield CounterMetricFamily(name.removesuffix("_total"), text, value=value)
            else:
                yield GaugeMetricFamily(name, text, value=value)


class Metrics:
    """Thread-safe counters of one gateway (decisions by outcome, expert calls, rejections)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self._decisions = Counter(
            "ctd_decisions", "Decisions logged, by outcome.", ["outcome"], registry=r
        )
        self._delegations = Counter(
            "ctd_delegations", "Decisions with d > tau (the certified rule).", registry=r
        )
        self._expert_calls = Counter("ctd_expert_calls", "Texts sent to the expert.", registry=r)
        self._expert_failures = Counter(
            "ctd_expert_failures", "Texts the expert failed on, by kind.", ["kind"], registry=r
        )
        for kind in ("timeout", "error"):
            self._expert_failures.labels(kind=kind)
        self._rejected = Counter(
            "ctd_rejected_requests", "Requests refused, by HTTP status.", ["status"], registry=r
        )
        self._latency = Histogram(
            "ctd_expert_latency_seconds",
            "Wall time of expert calls.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._state = _StateCollector()
        r.register(self._state)
        self._render_lock = threading.Lock()

    def count_decisions(self, outcomes: list[str], delegated: int) -> None:
        for outcome, n in collections.Counter(outcomes).items():
            self._decisions.labels(outcome=outcome).inc(n)
        if delegated:
            self._delegations.inc(delegated)

    def count_expert(self, seconds: float, texts: int, failure: str | None) -> None:
        self._expert_calls.inc(texts)
        if failure is not None:
            self._expert_failures.labels(kind=failure).inc(texts)
        self._latency.observe(seconds)

    def count_rejected(self, status: int) -> None:
        self._rejected.labels(status=str(status)).inc()

    def render(self, gauges: Gauges) -> str:
        """The exposition text: the counters, the histogram and the gateway's ``gauges``
        (metric name -> (help, value))."""
        with self._render_lock:
            self._state.read = lambda: gauges
            try:
                return generate_latest(self.registry).decode("utf-8")
            finally:
                self._state.read = dict

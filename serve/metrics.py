"""Counters and a latency histogram, rendered in the Prometheus text exposition format (v0.0.4)."""

from __future__ import annotations

import math
import threading
from collections import Counter

#: Upper bounds (seconds) of the expert-latency histogram buckets.
LATENCY_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Thread-safe counters of the gateway (decisions by outcome, expert calls, rejections)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.decisions: Counter[str] = Counter()  # by outcome
        self.delegations = 0  # rule decisions d > τ
        self.expert_calls = 0
        self.expert_failures: Counter[str] = Counter()  # timeout / error
        self.rejected: Counter[int] = Counter()  # by HTTP status
        self._buckets = [0] * len(LATENCY_BUCKETS)
        self._lat_count = 0
        self._lat_sum = 0.0

    def count_decisions(self, outcomes: list[str], delegated: int) -> None:
        with self._lock:
            self.decisions.update(outcomes)
            self.delegations += delegated

    def count_expert(self, seconds: float, texts: int, failure: str | None) -> None:
        with self._lock:
            self.expert_calls += texts
            if failure is not None:
                self.expert_failures[failure] += texts
            self._lat_count += 1
            self._lat_sum += seconds
            for i, ub in enumerate(LATENCY_BUCKETS):
                if seconds <= ub:
                    self._buckets[i] += 1

    def count_rejected(self, status: int) -> None:
        with self._lock:
            self.rejected[status] += 1

    def render(self, gauges: dict[str, tuple[str, float]]) -> str:
        """The exposition text; ``gauges`` maps a metric name to (help, value)."""
        lines: list[str] = []

        def head(name: str, kind: str, text: str) -> None:
            lines.append(f"# HELP {name} {text}")
            lines.append(f"# TYPE {name} {kind}")

        with self._lock:
            head("ctd_decisions_total", "counter", "Decisions logged, by outcome.")
            for outcome, n in sorted(self.decisions.items()):
                lines.append(f'ctd_decisions_total{{outcome="{outcome}"}} {n}')
            head("ctd_delegations_total", "counter", "Decisions with d > tau (the certified rule).")
            lines.append(f"ctd_delegations_total {self.delegations}")
            head("ctd_expert_calls_total", "counter", "Texts sent to the expert.")
            lines.append(f"ctd_expert_calls_total {self.expert_calls}")
            head("ctd_expert_failures_total", "counter", "Texts the expert failed on, by kind.")
            for kind in ("timeout", "error"):
                lines.append(
                    f'ctd_expert_failures_total{{kind="{kind}"}} {self.expert_failures[kind]}'
                )
            head("ctd_rejected_requests_total", "counter", "Requests refused, by HTTP status.")
            for status, n in sorted(self.rejected.items()):
                lines.append(f'ctd_rejected_requests_total{{status="{status}"}} {n}')
            head("ctd_expert_latency_seconds", "histogram", "Wall time of expert calls.")
            for ub, n in zip(LATENCY_BUCKETS, self._buckets, strict=True):  # already cumulative
                lines.append(f'ctd_expert_latency_seconds_bucket{{le="{ub:g}"}} {n}')
            lines.append(f'ctd_expert_latency_seconds_bucket{{le="+Inf"}} {self._lat_count}')
            lines.append(f"ctd_expert_latency_seconds_sum {self._lat_sum:.6f}")
            lines.append(f"ctd_expert_latency_seconds_count {self._lat_count}")
        for name, (text, value) in gauges.items():
            head(name, "gauge", text)
            lines.append(f"{name} {_num(value)}")
        return "\n".join(lines) + "\n"


def _num(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:.10g}"

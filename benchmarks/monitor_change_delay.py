"""Detection delay after a rate change, by length of the compliant history (issue 19's table).

Budget 0.2, alpha 0.05; ``history`` decisions at rate 0.1 (compliant), then decisions at rate 0.4.
The delay is the number of decisions after the change until the first alarm, for the gateway's
change detector (:class:`ctd_stats.audit.change_monitor.ChangeMonitor`) and for the cumulative
test (:class:`ctd_stats.audit.monitor.BudgetMonitor`, capped at ``--cap`` decisions after the
change). Fixed seeds; prints a Markdown table (median, min-max over ``--streams`` streams).

Run: ``python benchmarks/monitor_change_delay.py`` (about a minute on 2 cores; the cumulative
monitor after 1M good decisions is skipped unless ``--cumulative-1m``: its delay is ~510k).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ctd_stats.audit.change_monitor import ChangeMonitor
from ctd_stats.audit.monitor import BudgetMonitor

BUDGET, ALPHA, BEFORE, AFTER = 0.2, 0.05, 0.1, 0.4


def delay(kind: str, history: int, seed: int, cap: int) -> float:
    """Decisions after the change until the alarm (inf when none within ``cap``)."""
    rng = np.random.default_rng(seed)
    mon = ChangeMonitor(BUDGET, ALPHA) if kind == "change" else BudgetMonitor(BUDGET, ALPHA)
    for a in range(0, history, 1 << 18):
        mon.update(rng.random(min(1 << 18, history - a)) < BEFORE)
    if mon.alarm:
        return -1.0  # a false alarm before the change
    mon.update(rng.random(cap) < AFTER)
    return float("inf") if mon.alarm_at is None else float(mon.alarm_at + 1 - history)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", type=int, default=5)
    ap.add_argument("--cap", type=int, default=60_000)
    ap.add_argument("--cumulative-1m", action="store_true")
    args = ap.parse_args()
    print("| good decisions before the change | change detector: median (min-max) | "
          "cumulative test: median (min-max) |")  # fmt: skip
    print("|---|---|---|")
    for history in (0, 50_000, 1_000_000):
        cells = []
        for kind in ("change", "cumulative"):
            if kind == "cumulative" and history == 1_000_000 and not args.cumulative_1m:
                cells.append("not run (~510k in issue 19)")
                continue
            t0 = time.perf_counter()
            d = np.array([delay(kind, history, 1000 + s, args.cap) for s in range(args.streams)])
            fmt = lambda x: f"> {args.cap:,}" if not np.isfinite(x) else f"{x:,.0f}"  # noqa: E731
            cells.append(
                f"{fmt(np.median(d))} ({fmt(d.min())}-{fmt(d.max())})"
                f" [{time.perf_counter() - t0:.1f} s]"
            )
        print(f"| {history:,} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

"""Both sequential monitors expose the same decision counts (``DecisionCounts``), and keep counting
after an alarm (the test stops, the counts do not)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from ctd_stats.audit.change_monitor import ChangeMonitor
from ctd_stats.audit.monitor import BudgetMonitor, DecisionCounts


@pytest.mark.parametrize(
    "make", [lambda: BudgetMonitor(0.1, 0.05), lambda: ChangeMonitor(0.1, 0.05)]
)
def test_counts_keep_growing_after_the_alarm(
    make: Callable[[], BudgetMonitor | ChangeMonitor],
) -> None:
    x = np.random.default_rng(3).random(3000) < 0.5  # far above the budget: alarms early
    mon = make()
    assert isinstance(mon, DecisionCounts)
    assert (mon.n, mon.k) == (0, 0)
    mon.update(x[:1000]).update(x[1000:])
    assert mon.alarm and mon.alarm_at is not None and mon.alarm_at < 1000
    assert (mon.n, mon.k) == (3000, int(x.sum()))
    mon.update(True)
    assert (mon.n, mon.k) == (3001, int(x.sum()) + 1)

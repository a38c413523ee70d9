"""Benchmark: issue 20 item 6 — figure cost of `ctd run specs/demo.yaml`, `ctd validate` start-up.

Targets: the 16 figures of the demo run cost ≤ 2 s (they were 54–59% of the run's CPU, drawn also
for a JSON-only run), and `ctd validate specs/demo.yaml` ≤ 0.5 s wall (was 1.7 s: pandas and
scipy.stats imported). Figures are timed as the CPU seconds of building the two reports (every
figure is drawn there, once for both md and html) inside one in-process run; validate as the best
of 5 fresh interpreters. The numbers are printed; the asserts are loose regression guards only
(timings on the shared 2-core machine vary 3x with its load).

Measured there (load average 2.5-3), before -> after the changes of d7c1f22/61e43b9:
- `ctd validate specs/demo.yaml`: best of 5 0.96 s -> 0.41-0.45 s wall (pandas, scipy and the
  certificate models no longer imported; user CPU 0.86 -> 0.42 s).
- the 16 figures, CPU of building both reports from the same captured inputs: 5.8 s -> 4.5 s (a
  figure with a layout engine is drawn once instead of twice); under cProfile in the full demo
  run 41.8 s of 60.8 s (69%) -> 22.1 s of 37.6 s (59%). A JSON-only run draws none (0 s).
  Then (benchmarks/test_bench_figures.py, the figure work of 2abeec2..941c8a4): 4.3-5.1 s ->
  2.0-2.3 s CPU under load 3-4.5, each figure drawn once on a reused canvas with a one-pass layout.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "specs" / "demo.yaml"


def _timed(spent: list[float], fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            spent.append(time.process_time() - t)

    return wrapper


@pytest.mark.parametrize("repeats", [50])
def test_demo_run_figure_cost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, repeats: int
) -> None:
    import ctd_stats.reports.calibration as cal
    import ctd_stats.reports.study as study
    from ctd_stats.cli.entry import main
    from ctd_stats.reports.document import Figure

    spent: list[float] = []
    drawn: list[str] = []
    monkeypatch.setattr(study, "build_study_report", _timed(spent, study.build_study_report))
    monkeypatch.setattr(
        cal, "build_calibration_report", _timed(spent, cal.build_calibration_report)
    )
    original = Figure.from_matplotlib.__func__  # type: ignore[attr-defined]

    def count(cls: type[Figure], fig: Any, caption: str = "", dpi: int = 110) -> Figure:
        drawn.append(caption)
        return original(cls, fig, caption, dpi)

    monkeypatch.setattr(Figure, "from_matplotlib", classmethod(count))
    import matplotlib.pyplot  # noqa: F401  (import and font cache outside the timed part)

    t0 = time.process_time()
    code = main(["run", str(DEMO), "--repeats", str(repeats), "-o", str(tmp_path / "o"), "--force"])
    total = time.process_time() - t0
    figures = sum(spent)
    print(
        f"\nctd run demo (--repeats {repeats}): {len(drawn)} figures, figure CPU {figures:.2f} s "
        f"of {total:.2f} s ({figures / total:.0%}); target ≤ 2 s"
    )
    assert code in (0, 1)
    assert len(drawn) == 16
    assert figures < 10.0  # regression guard; the target is reported above


def test_validate_wall_time() -> None:
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "ctd_stats", "validate", str(DEMO)],
            capture_output=True,
            check=True,
            cwd=REPO,
        )
        best = min(best, time.perf_counter() - t)
    print(f"\nctd validate specs/demo.yaml: best of 5 {best:.3f} s wall (target 0.5 s)")
    assert best < 2.0  # regression guard; the target is reported above

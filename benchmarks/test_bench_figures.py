"""Benchmark: issue 20 item 6 — the figures of ``ctd run specs/demo.yaml`` cost ≤ 2 s of CPU.

The demo run draws 12 figures (per expert: cascade quality, ranking-only curves, budget compliance,
adaptivity across groups, the calibration figure of its budgets, the held-out evaluation). The target is timed inside ``ctd run specs/demo.yaml`` in a fresh interpreter: the
two report builds (every figure drawn, once for md and html) are wrapped and their CPU and wall
summed. Nothing is pickled. Best of 3 interpreters is compared with the target; the assert is a loose
regression guard (2x the target): CPU seconds on the shared 2-core machine vary 1.5-2x with its
load. The second test times the same builds in one warm process with pytest-benchmark, from the
report inputs of one demo run kept in memory.

Measured on the shared 2-core machine (load average 3-4.5 throughout), interleaved with the
report code before the change:
- before (savefig: two draws per figure; constrained layout: two measurements per axes; mathtext
  decade labels; pyplot; RGBA PNG): figures 4.3-5.1 s CPU in the full demo run (3.5 s when the
  machine was idle), the issue's 4.3-4.9 s; the run 10.2-10.6 s CPU;
- after (one draw; one measurement; figures reused per kind with their Agg canvas; titles placed
  without measuring; the run's heap frozen; palette PNG): figures 2.0-2.3 s CPU in the run, this
  benchmark's best of 3 2.1 s (load 4.4); the run 7.2-8.3 s CPU. About 0.45x of before in every
  interleaved pair; byte-identical figures whether reused or fresh.
- timed inside the run itself (this benchmark since then; matplotlib's import, about 0.5 s, now
  counts, as it does in a run), machine nearly idle (load about 1): 2.55, 3.04, 2.67 s CPU; the
  same figures from stored inputs with matplotlib already imported 2.00-2.34 s. Target not met.
- matplotlib 3.10.9 instead of the pinned 3.11.2: measured here at load about 1, 2.00-2.19 s
  against 2.12-2.34 s from stored inputs (about 5%; an earlier loaded run suggested 20-25%).
  3.11's Agg path renders text glyph by glyph, 3.10 in one call; not pinned for 5%.
- then (target met): the calibration report draws one figure per expert for its budgets (the ht
  rate curve and the opt Pareto front are the expert's, so its three budgets were three copies of
  two panels: 6 figures -> 2), and linear axes carry at most 5 major ticks (628 -> 469 ticks):
  timed inside the run, load about 0.8: 1.76, 1.72, 1.52 s CPU (best 1.52 s), 12 figures; from
  stored inputs with matplotlib imported, interleaved: 2.20 s (16 figures, automatic ticks) ->
  1.84 s (fewer ticks) -> 1.40 s (and grouped budgets), best of 5.

Run with ``pytest benchmarks/test_bench_figures.py -s``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "specs" / "demo.yaml"
TARGET_CPU_SECONDS = 2.0
FIGURES = 12

_RUN = textwrap.dedent(
    """
    import json, sys, time
    import ctd_stats.reports.calibration as cal
    import ctd_stats.reports.study as study
    from ctd_stats.cli.entry import main
    from ctd_stats.reports.document import Figure

    spent = {"cpu": 0.0, "wall": 0.0, "figures": 0}

    def timed(fn):
        def wrapper(*args, **kwargs):
            cpu, wall = time.process_time(), time.perf_counter()
            rep = fn(*args, **kwargs)
            spent["cpu"] += time.process_time() - cpu
            spent["wall"] += time.perf_counter() - wall
            spent["figures"] += sum(isinstance(b, Figure) for b in rep.blocks)
            return rep
        return wrapper

    study.build_study_report = timed(study.build_study_report)
    cal.build_calibration_report = timed(cal.build_calibration_report)
    code = main(["run", sys.argv[1], "-o", sys.argv[2], "--force", "-q"])
    assert code in (0, 1), code
    print(json.dumps(spent))
    """
)


@pytest.fixture(scope="module")
def stored_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The demo run's report inputs, kept in memory (``progress`` left out: the CLI's bar)."""
    import ctd_stats.reports.calibration as cal
    import ctd_stats.reports.study as study
    from ctd_stats.cli.entry import main

    tmp = tmp_path_factory.mktemp("figures")
    seen: dict[str, Any] = {}
    mp = pytest.MonkeyPatch()

    def capture(name: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            seen[name] = (args, {k: v for k, v in kwargs.items() if k != "progress"})
            return fn(*args, **kwargs)

        return wrapper

    mp.setattr(study, "build_study_report", capture("study", study.build_study_report))
    mp.setattr(
        cal, "build_calibration_report", capture("calibration", cal.build_calibration_report)
    )
    try:
        assert main(["run", str(DEMO), "-o", str(tmp / "out"), "--force", "-q"]) in (0, 1)
    finally:
        mp.undo()
    return seen


def test_demo_figures_cpu_in_a_fresh_interpreter(tmp_path: Path) -> None:
    """The figures' CPU inside ``ctd run specs/demo.yaml`` itself (both report builds, timed in the
    run), in 3 fresh interpreters."""
    runs = []
    for i in range(3):
        out = subprocess.run(
            [sys.executable, "-c", _RUN, str(DEMO), str(tmp_path / f"out{i}")],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    best = min(runs, key=lambda r: r["cpu"])
    print(
        f"\nctd run specs/demo.yaml, {best['figures']} figures drawn in the run: CPU "
        + ", ".join(f"{r['cpu']:.2f}" for r in runs)
        + f" s (best {best['cpu']:.2f} s, wall {best['wall']:.2f} s); target ≤ "
        f"{TARGET_CPU_SECONDS:g} s CPU: {'met' if best['cpu'] <= TARGET_CPU_SECONDS else 'NOT met'}"
    )
    assert all(r["figures"] == FIGURES for r in runs)
    assert best["cpu"] <= 2 * TARGET_CPU_SECONDS  # regression guard; the target is printed


def test_demo_figures_warm_process(benchmark: Any, stored_results: dict[str, Any]) -> None:
    from ctd_stats.reports.calibration import build_calibration_report
    from ctd_stats.reports.document import Figure
    from ctd_stats.reports.study import build_study_report

    stored = stored_results

    def draw() -> int:
        args, kwargs = stored["study"]
        run = build_study_report(*args, **kwargs)
        args, kwargs = stored["calibration"]
        cal = build_calibration_report(*args, **kwargs)
        return sum(isinstance(b, Figure) for rep in (run, cal) for b in rep.blocks)

    assert benchmark.pedantic(draw, rounds=3, iterations=1) == FIGURES
    print(f"\n{FIGURES} demo figures, warm process: mean {benchmark.stats.stats.mean:.2f} s wall")

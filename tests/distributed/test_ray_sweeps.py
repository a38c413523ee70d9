"""Simulation sweeps and studies on Ray give exactly the local engine's numbers (same seed)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from ctd_stats.engines.local import LocalEngine, get_engine
from ctd_stats.stats.simulate import make_population, simulate_budget_guarantee
from ctd_stats.study.simulation_grid import simulate_grid

pytestmark = pytest.mark.ray


def test_budget_simulation_equal_on_ray(ray_cluster: Any) -> None:
    pop = make_population("normal")
    kw: dict[str, Any] = {"n": 200, "budget": 0.3, "delta": 0.1, "trials": 1200, "seed": 5}
    local = simulate_budget_guarantee(pop, **kw)
    remote = simulate_budget_guarantee(pop, engine=get_engine("ray"), **kw)
    assert remote.violations == local.violations
    assert remote.fail_closed == local.fail_closed
    np.testing.assert_array_equal(remote.realized_rates, local.realized_rates)


def test_grid_equal_on_ray(ray_cluster: Any) -> None:
    kw: dict[str, Any] = {
        "sizes": [100, 300],
        "budgets": [0.2, 0.3],
        "procedures": ["fixed_sequence", "bonferroni"],
        "delta": 0.1,
        "trials": 700,
        "seed": 11,
    }
    pop = make_population("discrete")
    assert simulate_grid(pop, engine=get_engine("ray"), **kw) == simulate_grid(
        pop, engine=LocalEngine(), **kw
    )


def _inputs(n: int = 400, seed: int = 0) -> Any:
    from ctd_stats.study.runner import StudyInputs

    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.4
    p = np.clip(0.5 + (2 * y - 1) * rng.normal(0.15, 0.25, n), 0, 1)
    b = np.clip(0.5 + (2 * y - 1) * rng.normal(0.3, 0.25, n), 0, 1)
    d = (2 * y - 1) * (b - p) + rng.normal(0, 0.3, n)
    return StudyInputs(y, p, b, d, rng.choice(["a", "b", "c"], n), expert="synthetic")


def test_study_equal_on_ray(ray_cluster: Any) -> None:
    from ctd_stats.study.runner import run_study

    kw: dict[str, Any] = {"budgets": [0.1, 0.3], "repeats": 23, "seed": 4}
    local = run_study(_inputs(), **kw)
    remote = run_study(_inputs(), engine=get_engine("ray"), **kw)
    assert json.dumps(remote.to_dict()) == json.dumps(local.to_dict())
    np.testing.assert_array_equal(remote.auroc, local.auroc)


def test_cli_simulate_engine_ray_equals_local(
    ray_cluster: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from ctd_stats.cli.entry import main

    rows = []
    for engine in ("local", "ray"):
        assert (
            main(["simulate", "--trials", "600", "--seed", "3", "--json", "--engine", engine]) == 0
        )
        rows.append(json.loads(capsys.readouterr().out)["rows"])
    assert rows[0] == rows[1]


def test_unreachable_address_is_exit_2() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "ctd_stats.cli",
            "simulate",
            "--trials",
            "10",
            "--engine",
            "ray",
            "--address",
            "ray://127.0.0.1:9",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the Ray cluster at ray://127.0.0.1:9" in lines[0]

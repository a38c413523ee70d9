"""Which tests are slow: the default set (``pytest -m "not slow"``, ``nox -s fast``) leaves them out.

Marked here rather than in each file so that the measured budget of the default set (noxfile,
``FAST_CPU``) has one list to read. Everything still runs in ``nox -s tests`` (the README command and
CI). Slow means: a Ray cluster, a full ``ctd run`` of a shipped table, a real model, a subprocess
that imports the whole stack several times, or a simulation of thousands of calibrations.
"""

from __future__ import annotations

#: Whole folders.
SLOW_DIRS = ("tests/distributed/", "tests/guarantees/")
#: Single tests or whole files, by node-id prefix (path relative to the repository root).
SLOW_TESTS = (
    "tests/e2e/test_demo.py",
    "tests/e2e/test_semi_synthetic.py",
    "tests/e2e/test_weak_expert_table.py",
    "tests/e2e/test_demo_full_rebuild.py",
    "tests/unit/probes/test_local_models.py::test_a_gguf_file_by_path_is_the_registered_model",
    "tests/e2e/test_docs.py",
    "tests/e2e/test_outputs_hostile.py",
    "tests/e2e/test_cli_run.py::test_ctd_run_end_to_end",
    "tests/e2e/test_flags_and_caps.py::test_drawing_figures_shows_progress",
    "tests/e2e/test_hostile_inputs.py::test_file_too_large_on_write_names_the_file",
    "tests/e2e/test_hostile_inputs.py::test_fifo_spec_and_table_do_not_hang",
    "tests/e2e/test_hostile_inputs.py::test_dev_zero_as_spec_and_table",
    "tests/unit/stats/test_fwer.py::test_holm_and_bonferroni_match_statsmodels",
    "tests/unit/cli/test_cli_conventions.py::test_quiet_and_verbose_anywhere_on_the_line",
    "tests/unit/reports/test_figures.py",
    "tests/unit/reports/test_outputs.py::test_rerun_of_the_same_spec_updates_and_removes_its_stale_files",
    "tests/unit/reports/test_outputs.py::test_refuses_to_overwrite_a_file_no_run_wrote",
    "tests/unit/audit/test_monitor_delay.py::test_exact_distribution_matches_simulated_streams",
    "tests/unit/serve/test_crash.py",
    "tests/unit/probes/experts/test_experts_judge.py::test_judge_with_packaged_smollm2_tokenizer",
    "tests/unit/study/test_controls_null.py",
    "tests/unit/engines/test_engines.py::test_local_path_imports_no_ray",
    # gateway processes started and stopped (and a PostgreSQL server), subprocess import checks,
    # shipped tables calibrated, demo figures drawn twice
    "tests/unit/serve/test_operations.py",
    "tests/unit/serve/test_postgres_log.py",
    "tests/unit/serve/test_startup_imports.py",
    "tests/e2e/test_lazy_work.py",
    "tests/e2e/test_demo_groups.py",
    "tests/unit/reports/test_figure_cost.py::test_a_reused_figure_renders_the_same_pixels_as_a_fresh_one",
)


def is_slow(nodeid: str) -> bool:
    """Whether the test with this node id (``path::name[params]``) is in the slow set."""
    return nodeid.startswith(SLOW_DIRS) or any(
        nodeid == t or nodeid.startswith(t + "::") or nodeid.startswith(t + "[") for t in SLOW_TESTS
    )

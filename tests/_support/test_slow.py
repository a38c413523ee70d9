"""The slow list names tests that exist (a stale entry would silently stop marking anything)."""

from __future__ import annotations

from pathlib import Path

from tests._support.slow import SLOW_DIRS, SLOW_TESTS, is_slow

ROOT = Path(__file__).resolve().parents[2]


def test_every_slow_entry_exists():
    for d in SLOW_DIRS:
        assert (ROOT / d).is_dir(), d
    for t in SLOW_TESTS:
        path, _, name = t.partition("::")
        assert (ROOT / path).is_file(), t
        if name:
            assert f"def {name}(" in (ROOT / path).read_text(encoding="utf-8"), t


def test_is_slow_matches_prefixes_only_on_boundaries():
    assert is_slow("tests/guarantees/test_budget_guarantees.py::test_budget_guarantee[a-b]")
    assert is_slow("tests/unit/reports/test_figures.py::test_x")
    assert is_slow("tests/unit/stats/test_fwer.py::test_holm_and_bonferroni_match_statsmodels")
    assert not is_slow(
        "tests/unit/stats/test_fwer.py::test_holm_and_bonferroni_match_statsmodels_x"
    )
    assert not is_slow("tests/unit/stats/test_fwer.py::test_fixed_sequence")

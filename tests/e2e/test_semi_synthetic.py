"""The semi-synthetic benchmark (specs/semi-synthetic.yaml): pre-registered expectations and what happened.

Real rows, labels, sources, probe scores and activations; synthetic experts (scripts/build_demo_extras.py).
Written down before the table was built:

* ``measured`` (per-source strengths of the real judge): CTD beats calibrated uncertainty at budget 0.3
  (paired 95% interval over splits above 0) — held;
* ``uniform`` and ``no_better``: CTD ties calibrated uncertainty — **failed** (+0.060 and +0.041 AUROC,
  intervals above 0). The shifted probe's quality differs by source, so even an expert of uniform
  strength is worth most where the probe is confidently wrong, which the DV sees and |p − ½| does not.
  The tests below state that measured finding, not the failed expectation;
* ``probe_copy`` (added after that run as the genuine null: b = p, nothing to gain): CTD ties exactly;
* every arm keeps the budget guarantee (violations within the exact binomial tolerance at δ).
"""

import json
from pathlib import Path

import numpy as np
import pytest

from ctd_stats.cli.entry import main
from tests._support.tolerance import binomial_tolerance

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "specs" / "semi-synthetic.yaml"


@pytest.fixture(scope="module")
def semi_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("semi")
    code = main(["run", str(SPEC), "-o", str(out), "--repeats", "100"])
    return (
        code,
        out,
        {e["expert"]: e for e in json.loads((out / "study.json").read_text())["experts"]},
    )


def _delta_at(e: dict, budget: float) -> dict:
    j = int(np.argmin(np.abs(np.asarray(e["budgets"]) - budget)))
    return e["auroc_delta"]["ctd"][j]


def test_the_scenarios_are_there_and_labelled(semi_run):
    code, out, experts = semi_run
    assert code in (0, 1)
    assert set(experts) == {"measured", "uniform", "no_better", "probe_copy"}
    assert "SEMI-SYNTHETIC" in (out / "report.md").read_text()


def test_measured_scenario_ctd_beats_calibrated_uncertainty(semi_run):
    r = _delta_at(semi_run[2]["measured"], 0.3)
    assert r["ci95"][0] > 0, r


@pytest.mark.parametrize("scenario", ["uniform", "no_better"])
def test_a_uniform_expert_still_gains_where_the_shifted_probe_fails(semi_run, scenario):
    """The pre-registered tie did not happen: CTD gains (interval above 0), and the gain follows the
    per-source value of delegating (sources where v is larger get a larger share of delegations)."""
    from scipy import stats

    e = semi_run[2][scenario]
    r = _delta_at(e, 0.3)
    assert r["ci95"][0] > 0, r
    j = int(np.argmin(np.abs(np.asarray(e["budgets"]) - 0.3)))
    assert stats.spearmanr(e["groups"]["mean_v"], e["groups"]["rate"]["ctd"][j]).statistic > 0


def test_probe_copy_is_an_exact_tie(semi_run):
    """b = p: delegating changes no score, so every method equals the probe alone at every budget."""
    e = semi_run[2]["probe_copy"]
    for row in e["auroc_delta"]["ctd"]:
        assert row["mean"] == 0 and row["ci95"] == [0, 0]
    assert np.allclose(e["auroc"]["ctd"], e["probe_only"]["auroc"])


def test_budget_guarantee_holds_in_every_scenario(semi_run):
    for e in semi_run[2].values():
        g = e["guarantee_check"]
        k = binomial_tolerance(g["trials"], e["delta"])
        assert max(g["violations"]) <= k, (e["expert"], g["violations"], k)

"""The weak-expert outcome documented in docs/concepts.md is the study's output on the shipped table.

The section "Pre-registered: the weak-expert setting" ends with machine-readable tables between HTML
comment markers. These tests rerun ``ctd run`` on ``specs/weak-expert.yaml`` (``split: opt_ht``)
and ``specs/weak-expert-none.yaml`` (``split: none``) over the shipped table
``data/weak_build/weak_scores.parquet`` and require every documented figure to equal the study's
(or the table's) value rounded as printed: tolerance 0.0005 (three decimals) plus 1e-9. The study
is deterministic (seeded splits), so any drift of the table, the study or the docs fails here, as
does a PASS/FAIL word that the numbers do not support.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata

from ctd_stats.cli.entry import main

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "concepts.md"
TABLE = ROOT / "data" / "weak_build" / "weak_scores.parquet"
SPECS = {
    "opt_ht": ROOT / "specs" / "weak-expert.yaml",
    "none": ROOT / "specs" / "weak-expert-none.yaml",
}
TOL = 0.0005 + 1e-9
REAL = {"harmbench", "wildguard", "strongreject_edgy", "toxigen", "pyrit_harm"}


def _block(name: str) -> list[list[str]]:
    """Rows (cells) of the markdown table between ``<!-- name: begin -->`` and ``<!-- name: end -->``."""
    text = DOCS.read_text(encoding="utf-8")
    m = re.search(rf"<!-- {name}: begin -->\n(.*?)<!-- {name}: end -->", text, re.S)
    assert m, f"docs/concepts.md has no {name} block"
    lines = [ln for ln in m.group(1).splitlines() if ln.startswith("|")][2:]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]


def _num(cell: str) -> float:
    return float(cell.replace("−", "-").replace("+", ""))


def _interval(cell: str) -> tuple[float, float]:
    lo, hi = cell.strip("[]").split(",")
    return _num(lo), _num(hi)


def _auroc(y: np.ndarray, s: np.ndarray) -> float:
    yb = y.astype(bool)
    n1, n0 = int(yb.sum()), int((~yb).sum())
    r = rankdata(s)
    return float((r[yb].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    out = {}
    for name, spec in SPECS.items():
        d = tmp_path_factory.mktemp(f"weak-{name}")
        assert main(["run", str(spec), "-o", str(d)]) in (0, 1)
        out[name] = {e["expert"]: e for e in json.loads((d / "study.json").read_text())["experts"]}
    return out


def _at(e: dict, budget: float) -> int:
    return int(np.argmin(np.abs(np.asarray(e["budgets"]) - budget)))


def test_table_roles_follow_the_preregistration() -> None:
    t = pd.read_parquet(TABLE)
    assert set(t.loc[t["split"] != "train", "group"]) == REAL  # deployment on real sources only
    train_groups = set(t.loc[t["split"] == "train", "group"])
    assert {"neuralchemy_v1", "rho_refusal"} <= train_groups
    assert t["id"].is_unique
    for col in (
        "probe_prob",
        "expert_prob__strong",
        "expert_prob__weak",
        "dv_score__strong",
        "dv_score__weak",
        "probe_prob_refit",
    ):
        assert np.isfinite(t.loc[t["split"] != "train", col]).all(), col


def test_documented_headline_equals_the_study(studies: dict[str, dict]) -> None:
    rows = _block("weak-expert-outcome")
    assert len(rows) == 8  # 2 protocols x 2 experts x budgets 0.1, 0.3
    for proto, expert, budget, ctd, unc, delta, ci, rate in rows:
        e = studies[proto][expert]
        i = _at(e, float(budget))
        assert abs(e["auroc"]["ctd"][i] - _num(ctd)) <= TOL
        assert abs(e["auroc"]["unc_calibrated"][i] - _num(unc)) <= TOL
        d = e["auroc_delta"]["ctd"][i]
        assert abs(d["mean"] - _num(delta)) <= TOL
        lo, hi = _interval(ci)
        assert abs(d["ci95"][0] - lo) <= TOL and abs(d["ci95"][1] - hi) <= TOL
        assert abs(e["rate"]["ctd"][i] - _num(rate)) <= TOL


def test_documented_group_rates_equal_the_study(studies: dict[str, dict]) -> None:
    rows = _block("weak-expert-groups")
    assert {r[0] for r in rows} == REAL
    for src, n, v_weak, ctd_w, unc_w, v_strong, ctd_s, unc_s in rows:
        for expert, v, c, u in (("weak", v_weak, ctd_w, unc_w), ("strong", v_strong, ctd_s, unc_s)):
            e = studies["opt_ht"][expert]
            g = e["groups"]
            k = g["names"].index(src)
            i = _at(e, 0.3)
            assert g["sizes"][k] == int(n)
            assert abs(g["mean_v"][k] - _num(v)) <= TOL
            assert abs(g["rate"]["ctd"][i][k] - _num(c)) <= TOL
            assert abs(g["rate"]["unc_calibrated"][i][k] - _num(u)) <= TOL


def test_documented_criteria_follow_from_the_numbers(studies: dict[str, dict]) -> None:
    text = DOCS.read_text(encoding="utf-8")
    words = dict(re.findall(r"\*\*(C[123]) \(opt/ht\): (PASS|FAIL)\*\*", text))
    assert set(words) == {"C1", "C2", "C3"}, words
    w, s = studies["opt_ht"]["weak"], studies["opt_ht"]["strong"]
    i = _at(w, 0.3)
    c1 = w["auroc_delta"]["ctd"][i]["mean"] > s["auroc_delta"]["ctd"][i]["mean"]
    g = w["groups"]
    hurt = [k for k, v in enumerate(g["mean_v"]) if v < 0]
    c2 = w["rate"]["ctd"][i] < 0.3 and all(
        g["rate"]["ctd"][i][k] < 0.3 and g["rate"]["ctd"][i][k] < g["rate"]["unc_calibrated"][i][k]
        for k in hurt
    )
    from scipy import stats

    def tol(trials: int, delta: float) -> int:
        k = int(stats.binom.ppf(0.999, trials, delta))
        while stats.binom.sf(k, trials, delta) > 0.001:
            k += 1
        return k

    c3 = all(
        max(e["guarantee_check"]["violations"]) <= tol(e["guarantee_check"]["trials"], e["delta"])
        for e in (w, s)
    )
    assert words == {
        "C1": "PASS" if c1 else "FAIL",
        "C2": "PASS" if c2 else "FAIL",
        "C3": "PASS" if c3 else "FAIL",
    }


def test_documented_pool_aurocs_equal_the_table() -> None:
    t = pd.read_parquet(TABLE)
    pool = t[t["split"] == ""]
    cols = ["probe_prob", "expert_prob__strong", "expert_prob__weak", "probe_prob_refit"]
    rows = _block("weak-expert-auroc")
    assert {r[0] for r in rows} == REAL | {"all"}
    for src, n, *vals in rows:
        d = pool if src == "all" else pool[pool["group"] == src]
        assert len(d) == int(n)
        for col, cell in zip(cols, vals, strict=True):
            assert abs(_auroc(d["label"].to_numpy(), d[col].to_numpy()) - _num(cell)) <= TOL, (
                src,
                col,
            )

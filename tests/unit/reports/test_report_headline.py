"""Issue 21: the headline (CTD against calibrated uncertainty, per expert and budget) is the first
table of the ``ctd run`` report, in HTML and Markdown, with the numbers of study.json."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ctd_stats.cli.entry import main
from ctd_stats.reports.study_headline import HEADLINE
from tests.conftest import score_frame, write_frame


def test_headline_is_the_first_table(tmp_path: Path) -> None:
    write_frame(score_frame(700), tmp_path / "scores.parquet")
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "data: {table: scores.parquet}\ncalibration: {budget: [0.2, 0.4]}\n"
        "evaluation: {repeats: 3, budgets: [0.2, 0.4]}\noutputs: {directory: out, formats: [md, html]}\n",
        encoding="utf-8",
    )
    assert main(["run", str(spec)]) in (0, 1)
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    first_table = html.index("<table")
    heading = html.index(HEADLINE)
    assert heading < first_table, "the headline heading must come before the first table"
    assert html.count("<h2", heading, first_table) == 0 and "<table" not in html[:heading]
    first = html[first_table : html.index("</table>", first_table)]
    assert "calibrated uncertainty AUROC" in first and "Δ AUROC" in first
    study = json.loads((tmp_path / "out" / "study.json").read_text())
    assert first.count("<tr") == 1 + 2 * len(
        study["experts"]
    )  # header + one row per (expert, budget)
    delta = study["experts"][0]["auroc_delta"]["ctd"][1]["mean"]
    assert f"{delta:+.3f}" in first

    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    tables = [m.start() for m in re.finditer(r"^\|", md, flags=re.M)]
    assert tables and md.index(HEADLINE) < tables[0]

"""User text in a decision log (group names) cannot break the audit report's Markdown (issue 19)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from ctd_stats.cli.entry import main
from ctd_stats.reports.document import Report, Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))
from gateway_fixtures import write_certificate

HOSTILE = ["a|b", "x\n# Injected heading", "<script>alert(1)</script>", "plain"]


def test_hostile_group_names_stay_inside_their_table_cells(tmp_path, capsys):
    cert = write_certificate(tmp_path / "certificate.json", threshold=0.5, budget=0.2)
    rng = np.random.default_rng(0)
    n = 400
    dv = rng.random(n) * 0.6
    log = pd.DataFrame(
        {
            "timestamp": pd.date_range("2024-01-01", periods=n, freq="min").astype(str),
            "dv_score": dv,
            "delegated": dv > 0.5,
            "group": [HOSTILE[i % len(HOSTILE)] for i in range(n)],
        }
    )
    log.to_json(tmp_path / "log.jsonl", orient="records", lines=True)
    code = main(["audit", "--json", "--certificate", str(cert), "--log",
                 str(tmp_path / "log.jsonl"), "--out", str(tmp_path / "audit")])  # fmt: skip
    assert code in (0, 1), capsys.readouterr().err
    md = (tmp_path / "audit" / "audit.md").read_text(encoding="utf-8")
    assert not re.search(r"^#+ Injected", md, flags=re.M)  # no heading injected
    assert "<script>" not in md
    header = next(line for line in md.splitlines() if line.startswith("| group |"))
    cols = header.count(" | ") + 1
    group_rows = [line for line in md.splitlines() if line.startswith("| a\\|b |")]
    assert len(group_rows) == 1
    # Unescaped pipes split a row into more cells than the header has.
    assert len(re.split(r"(?<!\\)\|", group_rows[0])) - 2 == cols


def test_table_cells_escape_markdown():
    md = Report("t").add(Table(["name"], [["x|y\n# h"], ["_i_ *b* [l](u) `c`"]])).to_markdown()
    assert "| x\\|y # h |" in md
    assert "| \\_i\\_ \\*b\\* \\[l\\](u) \\`c\\` |" in md


def test_literal_paragraphs_escape_markdown_and_keep_intervals_readable():
    """The study verdict names groups from the user's table: in report.md a group named
    ``[l](u)`` made a link and ``<b>h</b>`` stayed raw HTML (red-team of the verdict)."""
    from ctd_stats.reports.document import Paragraph

    text = "rests on [l](u) and <b>h</b> *x* `c`\n# head: Δ = +0.002 [-0.009, +0.015]"
    md = Report("t").add(Paragraph(text, "warn", literal=True), Paragraph("**kept**")).to_markdown()
    assert "[l\\](u)" in md and "&lt;b&gt;h&lt;/b&gt;" in md and "\\*x\\* \\`c\\`" in md
    assert "\n# head" not in md and "[-0.009, +0.015]" in md  # one paragraph; intervals as written
    assert "**kept**" in md  # a paragraph the report writes itself keeps its markup


def test_the_study_verdict_paragraph_is_escaped_in_markdown():
    from ctd_stats.reports.study_controls import controls_blocks

    blocks = controls_blocks([], [], overall="The gain rests on [l](u) <b>h</b>: without it ...")
    md = Report("t").add(*blocks).to_markdown()
    assert "[l\\](u)" in md and "<b>" not in md

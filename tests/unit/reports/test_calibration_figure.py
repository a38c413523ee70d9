"""The calibration report's one figure per expert (up to four budgets, one colour each): content.

Through ``ctd calibrate``: budgets that cannot be certified next to certified ones in one figure,
more budgets than fit on one figure, the budget-only full chain and a joint Pareto rule. Each
figure is checked as it is drawn (after the report's tick thinning): the legend off the data, every
budget's dashed line, certified τ and certified p-values in that budget's colour, and no budget
with nothing certified named "certified".
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.colors import to_hex

from ctd_stats.cli.entry import main
from ctd_stats.reports.calibration import BUDGETS_PER_FIGURE
from ctd_stats.reports.document import Figure, thin_ticks
from tests.conftest import score_frame, write_frame
from tests.unit.reports.test_figures import legend_overlaps


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What each calibration-result figure shows: per axes its legend, lines and scatter sets."""
    from matplotlib.collections import PathCollection

    seen: list[dict[str, Any]] = []
    original = Figure.from_matplotlib.__func__  # type: ignore[attr-defined]

    def capture(cls: type[Figure], fig: Any, caption: str = "", dpi: int = 110) -> Figure:
        title = fig._suptitle.get_text() if fig._suptitle else ""
        if title.startswith("expert "):
            thin_ticks(fig)  # as rendered
            axes = []
            for ax in fig.axes:
                leg = ax.get_legend()
                axes.append(
                    {
                        "legend": [t.get_text() for t in leg.get_texts()] if leg else [],
                        "lines": [
                            (
                                to_hex(ln.get_color()),
                                np.asarray(ln.get_xdata(), dtype=float),
                                np.asarray(ln.get_ydata(), dtype=float),
                            )
                            for ln in ax.get_lines()
                        ],
                        "points": [
                            (c.get_label(), to_hex(c.get_facecolor()[0]), c.get_offsets().data)
                            for c in ax.collections
                            if isinstance(c, PathCollection) and len(c.get_offsets())
                        ],
                    }
                )
            seen.append({"title": title, "overlaps": legend_overlaps(fig), "axes": axes})
        return original(cls, fig, caption, dpi)

    monkeypatch.setattr(Figure, "from_matplotlib", classmethod(capture))
    return seen


def _calibrate(tmp_path: Path, calibration: str, n: int) -> tuple[dict[str, Any], str]:
    write_frame(score_frame(n), tmp_path / "scores.parquet")
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "data: {table: scores.parquet}\n"
        f"calibration: {calibration}\n"
        "outputs: {directory: out, formats: [md, json]}\n",
        encoding="utf-8",
    )
    assert main(["calibrate", str(spec)]) == 1  # some budget is not certified
    out = tmp_path / "out"
    cert = json.loads((out / "certificate.json").read_text(encoding="utf-8"))
    return cert, (out / "report.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("calibration", "n"),
    [
        # budget-only full chain (the O(n) path); 0.001 and 0.01 cannot be certified from 150 rows;
        # five budgets: two figures (four and one)
        ("{budget: [0.4, 0.001, 0.2, 0.01, 0.3], delta: 0.05, pareto: false}", 150),
        # Pareto testing, joint Bonferroni-split chains: 0.1 and 0.2 fail the error chain
        (
            "{budget: [0.1, 0.2, 0.3, 0.4], delta: 0.1, error_level: 0.15, "
            "joint: bonferroni_split}",
            800,
        ),
    ],
)
def test_each_budget_drawn_in_its_colour_and_none_called_certified_wrongly(
    tmp_path, drawn, capsys, calibration, n
):
    """Before: a budget with nothing certified had the legend entry 'budget 0.001: certified' in
    the p-value panel (the empty scatter of its certified points was labelled all the same), and
    Bonferroni-split chains' budget p-values were drawn against δ although tested at δ/2."""
    cert, md = _calibrate(tmp_path, calibration, n)
    assert capsys.readouterr().err == ""
    results = {r["budget"]: r for r in cert["results"]}
    delta = float(re.findall(r"delta: ([0-9.]+)", calibration)[0])
    budgets = sorted(results)
    assert any(r["certified"] for r in results.values())
    assert not all(r["certified"] for r in results.values())

    # one figure per (at most) four budgets, in budget order, with the headings in the same order
    groups = [
        budgets[i : i + BUDGETS_PER_FIGURE] for i in range(0, len(budgets), BUDGETS_PER_FIGURE)
    ]
    assert [f["title"] for f in drawn] == [
        f"expert 'expert', budget{'s' if len(g) > 1 else ''} " + ", ".join(f"{b:g}" for b in g)
        for g in groups
    ]
    assert re.findall(r"^### Budget (\S+)$", md, flags=re.M) == [f"{b:g}" for b in budgets]
    assert re.findall(r"^## Expert .*$", md, flags=re.M) == ["## Expert 'expert'"]  # once

    for fig, group in zip(drawn, groups, strict=True):
        assert not fig["overlaps"], fig["overlaps"]
        rate_ax, p_ax = fig["axes"][0], fig["axes"][1]
        # the level the drawn p-values were compared with: δ/2 for each Bonferroni-split chain
        # (before: δ, with budget p-values between δ/2 and δ drawn as not certified below it)
        level = delta / 2 if "bonferroni_split" in calibration else delta
        name = (
            f"δ/2 = {level:g} (budget chain)"
            if "bonferroni_split" in calibration
            else f"δ = {level:g}"
        )
        assert [t for t in p_ax["legend"] if t.startswith("δ")] == [name]
        assert [y[0] for _, _, y in p_ax["lines"]] == [level]
        for b in group:
            r = results[b]
            # (a) the dashed budget line and the certified τ in the same colour
            colour = [c for c, x, y in rate_ax["lines"] if np.all(y == b) and x[0] != x[-1]]
            assert len(colour) == 1, b
            verticals = {c for c, x, y in rate_ax["lines"] if x.size == 2 and x[0] == x[1]}
            # (b) the legend says what was certified; the chosen τ is among the certified points
            entries = [t for t in p_ax["legend"] if t.startswith(f"budget {b:g}:")]
            certified = [
                (c, p) for label, c, p in p_ax["points"] if label == f"budget {b:g}: certified"
            ]
            assert all(p[:, 1].max() <= level for _, p in certified)
            if r["certified"]:
                tau = r["threshold"]
                assert [
                    c for c, x, y in rate_ax["lines"] if x.size == 2 and x[0] == x[1] == tau
                ] == (colour)
                assert entries == [f"budget {b:g}: certified"]
                assert len(certified) == 1 and certified[0][0] == colour[0]
                assert tau in certified[0][1][:, 0]
            else:
                assert colour[0] not in verticals  # no τ line for it
                assert entries == [f"budget {b:g}: none certified"]
                assert not certified

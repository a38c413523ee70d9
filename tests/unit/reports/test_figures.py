"""Issue 21: no legend covers the data, in any figure of any report.

Every figure the commands draw is captured on its way to PNG, rasterised with Agg, and checked: no
point of a plotted line (sampled densely along each segment), scatter point or error bar that lies
inside its axes falls inside a legend's box.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ctd_stats.cli.entry import main
from ctd_stats.reports.document import Figure, thin_ticks
from tests.conftest import score_frame, write_frame


def _segments_px(points: np.ndarray, step: float = 1.0) -> np.ndarray:
    """Points every ``step`` pixels along a polyline in display coordinates."""
    pts = points[np.all(np.isfinite(points), axis=1)]
    if len(pts) < 2:
        return pts
    out = [pts[:1]]
    for a, b in itertools.pairwise(pts):
        n = max(int(np.hypot(*(b - a)) / step), 1)
        t = np.linspace(0, 1, n + 1)[1:, None]
        out.append(a + t * (b - a))
    return np.vstack(out)


def _data_points(ax: Any) -> list[tuple[str, np.ndarray]]:
    """Display coordinates of what is drawn inside ``ax``: lines, line collections, scatter points."""
    from matplotlib.collections import LineCollection, PathCollection

    found = []
    for line in ax.get_lines():
        if not line.get_visible() or len(line.get_xydata()) == 0:
            continue
        px = line.get_transform().transform(np.asarray(line.get_xydata(), dtype=float))
        found.append(
            (
                f"line {line.get_label()!r}",
                _segments_px(px) if line.get_linestyle() not in ("None", "") else px,
            )
        )
    for coll in ax.collections:
        if isinstance(coll, LineCollection):
            for seg in coll.get_segments():
                px = coll.get_transform().transform(np.asarray(seg, dtype=float))
                found.append((f"segments {coll.get_label()!r}", _segments_px(px)))
        elif isinstance(coll, PathCollection) and len(coll.get_offsets()):
            px = coll.get_offset_transform().transform(np.asarray(coll.get_offsets(), dtype=float))
            found.append((f"points {coll.get_label()!r}", px))
    return found


def legend_overlaps(fig: Any) -> list[str]:
    """``"<legend of axes i> covers <artist>"`` for every plotted artist inside a legend box."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # rasterise with Agg: final layout and positions
    canvas.draw()
    renderer = canvas.get_renderer()
    legends = [
        (f"legend of axes {i}", ax.get_legend()) for i, ax in enumerate(fig.axes) if ax.get_legend()
    ]
    legends += [(f"figure legend {i}", leg) for i, leg in enumerate(fig.legends)]
    problems = []
    for name, leg in legends:
        box = leg.get_window_extent(renderer)
        for j, ax in enumerate(fig.axes):
            inside_ax = ax.bbox
            for what, px in _data_points(ax):
                if not len(px):
                    continue
                drawn = (
                    (px[:, 0] >= inside_ax.x0)
                    & (px[:, 0] <= inside_ax.x1)
                    & (px[:, 1] >= inside_ax.y0)
                    & (px[:, 1] <= inside_ax.y1)
                )
                covered = (
                    drawn
                    & (px[:, 0] >= box.x0)
                    & (px[:, 0] <= box.x1)
                    & (px[:, 1] >= box.y0)
                    & (px[:, 1] <= box.y1)
                )
                if covered.any():
                    problems.append(f"{name} covers {what} of axes {j} ({int(covered.sum())} px)")
    return problems


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[str]]]:
    """Every figure the code renders, with its overlap problems (checked as it is rendered: after
    :func:`thin_ticks`, which :meth:`Figure.from_matplotlib` applies before drawing)."""
    seen: list[tuple[str, list[str]]] = []
    original = Figure.from_matplotlib.__func__  # type: ignore[attr-defined]

    def check_then_render(cls: type[Figure], fig: Any, caption: str = "", dpi: int = 110) -> Figure:
        title = caption or (fig._suptitle.get_text() if fig._suptitle else "") or "figure"
        thin_ticks(fig)  # checked as rendered: fewer tick labels change the layout
        seen.append((title, legend_overlaps(fig)))
        return original(cls, fig, caption, dpi)

    monkeypatch.setattr(Figure, "from_matplotlib", classmethod(check_then_render))
    return seen


def test_overlap_check_finds_a_legend_on_the_data() -> None:
    """The check itself: a legend placed on top of a line is reported (it can fail)."""
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(4, 3))
    ax = fig.subplots()
    x = np.linspace(0, 1, 50)
    ax.plot(x, np.full_like(x, 0.95), label="near the top")
    ax.plot(x, x * 0.1, label="low")
    ax.set_ylim(0, 1)
    ax.legend(loc="upper right")
    assert any("near the top" in p for p in legend_overlaps(fig))


def test_every_report_figure_keeps_its_legend_off_the_data(tmp_path: Path, captured) -> None:
    """Before: the main 'Cascade AUROC' figure's legend (lower right) covered the methods' lines."""
    frame = score_frame(800, weak=True)
    write_frame(frame, tmp_path / "scores.parquet")
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "data: {table: scores.parquet}\n"
        "calibration: {budget: [0.2, 0.4], delta: 0.1, pareto: true, error_level: 0.3}\n"
        "evaluation: {repeats: 4, budgets: [0.1, 0.2, 0.3, 0.4]}\n"
        "simulation: {trials: 200, sizes: [200]}\n"
        "outputs: {directory: out, formats: [md]}\n",
        encoding="utf-8",
    )
    assert main(["run", str(spec)]) in (0, 1)
    assert main(["calibrate", str(spec), "-o", str(tmp_path / "cal")]) in (0, 1)
    assert main(["simulate", str(spec), "-o", str(tmp_path / "sim")]) in (0, 1)
    cert = tmp_path / "cal" / "certificate.json"
    rng = np.random.default_rng(1)
    with open(tmp_path / "log.jsonl", "w", encoding="utf-8") as fh:
        for i in range(400):
            fh.write(
                json.dumps(
                    {
                        "timestamp": f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z",
                        "dv_score": float(rng.normal()),
                        "group": "ab"[i % 2],
                    }
                )
                + "\n"
            )
    assert main(
        [
            "audit",
            "--certificate",
            str(cert),
            "--log",
            str(tmp_path / "log.jsonl"),
            "--budget",
            "0.2",
            "--expert",
            "expert",
            "--out",
            str(tmp_path / "audit"),
        ]
    ) in (0, 1)
    titles = [t for t, _ in captured]
    assert any("Cascade quality" in t for t in titles), titles
    assert len(captured) >= 8, titles
    bad = [f"{t}: {p}" for t, problems in captured for p in problems]
    assert not bad, "\n".join(bad)

"""Issue 20: report figures drawn once, laid out from one measurement, labels without mathtext.

The speed target itself (the demo run's figures ≤ 2 s CPU) is recorded in
benchmarks/test_bench_figures.py; these tests check the constructions that give it, each of which
failed before: ``savefig`` drew a figure with a layout engine twice, the ``constrained`` engine
measured every axes twice, the log axis' decade labels were parsed as mathtext.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from ctd_stats.reports.calibration import decade_label
from ctd_stats.reports.document import new_figure, render_png
from ctd_stats.reports.layout import GridLayout
from ctd_stats.reports.legend import outside_legend


def _three_panels() -> Any:
    """Three panels with long legend labels, long axis labels and a suptitle."""
    fig, grid = new_figure(12.9, 3.6, ncols=3)
    x = np.linspace(0, 1, 50)
    for k, ax in enumerate(grid[0]):
        for j in range(4):
            ax.plot(x, x**j + k, label=f"a rather long legend entry number {j}")
        ax.set_xlabel("threshold τ (delegate iff d(x) > τ)")
        ax.set_ylabel(f"a long y label {k}")
        ax.set_title(f"panel {k}")
        outside_legend(ax, fontsize=7.5)
    fig.suptitle("a suptitle over the three panels")
    return fig


def _decorated_boxes(fig: Any) -> list[Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    return [ax.get_tightbbox(renderer) for ax in fig.axes]


def test_render_png_draws_the_figure_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: ``savefig`` ran a measuring draw for the layout engine, then the real one (2)."""
    from matplotlib.figure import Figure as MplFigure

    fig = _three_panels()
    draws: list[int] = []
    original = MplFigure.draw

    def counting(self: Any, renderer: Any) -> Any:
        draws.append(1)
        return original(self, renderer)

    monkeypatch.setattr(MplFigure, "draw", counting)
    png = render_png(fig, dpi=80)
    assert len(draws) == 1
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(png))
    assert image.size == (round(12.9 * 80), round(3.6 * 80))
    assert image.mode == "P"  # a palette PNG
    colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    assert colours is not None and len(colours) > 8  # lines, text and antialiasing all kept


def test_grid_layout_keeps_every_panel_and_legend_apart_and_on_the_canvas() -> None:
    """Each panel's decorations (tick labels, labels, title, its legend beside it) lie inside the
    figure and overlap no other panel's; the suptitle sits above all of them."""
    fig = _three_panels()
    assert isinstance(fig.get_layout_engine(), GridLayout)
    boxes = _decorated_boxes(fig)
    width, height = fig.bbox.width, fig.bbox.height
    for box in boxes:
        assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= width and box.y1 <= height, box
    for a, b in itertools.combinations(boxes, 2):
        assert a.x1 <= b.x0 or b.x1 <= a.x0, (a, b)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    title = fig._suptitle.get_window_extent(FigureCanvasAgg(fig).get_renderer())
    assert title.y1 <= height and all(title.y0 >= box.y1 for box in boxes)


def test_the_check_finds_panels_that_overlap_without_the_layout() -> None:
    """The same figure with its layout engine removed: legends run into the next panel."""
    fig = _three_panels()
    fig.set_layout_engine("none")
    boxes = _decorated_boxes(fig)
    assert any(not (a.x1 <= b.x0 or b.x1 <= a.x0) for a, b in itertools.combinations(boxes, 2))


def test_grid_layout_measures_each_axes_once_per_draw(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: the constrained engine measured every axes twice per draw (two solver passes)."""
    from matplotlib.axes import Axes

    fig = _three_panels()
    measured: list[int] = []
    original = Axes.get_tightbbox

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("for_layout_only"):
            measured.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Axes, "get_tightbbox", counting)
    render_png(fig, dpi=80)
    assert len(measured) == 3


def test_decade_labels_are_plain_text() -> None:
    assert [decade_label(v) for v in (1.0, 0.1, 1e-5, 10.0, 100.0)] == [
        "10⁰",
        "10⁻¹",
        "10⁻⁵",
        "10¹",
        "10²",
    ]
    assert [decade_label(v) for v in (2e-3, 0.5, 0.0, -1.0, float("nan"))] == [""] * 5
    assert not any("$" in decade_label(10.0**e) for e in range(-12, 4))


@pytest.fixture(scope="module")
def report_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The inputs ``ctd run`` passes to the two report builders (two experts, three budgets)."""
    import ctd_stats.reports.calibration as cal
    import ctd_stats.reports.study as study
    from ctd_stats.cli.entry import main
    from tests.conftest import score_frame, write_frame

    tmp = tmp_path_factory.mktemp("figures")
    write_frame(score_frame(800, weak=True), tmp / "scores.parquet")
    spec = tmp / "spec.yaml"
    spec.write_text(
        "data:\n"
        "  table: scores.parquet\n"
        "  experts:\n"
        "    strong: {expert_prob: expert_prob, dv_score: dv_score}\n"
        "    weak: {expert_prob: expert_prob__weak, dv_score: dv_score__weak}\n"
        "calibration: {budget: [0.005, 0.2, 0.4], delta: 0.1, pareto: true}\n"
        "evaluation: {repeats: 4, budgets: [0.1, 0.2, 0.3, 0.4]}\n"
        "outputs: {directory: out, formats: [md]}\n",
        encoding="utf-8",
    )
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
        assert main(["run", str(spec)]) in (0, 1)
    finally:
        mp.undo()
    return seen


def _figures(report_inputs: dict[str, Any], reuse: bool) -> list[tuple[str, bytes]]:
    from ctd_stats.reports.calibration import build_calibration_report
    from ctd_stats.reports.document import Figure
    from ctd_stats.reports.figure_pool import FigurePool
    from ctd_stats.reports.study import build_study_report

    args, kwargs = report_inputs["study"]
    run = build_study_report(*args, **kwargs, figures=FigurePool(reuse=reuse))
    args, kwargs = report_inputs["calibration"]
    cal = build_calibration_report(*args, **kwargs, figures=FigurePool(reuse=reuse))
    return [(b.caption, b.png) for rep in (run, cal) for b in rep.blocks if isinstance(b, Figure)]


def test_a_reused_figure_renders_the_same_pixels_as_a_fresh_one(
    report_inputs: dict[str, Any],
) -> None:
    """Every figure of both reports, drawn on the pool's emptied figures, is byte-identical to the
    same figure drawn on a new one (nothing of the previous figure stays: artists, legend, labels,
    scales, limits, colour cycle)."""
    reused, fresh = _figures(report_inputs, True), _figures(report_inputs, False)
    assert [c for c, _ in reused] == [c for c, _ in fresh]
    assert len(reused) >= 12  # 4 per expert in the study, one per expert's budgets, one eval each
    differ = [c for (c, a), (_, b) in zip(reused, fresh, strict=True) if a != b]
    assert not differ, differ


def test_the_pool_hands_out_one_figure_per_kind_emptied() -> None:
    from ctd_stats.reports.figure_pool import FigurePool

    pool = FigurePool()
    fig, axes = pool.figure("k", 6, 3, ncols=2)
    axes[0, 0].plot([0, 1], [0, 1], label="x")
    outside_legend(axes[0, 0])
    axes[0, 1].set_yscale("log")
    axes[0, 1].set_title("t")
    fig.suptitle("s")
    again, axes2 = pool.figure("k", 6, 3, ncols=2)
    assert again is fig and axes2 is axes
    assert not axes[0, 0].lines and axes[0, 0].get_legend() is None
    assert axes[0, 1].get_yscale() == "linear" and axes[0, 1].get_title() == ""
    assert fig._suptitle.get_text() == ""
    other, _ = pool.figure("k", 6, 3, ncols=3)
    assert other is not fig
    assert FigurePool(reuse=False).figure("k", 6, 3)[0] is not FigurePool().figure("k", 6, 3)[0]


def test_study_report_reports_progress_per_expert(report_inputs: dict[str, Any]) -> None:
    """Issue 21 item 7: progress while the figures are drawn (the CLI passes its progress bar)."""
    from ctd_stats.reports.calibration import build_calibration_report
    from ctd_stats.reports.study import build_study_report

    seen: list[str] = []

    def progress(items: list[Any]) -> Any:
        for item in items:
            seen.append(getattr(item, "expert", ""))
            yield item

    args, kwargs = report_inputs["study"]
    build_study_report(*args, **kwargs, progress=progress)
    assert seen == [s.expert for s in args[0]] and len(seen) == 2
    seen.clear()
    args, kwargs = report_inputs["calibration"]
    build_calibration_report(*args, **kwargs, progress=progress)
    assert seen == ["strong", "weak"]  # one figure per expert (its budgets together)


def test_titles_are_placed_without_measuring_and_tick_labels_carry_full_values() -> None:
    """Titles sit on top of their axes (no automatic search for tick labels above them, which
    measured the y axis again per title and draw), and linear tick labels carry no offset text
    a title could cover; also on a figure the pool hands out again."""
    from ctd_stats.reports.figure_pool import FigurePool

    pool = FigurePool()
    for _ in range(2):
        fig, grid = pool.figure("t", 8, 3, ncols=2)
        for ax in grid[0]:
            ax.plot([0, 1], [0.93001, 0.93004])  # a range a default formatter writes as offset
            ax.set_title("title")
        render_png(fig, dpi=80)
        renderer = fig.canvas.get_renderer()  # the Agg canvas render_png drew with
        for ax in grid[0]:
            assert ax.yaxis.get_major_formatter().get_useOffset() is False
            assert ax.yaxis.get_offset_text().get_text() == ""
            assert ax._autotitlepos is False
            assert ax.title.get_window_extent(renderer).y0 >= ax.bbox.y1


def test_frozen_heap_leaves_the_existing_heap_out_and_nests() -> None:
    import gc

    from ctd_stats.reports.figure_pool import frozen_heap

    assert gc.get_freeze_count() == 0
    with frozen_heap():
        frozen = gc.get_freeze_count()
        assert frozen > 0
        with frozen_heap():  # nested: the outer freeze stays as it is
            assert gc.get_freeze_count() == frozen
        assert gc.get_freeze_count() == frozen
    assert gc.get_freeze_count() == 0


def test_an_experts_budgets_share_figures_four_at_a_time_in_budget_order() -> None:
    """The calibration report draws one figure per expert for up to four of its budgets."""
    from types import SimpleNamespace

    from ctd_stats.reports.calibration import BUDGETS_PER_FIGURE, result_groups

    budgets = [0.5, 0.1, 0.3, 0.2, 0.4, 0.05]
    results = [SimpleNamespace(expert=e, budget=b) for e in ("b", "a") for b in budgets]
    groups = result_groups(results)  # type: ignore[arg-type]
    assert BUDGETS_PER_FIGURE == 4
    assert [(g.expert, [r.budget for r in g.results]) for g in groups] == [
        ("b", [0.05, 0.1, 0.2, 0.3]),
        ("b", [0.4, 0.5]),
        ("a", [0.05, 0.1, 0.2, 0.3]),
        ("a", [0.4, 0.5]),
    ]


def test_thin_ticks_caps_linear_axes_and_leaves_other_locators() -> None:
    """At most MAX_TICKS intervals on a linear axis with the default locator; log and fixed kept."""
    from matplotlib.ticker import FixedLocator, LogLocator

    from ctd_stats.reports.document import MAX_TICKS, new_figure, thin_ticks

    fig, axes = new_figure(8, 6, ncols=2)
    lin, other = axes[0]
    lin.plot([0, 1], [0, 1])
    other.set_yscale("log")
    other.xaxis.set_major_locator(FixedLocator([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]))
    before = len(lin.yaxis.get_ticklocs())
    thin_ticks(fig)
    inside = [t for t in lin.yaxis.get_ticklocs() if 0 <= t <= 1]
    assert before > MAX_TICKS + 1 and len(inside) <= MAX_TICKS + 1
    assert isinstance(other.yaxis.get_major_locator(), LogLocator)
    assert len(other.xaxis.get_ticklocs()) == 9


def test_large_curves_are_drawn_from_a_bounded_number_of_points_keeping_the_boundary() -> None:
    """A calibration figure over 10⁶ scores drew 10⁶ p-values and markers per budget; it draws at
    most about 2,000 evenly spaced points, the ends, and every point near the certified boundary."""
    from ctd_stats.reports.calibration import AROUND_BOUNDARY, MOST_POINTS, thinned_indices

    np.testing.assert_array_equal(
        thinned_indices(50, boundary=10), np.arange(50)
    )  # small: all of them
    idx = thinned_indices(1_000_000, boundary=123_456)
    assert idx.size <= MOST_POINTS + 2 * AROUND_BOUNDARY and np.all(np.diff(idx) > 0)
    assert idx[0] == 0 and idx[-1] == 999_999
    assert set(range(123_456 - AROUND_BOUNDARY, 123_456 + AROUND_BOUNDARY)) <= set(idx.tolist())
    assert np.diff(thinned_indices(1_000_000)).max() <= 1_000_000 // (MOST_POINTS - 1) + 1

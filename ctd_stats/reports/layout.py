"""The report figures' layout: a grid of axes, their decorations and legends beside them, measured once.

:class:`GridLayout` is a matplotlib layout engine for figures made of one grid of subplots (the
report figures: one row of panels, legends to the right of each panel, a suptitle). Before the
figure is drawn it measures every axes' decorations once (tick labels, axis labels, title and the
legend placed outside the axes by :func:`ctd_stats.reports.legend.outside_legend`) and gives each
column the widest left and right margin of its panels, each row the tallest top and bottom margin,
and the panels equal widths and heights in what is left. Nothing is covered: margins hold the
decorations, so a legend beside a panel never overlaps the next panel or the figure's edge.

The ``constrained`` engine solves the same problem with a constraint solver and measures every
axes twice (two full passes over tick and text layout); on the report figures that second pass was
about a quarter of their drawing time. One measurement is exact when the tick labels do not change
with the panel's size; when they do (a shorter axis can get fewer ticks), the change is a few
pixels, which the padding between panels (``gap``) absorbs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.layout_engine import LayoutEngine
from matplotlib.transforms import Bbox


class GridLayout(LayoutEngine):
    """Lay out one grid of subplots with room for their decorations, measured once per draw.

    Parameters
    ----------
    pad : float
        Space in inches between the decorations and the figure's edge.
    gap : float
        Space in inches between the decorations of neighbouring panels.
    """

    _adjust_compatible = False
    _colorbar_gridspec = False

    def __init__(self, *, pad: float = 0.05, gap: float = 0.12) -> None:
        super().__init__()
        self._params = {"pad": pad, "gap": gap}

    def execute(self, fig: Any) -> None:
        """Position ``fig``'s subplots (called by matplotlib at the start of each draw)."""
        axes = [ax for ax in fig.axes if ax.get_subplotspec() is not None and ax.get_in_layout()]
        if not axes:
            return
        nrows, ncols = axes[0].get_subplotspec().get_gridspec().get_geometry()
        renderer = fig._get_renderer()  # the canvas's renderer: the draw's fonts and dpi
        width_px, height_px = fig.bbox.width, fig.bbox.height
        pad = self._params["pad"] * fig.dpi
        gap = self._params["gap"] * fig.dpi
        top_extra = self._place_suptitle(fig, renderer, pad, height_px)
        left, right = np.zeros(ncols), np.zeros(ncols)
        below, above = np.zeros(nrows), np.zeros(nrows)
        for ax in axes:  # measured where the grid first puts them: the same layout every draw
            spec = ax.get_subplotspec()
            _place(ax, spec.get_position(fig))
            inner = ax.bbox
            tight = ax.get_tightbbox(renderer, for_layout_only=True)
            if tight is None:
                continue
            c0, c1 = spec.colspan.start, spec.colspan.stop - 1
            r0, r1 = spec.rowspan.start, spec.rowspan.stop - 1
            left[c0] = max(left[c0], inner.x0 - tight.x0)
            right[c1] = max(right[c1], tight.x1 - inner.x1)
            above[r0] = max(above[r0], tight.y1 - inner.y1)
            below[r1] = max(below[r1], inner.y0 - tight.y0)
        panel_w = (width_px - 2 * pad - left.sum() - right.sum() - (ncols - 1) * gap) / ncols
        panel_h = (
            height_px - 2 * pad - top_extra - above.sum() - below.sum() - (nrows - 1) * gap
        ) / nrows
        if panel_w <= 0 or panel_h <= 0:  # decorations larger than the figure: leave as made
            return
        x0 = (
            pad
            + np.cumsum(left)
            + np.arange(ncols) * (panel_w + gap)
            + np.concatenate([[0.0], np.cumsum(right)[:-1]])
        )
        y_top = (
            height_px
            - pad
            - top_extra
            - np.cumsum(above)
            - np.arange(nrows) * (panel_h + gap)
            - np.concatenate([[0.0], np.cumsum(below)[:-1]])
        )
        for ax in axes:
            spec = ax.get_subplotspec()
            c0, c1 = spec.colspan.start, spec.colspan.stop - 1
            r0, r1 = spec.rowspan.start, spec.rowspan.stop - 1
            x_left = x0[c0]
            x_right = x0[c1] + panel_w
            y_hi = y_top[r0]
            y_lo = y_top[r1] - panel_h
            box = Bbox.from_extents(
                x_left / width_px, y_lo / height_px, x_right / width_px, y_hi / height_px
            )
            _place(ax, box)

    @staticmethod
    def _place_suptitle(fig: Any, renderer: Any, pad: float, height_px: float) -> float:
        """Put the suptitle at the top edge (less ``pad``); the height it takes there."""
        title = fig._suptitle
        if title is None or not title.get_in_layout() or not title.get_text():
            return 0.0
        if getattr(title, "_autopos", False):
            title.set_y(1 - pad / height_px)
            title.set_verticalalignment("top")
        return float(title.get_window_extent(renderer).height) + 2 * pad


def _place(ax: Any, box: Any) -> None:
    """Move ``ax`` to ``box`` (figure fractions), keeping it in the layout for the next draw."""
    ax.set_position(box, which="both")
    ax.set_in_layout(True)  # set_position takes it out of the layout

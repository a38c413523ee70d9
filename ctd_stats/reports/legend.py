"""Legends beside the plot, never on the data.

Every figure of the reports puts its legend with :func:`outside_legend`: to the right of the axes,
outside the plotting area, with a layout engine that makes the space for it (neighbouring panels
shrink instead of being covered): the report figures' :class:`~ctd_stats.reports.layout.GridLayout`,
or ``constrained`` for a figure made without one. A legend inside the axes
(``loc="best"`` included) can cover the very lines a report is about; the report tests rasterise
every figure and check that no legend box overlaps a plotted line or point.
"""

from __future__ import annotations

from typing import Any


def outside_legend(ax: Any, *, fontsize: float = 8, **kwargs: Any) -> Any:
    """Draw ``ax``'s legend to the right of the axes (outside the data); returns the legend.

    Extra keyword arguments go to ``Axes.legend`` (``title``, ``ncols``...); ``loc`` and
    ``bbox_to_anchor`` are fixed.
    """
    fig = ax.figure
    if fig.get_layout_engine() is None:
        fig.set_layout_engine("constrained")
    kwargs.pop("loc", None)
    kwargs.pop("bbox_to_anchor", None)
    return ax.legend(
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        borderaxespad=0.0,
        fontsize=fontsize,
        frameon=False,
        **kwargs,
    )

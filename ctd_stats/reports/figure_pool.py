"""Figures of the same kind in one report drawn on one matplotlib figure, one after the other.

A report draws several figures of the same shape: the calibration report one per expert (its budgets together),
the study report four per expert. A fresh matplotlib figure costs its axes and, at its first
layout, every tick (five artists each) and the first measurement of every text: about half of a
report figure's drawing time. :class:`FigurePool` keeps the figure of each kind it made, and hands
it out again emptied: every plotted artist, legend, title, label and suptitle removed, scales
linear, limits and the colour cycle back to their defaults. Drawing on it is drawing on a new
figure; the tests check that every figure of the demo's reports renders the same pixels either
way (``FigurePool(reuse=False)`` makes each one fresh).

A figure is drawn (:func:`~ctd_stats.reports.document.render_png`) before the next one of its
kind is asked for: the report functions render each figure before they return it.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ctd_stats.reports.document import FIGURE_RC, new_figure


class FigurePool:
    """Hands out report figures by kind, reusing the one made before (see the module docstring).

    Parameters
    ----------
    reuse : bool
        ``False``: every figure is made fresh (the reference the tests compare against).
    """

    def __init__(self, *, reuse: bool = True) -> None:
        self._reuse = reuse
        self._figures: dict[tuple[Any, ...], tuple[Any, Any]] = {}

    def figure(
        self, kind: str, width: float, height: float, ncols: int = 1, nrows: int = 1
    ) -> tuple[Any, Any]:
        """An empty figure of ``nrows`` x ``ncols`` axes (a 2-D array) for figures of ``kind``."""
        key = (kind, width, height, ncols, nrows)
        if self._reuse and key in self._figures:
            fig, axes = self._figures[key]
            empty_figure(fig)
            return fig, axes
        fig, axes = new_figure(width, height, ncols=ncols, nrows=nrows)
        self._figures[key] = (fig, axes)
        return fig, axes


def empty_figure(fig: Any) -> None:
    """Remove what was drawn on ``fig``'s axes and reset them to a new subplot's state.

    The axes themselves, their tick objects and spines are kept (that is the saving); everything a
    report figure sets on them is undone: plotted artists (lines, collections, patches, texts,
    containers), the legend, titles and axis labels, scales (with their locators and formatters),
    limits (automatic again, data limits forgotten), the grid and the property cycle.
    """
    import matplotlib  # only reports with figures import it

    title = getattr(fig, "_suptitle", None)
    if title is not None:
        title.set_text("")
    for ax in fig.axes:
        for artist in (*ax.lines, *ax.collections, *ax.patches, *ax.texts, *ax.images):
            artist.remove()
        ax.containers.clear()
        legend = ax.get_legend()
        if legend is not None:
            legend.remove()
        for loc in ("left", "center", "right"):
            ax.set_title("", loc=loc)
        ax.set_xlabel("")
        ax.set_ylabel("")
        with matplotlib.rc_context(FIGURE_RC):  # the new linear formatters: no offset
            ax.set_xscale("linear")
            ax.set_yscale("linear")
        ax.grid(False, which="both")
        ax.set_prop_cycle(None)
        ax.relim()
        ax.set_autoscale_on(True)


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Leave the objects alive before the drawing out of its garbage collections.

    Drawing makes many small matplotlib objects with reference cycles; each full collection they
    trigger also traverses everything the run already holds (the table, the study, the imported
    libraries): 0.15-0.3 s per full collection in ``ctd run``. ``gc.freeze`` moves those objects
    to the permanent generation for the duration (they are still freed by reference counting);
    the drawing's own objects are collected as usual. Nested use leaves an outer freeze alone.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()

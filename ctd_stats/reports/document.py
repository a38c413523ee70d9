"""Human-readable reports: one document model rendered to Markdown and to self-contained HTML.

A :class:`Report` is a title, a plain-language summary and a list of blocks (headings, paragraphs,
tables, figures). Figures are matplotlib figures rendered to PNG and embedded as base64 data URIs, so
the HTML opens offline with no side files. The Markdown embeds the same data URIs.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctd_stats.io import atomic_write_text


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str
    tone: str = "plain"  # "plain" | "ok" | "warn" | "bad": coloured callouts in HTML
    #: Plain text that may carry user text (group names from a table or log): escaped in Markdown
    #: (:func:`md_text`) so that it cannot make a link, emphasis, raw HTML or a new block.
    literal: bool = False


@dataclass(frozen=True)
class Table:
    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]
    caption: str = ""


@dataclass(frozen=True)
class Figure:
    png: bytes
    caption: str = ""

    @classmethod
    def from_matplotlib(cls, fig: Any, caption: str = "", dpi: int = 110) -> Figure:
        """Render a matplotlib figure to PNG (:func:`render_png`) and close it.

        Its linear axes get at most :data:`MAX_TICKS` + 1 major ticks (:func:`thin_ticks`).
        """
        thin_ticks(fig)
        return cls(png=render_png(fig, dpi), caption=caption)

    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


#: Intervals between major ticks on a report figure's linear axis, at most. Matplotlib's automatic
#: choice fits as many as the tick labels' font allows (7 to 9 on the reports' 3.4-inch panels);
#: every tick is five artists, laid out and drawn on each draw, and with 4 intervals the demo's
#: figures have a quarter fewer ticks (628 -> 469 on its 16 figures then) and take about a sixth
#: less time (ticks were the largest part of their drawing: ``benchmarks/test_bench_figures.py``).
MAX_TICKS = 4


def thin_ticks(fig: Any, nbins: int = MAX_TICKS) -> None:
    """At most ``nbins`` intervals between the major ticks of ``fig``'s linear axes.

    Only axes on matplotlib's default locator are changed (the same "nice" steps, fewer of them):
    log axes, categorical axes and any locator a figure set itself are left as they are.
    """
    from matplotlib.ticker import AutoLocator, MaxNLocator

    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if type(axis.get_major_locator()) is AutoLocator:
                axis.set_major_locator(MaxNLocator(nbins=nbins, steps=[1, 2, 2.5, 5, 10]))


def render_png(fig: Any, dpi: int = 110) -> bytes:
    """PNG bytes of a matplotlib figure, drawn once with Agg; pyplot's figure (if any) is closed.

    A figure with a layout engine (every report figure: :class:`~ctd_stats.reports.layout.GridLayout`
    or ``constrained``, which make room for the legends beside the axes) is drawn exactly once: the
    engine runs inside that draw. ``savefig`` would draw it twice (a measuring draw to run the
    layout, then the real one; ``bbox_inches="tight"`` a third time). The pixels are stored as an adaptive 256-colour palette PNG: these
    are line plots on white, the palette keeps every colour of the drawing distinguishable, and the
    encoding costs less than half of an RGBA PNG's and a third of its bytes (embedded twice, in
    the Markdown and the HTML). A figure without a layout engine is cropped to its content
    (``bbox_inches="tight"``) as before.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    if fig.get_layout_engine() is None:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
        _close_pyplot(fig)
        return buf.getvalue()
    # The figure's Agg canvas from now on (no pyplot state involved); a figure drawn again (the
    # reused figures of ctd_stats.reports.figure_pool) keeps its canvas and so its renderer, and
    # matplotlib's cache of text measurements, which is per renderer, keeps its entries.
    canvas = fig.canvas if type(fig.canvas) is FigureCanvasAgg else FigureCanvasAgg(fig)
    fig.set_dpi(dpi)
    canvas.draw()
    width, height = canvas.get_width_height()
    image = Image.frombuffer("RGBA", (width, height), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
    buf = io.BytesIO()
    image.convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE).save(
        buf, format="png", dpi=(dpi, dpi)
    )
    _close_pyplot(fig)
    return buf.getvalue()


def new_figure(width: float, height: float, ncols: int = 1, nrows: int = 1) -> tuple[Any, Any]:
    """A matplotlib figure of ``nrows`` x ``ncols`` axes (a 2-D array), made without pyplot.

    ``matplotlib.figure.Figure`` directly: no pyplot figure manager, no global state, nothing to
    close; :func:`render_png` attaches an Agg canvas. Its layout engine
    (:class:`~ctd_stats.reports.layout.GridLayout`) makes room for the legends placed beside the
    axes (:func:`ctd_stats.reports.legend.outside_legend`), measuring each axes once.
    """
    import matplotlib
    from matplotlib.figure import Figure as MplFigure

    from ctd_stats.reports.layout import GridLayout

    with matplotlib.rc_context(FIGURE_RC):
        fig = MplFigure(figsize=(width, height), layout=GridLayout())
        return fig, fig.subplots(nrows, ncols, squeeze=False)


#: Settings the report figures' axes are made with (and their scales reset with,
#: :func:`ctd_stats.reports.figure_pool.empty_figure`). Titles sit at the top of their axes
#: (``axes.titley``): matplotlib's automatic placement looks for tick labels above the axes and
#: for an offset text ("1e-3", "+0.9") that the title could cover, measuring the y axis' tick
#: labels once more per title on every draw (an eighth of the figures' time), to find neither:
#: no report figure has ticks on top, and tick labels carry their full values instead of an
#: offset (``axes.formatter.useoffset``), as they did for every range the reports draw.
FIGURE_RC: dict[Any, Any] = {"axes.titley": 1.0, "axes.formatter.useoffset": False}


def _close_pyplot(fig: Any) -> None:
    """Forget ``fig`` in pyplot's figure manager, if pyplot made it (a no-op otherwise)."""
    import sys

    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close(fig)


@dataclass(frozen=True)
class Links:
    """Links to sibling output files: ``(label, relative path)`` pairs."""

    items: Sequence[tuple[str, str]]


Block = Heading | Paragraph | Table | Figure | Links


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:
            return "–"
        if value in (float("inf"), float("-inf")):
            return "+∞" if value > 0 else "−∞"
        return f"{value:.4g}"
    return str(value)


_MD_ESCAPES = str.maketrans(
    {
        "\\": "\\\\",
        "|": "\\|",
        "`": "\\`",
        "*": "\\*",
        "_": "\\_",
        "[": "\\[",
        "]": "\\]",
        "<": "&lt;",
        ">": "&gt;",
        "&": "&amp;",
        "\n": " ",
        "\r": " ",
    }
)


def md_cell(value: Any) -> str:
    """A table cell as Markdown text: user text (a log's group names) cannot end the cell (``|``),
    start a line (newline + ``#``), or inject markup or raw HTML."""
    return _fmt(value).translate(_MD_ESCAPES)


_MD_TEXT_ESCAPES = str.maketrans(
    {
        "\\": "\\\\",
        "`": "\\`",
        "*": "\\*",
        "_": "\\_",
        "<": "&lt;",
        ">": "&gt;",
        "&": "&amp;",
        "\n": " ",
        "\r": " ",
    }
)


def md_text(text: str) -> str:
    """Plain text as one Markdown paragraph: no emphasis, code, raw HTML, link (``](`` escaped) or
    new block (line breaks become spaces; a leading ``#``, ``>``, ``-``, ``+`` or digit-dot is
    escaped). Brackets alone stay as written, so intervals read ``[+0.03, +0.06]``."""
    out = text.translate(_MD_TEXT_ESCAPES).replace("](", "\\](")
    if out[:1] in ("#", "-", "+", "=") or out.split(".", 1)[0].isdigit():
        out = "\\" + out
    return out


@dataclass
class Report:
    """A report document. Build it with :meth:`add`, then :meth:`write` Markdown and HTML."""

    title: str
    summary: str = ""
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> Report:
        self.blocks.extend(blocks)
        return self

    # ------------------------------------------------------------------ markdown
    def to_markdown(self) -> str:
        out = [f"# {self.title}", ""]
        if self.summary:
            out += [f"> {line}" if line else ">" for line in self.summary.splitlines()] + [""]
        for b in self.blocks:
            if isinstance(b, Heading):
                out += ["#" * max(2, b.level) + " " + b.text, ""]
            elif isinstance(b, Paragraph):
                prefix = {"ok": "✅ ", "warn": "⚠️ ", "bad": "❌ "}.get(b.tone, "")
                out += [prefix + (md_text(b.text) if b.literal else b.text), ""]
            elif isinstance(b, Table):
                if b.caption:
                    out += [f"*{b.caption}*", ""]
                out.append("| " + " | ".join(md_cell(c) for c in b.columns) + " |")
                out.append("|" + "---|" * len(b.columns))
                out += ["| " + " | ".join(md_cell(v) for v in row) + " |" for row in b.rows]
                out.append("")
            elif isinstance(b, Links):
                out += [f"- [{label}]({href})" for label, href in b.items] + [""]
            elif isinstance(b, Figure):
                out += [f"![{b.caption}]({b.data_uri()})", ""]
                if b.caption:
                    out += [f"*{b.caption}*", ""]
        return "\n".join(out)

    # ---------------------------------------------------------------------- html
    def to_html(self) -> str:
        e = html.escape
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{e(self.title)}</title>",
            "<style>"
            "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;"
            "margin:2em auto;padding:0 1em;color:#1b1b1b;line-height:1.45}"
            "h1{border-bottom:2px solid #333;padding-bottom:.2em}"
            ".summary{background:#f3f6fa;border-left:5px solid #2a6fdb;padding:.8em 1em;white-space:pre-line}"
            ".ok{background:#eef8ee;border-left:5px solid #2e8b3a;padding:.5em 1em}"
            ".warn{background:#fff7e6;border-left:5px solid #e0a000;padding:.5em 1em}"
            ".bad{background:#fdecec;border-left:5px solid #c62828;padding:.5em 1em}"
            "table{border-collapse:collapse;margin:1em 0;font-size:.92em}"
            "th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}"
            "th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}"
            "figure{margin:1em 0}img{max-width:100%}figcaption{color:#555;font-size:.9em}"
            ".scroll{overflow-x:auto;max-width:100%}"
            "caption{caption-side:top;text-align:left;color:#555;padding:.2em 0}"
            "</style></head><body>",
            f"<h1>{e(self.title)}</h1>",
        ]
        if self.summary:
            parts.append(f'<div class="summary">{e(self.summary)}</div>')
        for b in self.blocks:
            if isinstance(b, Heading):
                lvl = min(max(2, b.level), 6)
                parts.append(f"<h{lvl}>{e(b.text)}</h{lvl}>")
            elif isinstance(b, Paragraph):
                cls = f' class="{b.tone}"' if b.tone != "plain" else ""
                parts.append(f"<p{cls}>{e(b.text)}</p>")
            elif isinstance(b, Links):
                items = "".join(
                    f'<li><a href="{e(href)}">{e(label)}</a></li>' for label, href in b.items
                )
                parts.append(f"<ul>{items}</ul>")
            elif isinstance(b, Table):
                cap = f"<caption>{e(b.caption)}</caption>" if b.caption else ""
                head = "".join(f"<th>{e(str(c))}</th>" for c in b.columns)
                body = "".join(
                    "<tr>" + "".join(f"<td>{e(_fmt(v))}</td>" for v in row) + "</tr>"
                    for row in b.rows
                )
                parts.append(
                    f'<div class="scroll"><table>{cap}<thead><tr>{head}</tr></thead>'
                    f"<tbody>{body}</tbody></table></div>"
                )
            elif isinstance(b, Figure):
                cap = f"<figcaption>{e(b.caption)}</figcaption>" if b.caption else ""
                parts.append(
                    f'<figure><img alt="{e(b.caption)}" src="{b.data_uri()}">{cap}</figure>'
                )
        parts.append("</body></html>")
        return "\n".join(parts)

    def write(self, directory: str | Path, stem: str = "report") -> tuple[Path, Path]:
        """Write ``<stem>.md`` and ``<stem>.html`` atomically into ``directory``."""
        d = Path(directory)
        md = atomic_write_text(d / f"{stem}.md", self.to_markdown())
        ht = atomic_write_text(d / f"{stem}.html", self.to_html())
        return md, ht

"""The ``ctd`` command line: :mod:`.entry` (parser, dispatch) and one module per sub-command.

``ctd_stats.cli.main`` still resolves (lazily, to :func:`ctd_stats.cli.entry.main`) so that console
scripts installed by 0.1 (``ctd = ctd_stats.cli:main``) keep working until the package is reinstalled.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "main":
        from ctd_stats.cli.entry import main

        return main
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

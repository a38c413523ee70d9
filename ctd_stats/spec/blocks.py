"""The registry of optional spec blocks (a plugin hook), importable without the spec machinery.

An upper layer registers the pydantic model of its block here when it is imported (the probes layer
registers ``ProbesSpec`` for ``probes:``); :mod:`ctd_stats.spec` validates the block with it. This
module imports nothing heavy, so loading plugins (``ctd --help``) stays fast.
"""

from __future__ import annotations

from typing import Any

#: Optional blocks of a cascade spec that a plugin may own.
BLOCKS: tuple[str, ...] = ("probes",)

_BLOCK_MODELS: dict[str, Any] = {}


def register_block_model(block: str, model: Any) -> None:
    """Validate the spec's ``block`` (today only ``probes``) with ``model``: a pydantic model class,
    or its import path ``"module:Class"``, imported the first time a spec needs it (so registering
    costs nothing at CLI start-up).

    The core never imports an upper layer: the probes layer registers its ``ProbesSpec`` here when it
    is imported, and the CLI's composition root (:mod:`ctd_stats.cli.plugins`) imports it.
    """
    if block not in BLOCKS:
        raise ValueError(f"unknown spec block {block!r}")
    _BLOCK_MODELS[block] = model


def block_model(block: str) -> Any:
    """The model registered for an optional block (None: the block is kept as a plain mapping)."""
    model = _BLOCK_MODELS.get(block)
    if isinstance(model, str):  # "module:Class": import it now (the module may register itself)
        import importlib

        module, _, attr = model.partition(":")
        model = getattr(importlib.import_module(module), attr)
        _BLOCK_MODELS[block] = model
    return model

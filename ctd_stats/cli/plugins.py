"""The composition root: the one place where the core meets the optional upper layers.

``ctd_stats`` never imports ``probes``; the CLI does, here, when the layer is installed. Loading
a plugin registers what it contributes to the core (the ``probes:`` spec block's model, through
:func:`ctd_stats.spec.cascade_spec.register_block_model`) and names its sub-command modules. Importing a plugin
module must stay cheap (no torch): the heavy imports happen inside the commands' handlers.
"""

from __future__ import annotations

import importlib

#: Spec blocks owned by plugins: block -> "module:Model" (imported lazily, on first use).
SPEC_PLUGINS: dict[str, str] = {"probes": "probes.spec:ProbesSpec"}
#: Modules that provide extra sub-commands: a click ``command``, or the argparse
#: ``register(subparsers)`` of 0.2 (run through :mod:`ctd_stats.cli.legacy`).
COMMAND_PLUGINS: tuple[str, ...] = ("probes.commands",)


def _available(name: str) -> bool:
    """Import ``name``; False if it (or its top-level package) is not installed."""
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and name.startswith(exc.name):
            return False
        raise
    return True


def load_plugins() -> tuple[str, ...]:
    """Register every installed plugin's spec blocks; return the command modules available."""
    from importlib.util import find_spec

    from ctd_stats.spec.blocks import register_block_model

    for block, target in SPEC_PLUGINS.items():
        package = target.split(".", 1)[0]
        if find_spec(package) is not None:
            register_block_model(block, target)
    return tuple(name for name in COMMAND_PLUGINS if _available(name))

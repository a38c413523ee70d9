"""``ctd schema``: print the JSON Schema of cascade specs (for editor autocompletion)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from ctd_stats.errors import EXIT_OK

if TYPE_CHECKING:
    pass


def register(subparsers: Any) -> None:
    """Add the ``schema`` sub-command."""
    p = subparsers.add_parser(
        "schema",
        help="print the JSON Schema of cascade specs",
        description="Print the JSON Schema of the cascade spec (YAML) on stdout.",
    )
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ctd_stats.spec.cascade_spec import spec_json_schema

    print(json.dumps(spec_json_schema(), indent=2, ensure_ascii=False))
    return EXIT_OK

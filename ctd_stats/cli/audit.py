"""``ctd audit``: check a deployment decision log against a certificate.

Writes ``audit.json``, ``audit.md`` and ``audit.html`` (atomically) and exits 0 when compliant, 1 when
a budget violation or a threshold mismatch was found, 2 on bad input.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import click

from ctd_stats.cli.argtypes import (
    FOLDER,
    ExistingFile,
    Level,
    LogLocation,
    arguments,
    engine_options,
    force_option,
    json_option,
)
from ctd_stats.errors import EXIT_NOT_CERTIFIED, EXIT_OK, CTDInputError
from ctd_stats.reports.outputs import check_manifest

if TYPE_CHECKING:
    from ctd_stats.certificate.cascade import Cascade
    from ctd_stats.certificate.reference import ScoreReference


def _reference(cascade: Cascade) -> ScoreReference | None:
    """The certificate entry's calibration-score reference, or None when it holds none."""
    ref = cascade.result.score_reference if cascade.result is not None else None
    return None if ref is None or ref.is_empty else ref


def load_rule(path: str, budget: float | None = None, expert: str | None = None) -> Cascade:
    """The deployed rule (threshold, budget, expert, score reference) of one certificate entry."""
    from ctd_stats.certificate.cascade import Cascade

    if not Path(path).exists():
        raise CTDInputError(f"{path}: certificate not found")
    try:
        return Cascade.from_certificate(
            path, budget=budget, expert=expert, options=("--budget", "--expert")
        )
    except CTDInputError:
        raise
    except (KeyError, ValueError, LookupError) as exc:
        raise CTDInputError(f"{path}: {exc}") from exc


def run(args: SimpleNamespace) -> int:
    from ctd_stats.audit.run import audit_log
    from ctd_stats.reports.audit import write_audit

    if args.address is not None and args.engine != "ray":
        raise CTDInputError("--address needs --engine ray")
    rule = load_rule(args.certificate, args.budget, args.expert)
    mixed = check_manifest(args.certificate)  # a valid certificate, but not the one its run wrote?
    if mixed is not None:
        print(f"ctd: warning: {mixed}", file=sys.stderr)
    prior = None
    if args.detect_rate is not None and args.decision_rule == "fixed_n":
        raise CTDInputError(
            "--detect-rate tunes the sequential monitor; with --decision-rule fixed_n (one-look "
            "binomial test) it would be ignored: drop one of the two"
        )
    if args.detect_rate is not None:
        from ctd_stats.audit.monitor import detection_prior

        try:
            prior = detection_prior(float(rule.budget), args.detect_rate)  # type: ignore[arg-type]
        except ValueError as exc:
            raise CTDInputError(f"--detect-rate: {exc}") from None
    result = audit_log(
        args.log,
        prior=prior,
        threshold=rule.threshold,
        budget=float(rule.budget),  # type: ignore[arg-type]  # always set when loaded from a certificate
        alpha=args.alpha,
        window=args.window,
        score_reference=_reference(rule),
        timestamp_column=args.timestamp_column,
        score_column=args.score_column,
        decision_column=args.decision_column,
        group_column=args.group_column,
        decision_rule=args.decision_rule,
        certificate=str(args.certificate),
        expert=rule.expert,
        engine=args.engine,
        address=args.address,
    )
    paths = write_audit(result, args.out, force=args.force)
    code = EXIT_OK if result.verdict.compliant else EXIT_NOT_CERTIFIED
    if getattr(args, "json", False):
        print(
            json.dumps(
                {
                    "compliant": result.verdict.compliant,
                    "exit_code": code,
                    "headline": result.verdict.headline,
                    "outputs": {k: str(v) for k, v in paths.items()},
                }
            )
        )
    else:
        print(result.verdict.headline)
        for w in result.warnings:
            print(f"warning: {w}")
        print(f"wrote {paths['json']}, {paths['markdown']}, {paths['html']}")
    return code


@click.command(
    "audit",
    short_help="audit deployment decision logs against a certificate",
    help=(
        "Check that a deployed cascade stayed within its certified delegation budget: realized rate "
        "with an exact interval, a fixed-n binomial test, an anytime-valid sequential monitor, "
        "threshold integrity, per-window/per-group rates and score drift. Exit 0 compliant, 1 "
        "violation, 2 bad input."
    ),
)
@click.option(
    "--certificate",
    required=True,
    type=ExistingFile("certificate"),
    help="certificate JSON written by ctd calibrate/run",
)
@click.option(
    "--log",
    required=True,
    type=LogLocation(),
    help="decision log: .jsonl, .csv, .parquet, a SQLite log, a folder/glob of Parquet parts, or "
    "a postgresql:// URL",
)
@click.option("--alpha", type=Level(), default=0.05, help="test level (default 0.05)")
@click.option("--window", default=None, help="e.g. 1h, 30min, 1d, 1000rows, auto (default auto)")
@click.option("--budget", type=float, default=None, help="which certified budget (if several)")
@click.option("--expert", default=None, help="which expert (if several)")
@click.option(
    "--group-column", default=None, help="column with groups (default: 'group' if present)"
)
@click.option("--timestamp-column", default=None, help="default: timestamp, ts or time")
@click.option("--score-column", default=None, help="default: dv_score or score")
@click.option("--decision-column", default=None, help="default: delegated, decision or delegate")
@click.option(
    "--decision-rule",
    type=click.Choice(("sequential", "fixed_n")),
    default="sequential",
    help="test behind the verdict: anytime-valid monitor (default) or one-look binomial test",
)
@click.option(
    "--detect-rate",
    type=float,
    default=None,
    metavar="RHO",
    help="tune the sequential monitor to detect rates near RHO x budget soonest (RHO > 1; "
    "validity does not depend on it; see docs/audit.md for the delays)",
)
@engine_options
@click.option("--out", type=FOLDER, default="audit", help="output directory (default ./audit)")
@force_option
@json_option
@click.pass_context
def command(ctx: click.Context, **values: Any) -> int:
    return run(arguments(ctx, values))

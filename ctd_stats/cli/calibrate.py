"""``ctd calibrate SPEC``: certify every budget of a spec; write certificate and report.

Writes ``certificate.json`` (all experts and budgets), and ``report.md`` / ``report.html`` /
``report.json`` (as ``outputs.formats`` asks) and ``manifest.json`` into the output directory: only
those files, each atomic, committed together at the end (see :mod:`ctd_stats.reports.outputs`). Exit code 0 if every budget was certified, 1 if any
failed closed (its certificate entry, τ = +∞, is still written), 2 on bad input.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import click

from ctd_stats.cli.argtypes import FILE, arguments, force_option, json_option, output_option
from ctd_stats.cli.progress import progress
from ctd_stats.errors import EXIT_NOT_CERTIFIED, EXIT_OK
from ctd_stats.reports.outputs import output_set

if TYPE_CHECKING:
    from ctd_stats.certificate.build import CalibrationOutcome
    from ctd_stats.spec.cascade_spec import CascadeSpec


@click.command(
    "calibrate",
    short_help="certify every budget of a spec; write certificate and report",
    help="Calibrate every (expert, budget) of a cascade spec on its score table and write "
    "certificate.json and the report into the output directory. Exit 0: all certified; 1: some "
    "budget could not be certified (fail-closed entry written); 2: bad input.",
)
@click.argument("spec", type=FILE)
@output_option
@force_option
@json_option
@click.pass_context
def command(ctx: click.Context, **values: Any) -> int:
    return run(arguments(ctx, values))


def output_names(formats: Sequence[str]) -> list[str]:
    """The files ``ctd calibrate`` writes for the spec's ``outputs.formats``."""
    names = ["certificate.json"]
    names += [
        f"report.{ext}"
        for fmt, ext in (("md", "md"), ("html", "html"), ("json", "json"))
        if fmt in formats
    ]
    return names


def _drawing(results: Any) -> Any:
    """Progress while the report's figures are drawn (one per expert and up to four budgets)."""
    return progress(results, desc="drawing figures")


def write_outputs(
    outcome: CalibrationOutcome, directory: Path, *, force: bool = False
) -> list[Path]:
    """Write certificate and report into ``directory`` (see :mod:`ctd_stats.reports.outputs`); return the files."""
    from ctd_stats.reports.calibration import build_calibration_report, report_data

    formats = outcome.spec.outputs.formats
    rep = (
        build_calibration_report(outcome, progress=_drawing)
        if {"md", "html"} & set(formats)
        else None
    )
    with output_set(
        directory,
        "calibrate",
        spec_sha256=outcome.spec.sha256,
        force=force,
        names=output_names(formats),
        may_write=output_names(("md", "html", "json")),
    ) as out:
        out.write_json("certificate.json", outcome.certificate.to_dict())
        if rep is not None and "md" in formats:
            out.write_text("report.md", rep.to_markdown())
        if rep is not None and "html" in formats:
            out.write_text("report.html", rep.to_html())
        if "json" in formats:
            out.write_json("report.json", report_data(outcome))
    return out.files


def calibrate_and_write(
    spec: CascadeSpec, output: str | None = None, *, force: bool = False
) -> tuple[CalibrationOutcome, list[Path]]:
    """Read the spec's table, calibrate, and write every output."""
    from ctd_stats.certificate.build import calibrate_spec

    table = spec.load_table()
    assert table is not None
    outcome = calibrate_spec(spec, table, progress=lambda it: progress(it, desc="calibrating"))
    directory = Path(output) if output else spec.output_dir()
    return outcome, write_outputs(outcome, directory, force=force)


def run(args: SimpleNamespace) -> int:
    from ctd_stats.reports.calibration import report_data
    from ctd_stats.spec.cascade_spec import load_spec

    spec = load_spec(args.spec)
    outcome, files = calibrate_and_write(
        spec, getattr(args, "output", None), force=getattr(args, "force", False)
    )
    code = EXIT_OK if outcome.all_certified else EXIT_NOT_CERTIFIED
    if getattr(args, "json", False):
        print(
            json.dumps(
                {**report_data(outcome), "files": [str(f) for f in files], "exit_code": code},
                indent=2,
            )
        )
        return code
    print(
        f"{'expert':<12} {'budget':>7} {'δ':>6} {'threshold':>12} {'certified':>9} {'eval rate':>9}"
    )
    for r in outcome.certificate.results:
        ev = outcome.evaluation[(r.expert, r.budget)]
        tau = "+inf" if math.isinf(r.threshold) else f"{r.threshold:.6g}"
        rate = f"{ev.rate:.4f}" if ev.n else "-"
        print(
            f"{r.expert:<12} {r.budget:>7g} {r.delta:>6g} {tau:>12} {'yes' if r.certified else 'NO':>9} {rate:>9}"
        )
    for f in files:
        print(f"wrote {f}")
    if code != EXIT_OK:
        print("some budgets could not be certified: those entries fail closed (never delegate)")
    return code

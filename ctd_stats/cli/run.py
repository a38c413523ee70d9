"""``ctd run SPEC``: the main job — CTD against uncertainty delegation on real data.

From one spec: the score table (or, with a ``probes:`` block and no table yet, the probes layer
builds it and caches it at ``data.table``) → for every expert: repeated random
calibration/evaluation splits comparing CTD with the uncertainty baselines → the deployable
certificate for every budget → one report. Writes into the output directory, atomically:
``report.md``/``report.html`` (the study), ``study.json`` (all figures' numbers),
``certificate.json`` and ``calibration.md``/``calibration.html`` (the deployment calibration).
Exit code 0 when every budget was certified, 1 when some failed closed (still written), 2 on bad input.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import click

from ctd_stats.cli.argtypes import (
    FILE,
    CountRange,
    arguments,
    engine_options,
    force_option,
    json_option,
    output_option,
)
from ctd_stats.cli.progress import progress, progress_enabled
from ctd_stats.engines.local import Engine, get_engine
from ctd_stats.errors import EXIT_NOT_CERTIFIED, EXIT_OK, CTDInputError
from ctd_stats.limits import MAX_REPEATS
from ctd_stats.reports.outputs import output_set

if TYPE_CHECKING:
    from ctd_stats.spec.cascade_spec import CascadeSpec
    from ctd_stats.study.runner import ExpertStudy
    from ctd_stats.table.score_table import ScoreTable


@click.command(
    "run",
    short_help="the main job: CTD vs uncertainty delegation, certificates and one report",
    help="Run the full CTD study of a spec: repeated calibration/evaluation splits for every "
    "expert, certificates for every budget, and one report (Markdown + HTML).",
)
@click.argument("spec", type=FILE)
@output_option
@click.option(
    "--repeats",
    type=CountRange(MAX_REPEATS, "repeats"),
    default=None,
    help=f"override evaluation.repeats (1 to {MAX_REPEATS:,})",
)
@force_option
@engine_options
@json_option
@click.pass_context
def command(ctx: click.Context, **values: Any) -> int:
    return run(arguments(ctx, values))


def ensure_table(spec: CascadeSpec) -> ScoreTable:
    """Load the spec's score table, building it with the probes layer first if it is missing."""
    path = spec.table_path()
    if spec.probes is not None and (path is None or not path.exists()):
        if path is None:
            raise CTDInputError(
                f"{spec.source}: data.table: name where the probes layer should cache its table"
            )
        try:
            from probes.pipeline import build_score_table
        except ImportError as exc:  # pragma: no cover - depends on the optional layer
            raise CTDInputError(
                f"{spec.source}: the probes layer is needed to build {path} ({exc}); "
                "install it with: pip install -e '.[probes]'"
            ) from exc
        from ctd_stats.cli.progress import quiet_library_progress
        from ctd_stats.cli.validate import require_probes_installed
        from probes.spec import ProbesSpec

        pspec = spec.probes_spec
        if not isinstance(pspec, ProbesSpec):
            pspec = ProbesSpec.model_validate(pspec)
        require_probes_installed(pspec, str(spec.source))  # fail now, not after the activations
        quiet_library_progress()
        print(
            f"building the score table with the probes layer (cached at {path}) ...",
            file=sys.stderr,
        )
        build_score_table(
            pspec, log=lambda msg: print(f"ctd: {msg}", file=sys.stderr, flush=True)
        ).write(path)
    table = spec.load_table()
    if table is None:
        raise CTDInputError(f"{spec.source}: data.table: the spec names no score table")
    return table


#: Parquet metadata key of the DV learning curve recorded by a table's build (scripts/build_demo_extras.py).
LEARNING_CURVE_KEY = "ctd.dv_learning_curve"


def build_metadata(path: Path | None, key: str) -> dict[str, Any] | None:
    """A JSON object stored by the table's build under ``key`` (Parquet only); None when absent or
    unreadable (advisory: it only adds a report section)."""
    if path is None or path.suffix != ".parquet":
        return None
    import pyarrow.parquet as pq

    try:
        raw = (pq.read_schema(path).metadata or {}).get(key.encode())
        value = json.loads(raw) if raw else None
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def run_all(
    spec: CascadeSpec, table: ScoreTable, repeats: int | None = None, engine: Engine | None = None
) -> list[ExpertStudy]:
    """Run the repeated-split study for every expert of the table (on ``engine``; default local)."""
    from ctd_stats.study.inputs import study_inputs
    from ctd_stats.study.runner import run_study

    ev = spec.evaluation
    reps = ev.repeats if repeats is None else repeats
    from ctd_stats.cli.estimate import SplitEstimate

    studies = []
    for i, name in enumerate(table.expert_names):
        inputs = study_inputs(table, name)
        bar = None
        if progress_enabled():
            from tqdm import tqdm

            bar = tqdm(total=reps, desc=f"study [{name}]", file=sys.stderr, leave=False)
        ticks = bar.update if bar is not None else None
        if i == 0:  # the first expert's splits time the whole study (announced if long)
            ticks = SplitEstimate(reps, len(table.expert_names), after=ticks).update
        studies.append(
            run_study(
                inputs,
                budgets=ev.budgets,
                delta=spec.calibration.delta,
                repeats=reps,
                opt_fraction=spec.calibration.opt_fraction,
                batch_size=ev.batch_size,
                seed=spec.splits.seed,
                progress=ticks,
                split=spec.calibration.effective_split,
                engine=engine,
            )
        )
        if bar is not None:
            bar.close()
    return studies


def run_output_names(formats: Sequence[str]) -> list[str]:
    """The files ``ctd run`` writes: certificate and study data always, reports per ``outputs.formats``."""
    names = ["certificate.json", "study.json"]
    for fmt in ("md", "html"):
        if fmt in formats:
            names += [f"report.{fmt}", f"calibration.{fmt}"]
    return names


def report_formats(formats: Sequence[str]) -> list[str]:
    """The report formats (``md``, ``html``) among ``outputs.formats``; none: no figure is drawn."""
    return [fmt for fmt in ("md", "html") if fmt in formats]


def run(args: SimpleNamespace) -> int:
    import numpy as np

    from ctd_stats.reports.study import build_study_report
    from ctd_stats.spec.cascade_spec import load_spec
    from ctd_stats.study.runner import METHODS

    t0 = time.perf_counter()
    spec = load_spec(args.spec)
    if args.repeats is not None and args.repeats < 1:
        raise CTDInputError(f"--repeats must be ≥ 1, got {args.repeats}")
    table = ensure_table(spec)
    engine = get_engine(getattr(args, "engine", "local"), getattr(args, "address", None))
    studies = run_all(spec, table, args.repeats, engine)

    from ctd_stats.certificate.build import calibrate_spec
    from ctd_stats.reports.calibration import build_calibration_report
    from ctd_stats.reports.study_controls import controls_blocks

    outcome = calibrate_spec(spec, table, progress=lambda it: progress(it, desc="certifying"))
    costs = {s.expert: s.seconds_per_call for s in studies}
    from ctd_stats.study.run_controls import controls_for_table

    ctl = controls_for_table(spec, table, studies)
    formats = spec.outputs.formats
    curve = build_metadata(table.path, LEARNING_CURVE_KEY)
    # Figures are drawn only for a report that is written (md/html share one drawing of each).
    report = (
        None
        if not report_formats(formats)
        else build_study_report(
            studies,
            title=f"ctd run — {spec.cascade.name}",
            costs=costs,
            preamble=(f"{spec.cascade.description.strip()} " if spec.cascade.description else "")
            + f"Score table {table.name()} ({len(table)} rows; sha256 {str(table.sha256)[:12]}…); "
            f"δ = {spec.calibration.delta:g}; {studies[0].repeats if studies else 0} random splits.\n"
            + ctl.headline(),
            deployment=[
                (r.expert, r.budget, r.delta, r.threshold, r.certified)
                for r in outcome.certificate.results
            ],
            links=[
                (f"{name}", name)
                for name in run_output_names(spec.outputs.formats)
                if name.startswith(("certificate", "calibration", "study"))
            ],
            learning_curve=curve,
            top_blocks=controls_blocks(ctl.experts, ctl.verdicts, ctl.overall),
            progress=lambda items: progress(items, desc="drawing study figures"),
        )
    )
    directory = (Path(args.output) if args.output else spec.output_dir()).resolve()
    study_json: dict[str, Any] = {
        "spec": str(spec.source),
        "table_sha256": table.sha256,
        "experts": [s.to_dict() for s in studies],
        **ctl.to_dict(),
    }
    if curve:
        study_json["dv_learning_curve"] = curve
    with output_set(
        directory,
        "run",
        spec_sha256=spec.sha256,
        force=getattr(args, "force", False),
        names=run_output_names(formats),
        may_write=run_output_names(("md", "html", "json")),
    ) as out:
        out.write_json("certificate.json", outcome.certificate.to_dict())
        out.write_json("study.json", study_json)
        fmts = report_formats(formats)
        cal_rep = (
            build_calibration_report(
                outcome, progress=lambda rs: progress(rs, desc="drawing figures")
            )
            if fmts
            else None
        )
        for fmt in fmts:
            assert report is not None and cal_rep is not None
            out.write_text(
                f"report.{fmt}", report.to_markdown() if fmt == "md" else report.to_html()
            )
            out.write_text(
                f"calibration.{fmt}", cal_rep.to_markdown() if fmt == "md" else cal_rep.to_html()
            )
    code = EXIT_OK if outcome.all_certified else EXIT_NOT_CERTIFIED
    if getattr(args, "json", False):
        print(json.dumps({"output": str(directory), "exit_code": code, **study_json}, indent=2))
        return code
    for s in studies:
        a = s.mean("auroc")
        ci, iu = METHODS.index("ctd"), METHODS.index("unc_calibrated")
        print(
            f"\nexpert '{s.expert}': probe AUROC {np.mean(s.probe_auroc):.3f}, expert AUROC "
            f"{np.mean(s.expert_auroc):.3f}, {s.repeats} splits, δ = {s.delta:g}"
        )
        print(
            f"{'budget':>7} {'CTD AUROC':>10} {'Unc-cal':>8} {'Δ [95% CI over splits]':>25} {'CTD rate':>9} "
            f"{'viol. freq':>10}"
        )
        rate = s.mean("rate")
        dm, dlo, dhi = s.paired_delta("auroc")
        for j, b in enumerate(s.budgets):
            print(
                f"{b:>7g} {a[ci, j]:>10.3f} {a[iu, j]:>8.3f} {dm[ci, j]:>+9.3f} [{dlo[ci, j]:+.3f}, {dhi[ci, j]:+.3f}] "
                f"{rate[ci, j]:>9.3f} {s.bootstrap_violations[j] / s.bootstrap_trials:>10.3f}"
            )
    for r in outcome.certificate.results:
        if not r.certified:
            print(f"budget {r.budget:g} ({r.expert}): not certified, fails closed (τ = +inf)")
    tau = {(r.expert, r.budget): r.threshold for r in outcome.certificate.results}
    shown = ", ".join(
        f"{e}@{b:g}: τ={'inf' if math.isinf(t) else f'{t:.4g}'}"
        for (e, b), t in list(tau.items())[:6]
    )
    print(f"\ncertificates: {shown}{' …' if len(tau) > 6 else ''}")
    print(f"wrote {', '.join(str(f) for f in out.files)} ({time.perf_counter() - t0:.1f} s)")
    return code

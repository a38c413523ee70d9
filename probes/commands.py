"""``ctd scores SPEC``: build the score table of a spec's ``probes:`` block.

A click ``command`` found by :mod:`ctd_stats.cli.plugins`. Importing this module does not import
torch (the handler does), so ``ctd --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
import time
from types import SimpleNamespace
from typing import Any

import click

from ctd_stats.cli.argtypes import (
    FILE,
    FOLDER,
    CountRange,
    arguments,
    engine_options,
    json_option,
)
from ctd_stats.errors import EXIT_OK, CTDInputError


@click.command(
    "scores",
    short_help="texts -> score table (probes layer)",
    help="Run the spec's `probes:` block: load the packaged datasets and models (or models by local "
    "path), train the safety probe (its declared rows), run the expert passes (resumable shards), "
    "score the experts, train the DV probes (dev rows), add the declared control columns and write "
    "the score table (Parquet, or CSV by suffix) to --out or the spec's `data.table`. Activations "
    "and judge scores are cached under $CTD_CACHE_DIR (default ~/.cache/ctd).",
)
@click.argument("spec", type=FILE)
@click.option(
    "--out", type=FILE, default=None, help="output table (default: the spec's data.table)"
)
@click.option(
    "--save-monitor",
    metavar="DIR",
    type=FOLDER,
    default=None,
    help="also write the deployable monitor (fitted safety and DV probes) for `ctd serve --probes DIR`",
)
@click.option("--quiet", is_flag=True, help="no progress messages on stderr")
@engine_options
@click.option(
    "--actors",
    type=CountRange(what="actors"),
    default=None,
    help="--engine ray: model replicas in the actor pool (default: GPUs of the cluster, else 1)",
)
@json_option
@click.pass_context
def command(ctx: click.Context, **values: Any) -> int:
    return run(arguments(ctx, values))


def _activations_on_ray(pspec: Any, args: SimpleNamespace, log: Any) -> None:
    """Compute every row's activations on a Ray actor pool, into the shared activation cache.

    The local build that follows finds them all in the cache (same content-addressed keys), so it
    only fits the probes and writes the table: the same table as without Ray.
    """
    from probes.assets import cache_dir
    from probes.pipeline import load_rows
    from probes.ray_scoring import ScoringSetup, collect, score_texts

    rows = load_rows(pspec)
    setup = ScoringSetup(
        model=pspec.model,
        layers=tuple(pspec.layers) if pspec.layers else None,
        pooling=pspec.pooling,
        max_length=pspec.max_length,
        batch_size=pspec.batch_size,
        cache_dir=str(cache_dir(pspec.cache_dir)),
    )
    from ctd_stats.engines.ray_engine import connect

    ray = connect(args.address)
    actors = args.actors or max(1, int(ray.cluster_resources().get("GPU", 0)))
    log(f"activations of {len(rows)} rows on Ray ({actors} actor(s))")
    collect(
        score_texts(rows[["id", "text"]], setup, actors=actors, address=args.address),
        expected_ids=rows["id"].astype(str).tolist(),
    )
    log("activations cached; fitting the probes locally")


def run(args: SimpleNamespace) -> int:
    """Handler of ``ctd scores``."""
    from pathlib import Path

    from ctd_stats.cli.progress import quiet_library_progress
    from ctd_stats.cli.validate import require_probes_installed
    from ctd_stats.spec.cascade_spec import load_spec

    quiet_library_progress()
    spec = load_spec(args.spec)
    pspec = spec.probes_spec
    if pspec is not None:
        require_probes_installed(pspec, args.spec)
    if pspec is None:
        raise CTDInputError(f"{args.spec}: no `probes:` block; `ctd scores` needs one")
    from probes.spec import ProbesSpec

    if not isinstance(
        pspec, ProbesSpec
    ):  # pragma: no cover - the core validates it when probes exists
        pspec = ProbesSpec.model_validate(pspec)
    out = Path(args.out) if args.out else spec.table_path()
    if out is None:
        raise CTDInputError(
            f"{args.spec}: give --out or set `data.table` (where to write the table)"
        )
    if pspec.cache_dir is not None and not Path(pspec.cache_dir).expanduser().is_absolute():
        pspec = pspec.model_copy(update={"cache_dir": str(spec.base_dir / pspec.cache_dir)})

    from probes.experts import ExpertError
    from probes.pipeline import build_score_table

    t0 = time.perf_counter()

    def log(msg: str) -> None:
        if not args.quiet:
            print(f"[{time.perf_counter() - t0:6.0f} s] {msg}", file=sys.stderr, flush=True)

    if args.engine == "ray":
        _activations_on_ray(pspec, args, log)
    elif args.address is not None:
        raise CTDInputError("--address needs --engine ray")
    try:
        result = build_score_table(pspec, log=log)
    except ExpertError as exc:
        raise CTDInputError(f"{args.spec}: an expert failed: {exc}") from exc
    path = result.write(out)
    monitor = result.save_monitor(args.save_monitor) if args.save_monitor else None
    summary = result.summary
    if getattr(args, "json", False):
        print(
            json.dumps(
                {
                    "table": str(path),
                    "monitor": None if monitor is None else str(monitor),
                    "summary": summary.model_dump(),
                },
                indent=2,
            )
        )
        return EXIT_OK
    print(
        f"wrote {path}: {summary.n_rows} rows ({', '.join(f'{k} {v}' for k, v in summary.n_by_split.items())})"
    )
    if monitor is not None:
        print(f"wrote the monitor bundle {monitor.parent} (for ctd serve --probes)")
    if summary.probe_auroc_pool is not None:
        print(
            f"  probe {summary.model} (layer {summary.probe_layer}): pool AUROC {summary.probe_auroc_pool:.3f}"
        )
    for e in summary.experts:
        auc = f"{e.auroc_pool:.3f}" if e.auroc_pool is not None else "n/a"
        rho = f"{e.dv_spearman_pool:.3f}" if e.dv_spearman_pool is not None else "n/a"
        print(
            f"  expert {e.name}: pool AUROC {auc}, {e.seconds_per_call * 100:.1f} s/100 texts, DV Spearman {rho}"
        )
    return EXIT_OK

"""Scoring on a Ray cluster: texts → activations → scores as Ray Data ``map_batches`` over actors.

One :class:`ScoringActor` per slot of the pool loads the probed model once (bf16 on a GPU,
``num_gpus=1`` per actor when the cluster has GPUs) and, for every batch of ``id, text`` rows,
extracts the pooled activations with the same :class:`~probes.activations.ActivationExtractor` as
the local path (length-sorted batches, the same content-addressed activation cache keys, so a
cluster run warms the cache the local path reads), then applies the fitted probes given to it
(safety probe → ``probe_prob``, DV probes → ``dv_score__<expert>``).

Inputs: a DataFrame, or partitioned Parquet (a folder or a glob of parts with ``id`` and ``text``
columns, read one part per block). Outputs come back in input order (``preserve_order``) and can be
written as partitioned Parquet (:func:`write_parts`).

Failures: a map task whose actor dies is re-run on a restarted actor (``max_restarts`` and
``max_task_retries``); Ray Data keeps a batch's output only when its task completes, so a worker
killed mid-batch neither loses nor duplicates rows. Every run also checks that each input id comes
back exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ctd_stats.errors import CTDInputError

#: Restarts of a dead actor and re-runs of its unfinished batches (Ray Data's own default is -1,
#: unlimited; a bound makes a crash-looping model fail the run). Passed as ``map_batches`` keyword
#: arguments, which Ray deprecates for 2.64 (the ``[ray]`` extra pins below it).
ACTOR_RESTARTS = 4
TASK_RETRIES = 4


@dataclass(frozen=True)
class ScoringSetup:
    """What every actor needs: model, extraction settings and (optionally) fitted probes.

    Attributes
    ----------
    model : str
        A name of :data:`probes.assets.MODELS` (ignored when a ``loader`` is given).
    layers : tuple of int, optional
        Hidden-state indices (default: the model's default layers).
    pooling, max_length, batch_size : as in :class:`~probes.spec.ProbesSpec`.
    cache_dir : str, optional
        Activation cache root (shared storage on a multi-node cluster); ``None`` = no cache.
    probe : SafetyProbe, optional
        Fitted safety probe; adds ``probe_prob``.
    dv_probes : dict, optional
        Expert name → fitted DV probe (activation features); adds ``dv_score__<name>``.
    loader : callable, optional
        ``loader() -> LoadedModel`` replacing the registry (tests); must be importable on workers.
    on_batch : callable, optional
        Called with each batch before it is scored (tests use it to kill a worker mid-batch).
    """

    model: str = "smollm2-135m"
    layers: tuple[int, ...] | None = None
    pooling: str = "last"
    max_length: int = 256
    batch_size: int = 8
    cache_dir: str | None = None
    probe: Any = None
    dv_probes: dict[str, Any] = field(default_factory=dict)
    loader: Callable[[], Any] | None = None
    on_batch: Callable[[pd.DataFrame], None] | None = None


class ScoringActor:
    """A Ray Data actor: loads the model once, then scores batches of ``id, text`` rows."""

    def __init__(self, setup: ScoringSetup) -> None:
        import torch

        from probes.activations import ActivationExtractor
        from probes.assets import load_model

        torch.set_num_threads(1 if not torch.cuda.is_available() else torch.get_num_threads())
        loaded = (
            setup.loader()
            if setup.loader is not None
            else load_model(setup.model, cache=setup.cache_dir)
        )
        self.setup = setup
        self.layers = (
            list(setup.layers) if setup.layers is not None else list(loaded.spec.default_layers)
        )
        self.extractor = ActivationExtractor.from_loaded(
            loaded,
            max_length=setup.max_length,
            batch_size=setup.batch_size,
            cache_dir=setup.cache_dir,
            progress=False,
        )

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        """Scores of one batch: ``id``, ``tokens``, then ``probe_prob`` / ``dv_score__*`` if probes."""
        if self.setup.on_batch is not None:
            self.setup.on_batch(batch)
        x, stats = self.extractor.extract(batch["text"].tolist(), self.layers, self.setup.pooling)  # type: ignore[arg-type]
        out = pd.DataFrame({"id": batch["id"].astype(str).to_numpy(), "tokens": stats.tokens})
        if self.setup.probe is not None:
            out["probe_prob"] = np.asarray(self.setup.probe.predict_proba(x), dtype=np.float64)
        for name, dvp in self.setup.dv_probes.items():
            out[f"dv_score__{name}"] = np.asarray(dvp.predict(x), dtype=np.float64)
        return out


def _read_text_parts(batch: pd.DataFrame) -> pd.DataFrame:
    """Read the ``id, text`` columns of the Parquet parts named in ``batch["path"]``."""
    import pyarrow.parquet as pq

    frames = [pq.read_table(p, columns=["id", "text"]).to_pandas() for p in batch["path"]]
    return pd.concat(frames, ignore_index=True)


def _dataset(ray: Any, texts: pd.DataFrame | str | Path) -> tuple[Any, int]:
    """A Ray dataset of ``id, text`` rows (in order) and its row count."""
    if isinstance(texts, pd.DataFrame):
        missing = {"id", "text"} - set(texts.columns)
        if missing:
            raise CTDInputError(f"texts: missing column(s) {sorted(missing)}")
        frame = texts[["id", "text"]].assign(id=texts["id"].astype(str))
        return ray.data.from_pandas(frame), len(frame)
    import pyarrow.parquet as pq

    from ctd_stats.table.read import parquet_parts

    parts = [str(p.resolve()) for p in parquet_parts(texts)]
    n = sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
    ds = ray.data.from_items([{"path": p} for p in parts], override_num_blocks=len(parts))
    return ds.map_batches(_read_text_parts, batch_format="pandas", batch_size=1, num_cpus=0.25), n


def score_texts(
    texts: pd.DataFrame | str | Path,
    setup: ScoringSetup,
    *,
    actors: int = 1,
    batch_rows: int = 256,
    address: str | None = None,
    gpus_per_actor: float | None = None,
    cpus_per_actor: float = 1.0,
) -> Iterator[pd.DataFrame]:
    """Score texts on a Ray cluster; yields score frames in input order.

    Parameters
    ----------
    texts : DataFrame or path
        ``id, text`` rows, or a folder/glob of Parquet parts with those columns.
    setup : ScoringSetup
        Model, extraction settings and fitted probes.
    actors : int
        Size of the actor pool (one model load each).
    batch_rows : int
        Rows per ``map_batches`` batch (the unit of retry).
    address : str, optional
        Cluster address (see :func:`ctd_stats.engines.ray_engine.connect`).
    gpus_per_actor : float, optional
        Default: 1 when the cluster has GPUs, else 0.
    cpus_per_actor : float
        CPUs reserved per actor; leave some CPU free for the reading stage (actors × CPUs below
        the cluster's CPUs), or the pipeline waits for a CPU that never frees.
    """
    from ctd_stats.engines.ray_engine import connect

    ray = connect(address)
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    if gpus_per_actor is None:
        gpus_per_actor = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
    ds, _ = _dataset(ray, texts)
    ds = ds.map_batches(
        ScoringActor,
        fn_constructor_args=(setup,),
        batch_size=batch_rows,
        batch_format="pandas",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_gpus=gpus_per_actor,
        num_cpus=cpus_per_actor,
        max_restarts=ACTOR_RESTARTS,
        max_task_retries=TASK_RETRIES,
    )
    yield from ds.iter_batches(batch_format="pandas", batch_size=batch_rows)


def collect(frames: Iterator[pd.DataFrame], expected_ids: list[str] | None = None) -> pd.DataFrame:
    """Concatenate score frames; with ``expected_ids``, check every id came back exactly once."""
    got = [f for f in frames if len(f)]
    out = pd.concat(got, ignore_index=True) if got else pd.DataFrame({"id": []})
    if expected_ids is not None:
        ids = out["id"].astype(str)
        dup = ids[ids.duplicated()]
        lost = set(expected_ids) - set(ids)
        if len(dup) or lost or len(ids) != len(expected_ids):
            raise RuntimeError(
                f"scoring returned {len(ids)} rows for {len(expected_ids)} texts "
                f"({len(dup)} duplicated, {len(lost)} missing)"
            )
    return out


def write_parts(
    frames: Iterator[pd.DataFrame], directory: str | Path, rows_per_part: int = 100_000
) -> list[Path]:
    """Write score frames (in order) as ``part-00000.parquet``, ... under ``directory``."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    buf: list[pd.DataFrame] = []
    size = 0

    def flush() -> None:
        nonlocal buf, size
        if buf:
            path = folder / f"part-{len(written):05d}.parquet"
            pd.concat(buf, ignore_index=True).to_parquet(path, index=False)
            written.append(path)
        buf, size = [], 0

    for f in frames:
        buf.append(f)
        size += len(f)
        if size >= rows_per_part:
            flush()
    flush()
    return written

"""Score a Parquet corpus on a Ray cluster (e.g. one multi-GPU node) and report texts/s.

On the node (8 GPUs here; the package installed with ``pip install '.[probes,ray]'``)::

    ray start --head --num-gpus 8                       # once per node
    python benchmarks/ray_score_cluster.py --texts corpus/ --out scores/ \
        --model smollm2-135m --actors 8 --batch-rows 2048 --batch-size 256 --max-length 256
    ray stop

``--texts`` is a folder or glob of Parquet parts with ``id`` and ``text`` columns (make a synthetic
one with ``--make-corpus N``). One actor per GPU (``num_gpus=1``, bf16) loads the model once and
extracts activations through the same :class:`probes.activations.ActivationExtractor` as the local
path (length-sorted batches of ``--batch-size``); the activation cache (``--cache``, on storage all
nodes share) gets the same keys as a local run. Output: ``--out/part-*.parquet`` (``id``,
``tokens``) in input order, and one JSON line with rows, seconds and texts/s. Expected figure: about
actors × the per-GPU rate of benchmarks/results/gpu_probe_throughput_h200.json (SmolLM2-135M at
256 tokens, batch 256: ~3,480 texts/s per H200), less the start-up (actor start + model load).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_corpus(folder: Path, n: int, parts: int = 16) -> None:
    """Synthetic texts (``id``, ``text``) in ``parts`` Parquet parts."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    words = np.array(
        "please tell me how to cook bake write paint learn history music garden safely".split()
    )
    folder.mkdir(parents=True, exist_ok=True)
    for k, idx in enumerate(np.array_split(np.arange(n), parts)):
        texts = [" ".join(rng.choice(words, size=int(rng.integers(8, 120)))) for _ in idx]
        pd.DataFrame({"id": [f"r{i:09d}" for i in idx], "text": texts}).to_parquet(
            folder / f"part-{k:05d}.parquet"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description="score a Parquet corpus on a Ray cluster")
    ap.add_argument("--texts", required=True, help="folder or glob of Parquet parts (id, text)")
    ap.add_argument("--out", required=True, help="output folder of score parts")
    ap.add_argument("--address", default="auto")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--actors", type=int, default=None, help="default: the cluster's GPUs (else 1)")
    ap.add_argument(
        "--batch-rows", type=int, default=2048, help="rows per map_batches batch (unit of retry)"
    )
    ap.add_argument("--batch-size", type=int, default=256, help="texts per forward pass")
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument(
        "--cache", default=None, help="activation cache root on shared storage (default: none)"
    )
    ap.add_argument(
        "--make-corpus", type=int, default=0, help="first write N synthetic texts to --texts"
    )
    args = ap.parse_args()
    if args.make_corpus:
        make_corpus(Path(args.texts), args.make_corpus)

    from ctd_stats.engines.ray_engine import connect
    from probes.ray_scoring import ScoringSetup, score_texts, write_parts

    ray = connect(args.address)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    actors = args.actors or max(1, gpus)
    setup = ScoringSetup(
        model=args.model,
        max_length=args.max_length,
        batch_size=args.batch_size,
        cache_dir=args.cache,
    )
    t0 = time.perf_counter()
    parts = write_parts(
        score_texts(args.texts, setup, actors=actors, batch_rows=args.batch_rows), args.out
    )
    seconds = time.perf_counter() - t0
    import pyarrow.parquet as pq

    rows = sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
    print(
        json.dumps(
            {
                "rows": rows,
                "seconds": round(seconds, 2),
                "texts_per_second": round(rows / seconds, 1),
                "actors": actors,
                "gpus": gpus,
                "model": args.model,
                "parts": len(parts),
            }
        )
    )


if __name__ == "__main__":
    main()

"""Local engine against Ray on this machine: simulation trials/s and scoring texts/s.

    python benchmarks/ray_throughput.py [--cpus 2] [--trials 8000] [--texts 96] [--out FILE]

Sweeps: the built-in simulation grid (uniform scores, n = 1000, two procedures) on the local
engine and as Ray tasks (a local cluster of ``--cpus`` CPUs). Scoring: SmolLM2-135M activations
(last token, default layers, 64 tokens max) of ``--texts`` packaged texts, in process and on a Ray
actor pool of one actor (without an activation cache, so both compute everything). Both Ray figures
include the engine's overheads (task dispatch; actor start and one model load); ``ray_cold`` is the
first sweep on a fresh cluster (worker processes start and import numpy/scipy), ``ray_warm`` the
second.

Scaling model. Sweep chunks are independent (one seeded chunk of ≤ 500 trials per task), so
trials/s grows with the cluster's CPUs until the chunk count is reached: T(c) ≈ c · t1 · e with
t1 the one-core rate and e ≈ 0.8–0.95 (dispatch, result transfer). Scoring actors are independent
model replicas: texts/s ≈ a · r1 for a actors ≤ accelerators (r1 the per-actor rate), plus a fixed
start-up (actor + model load, a few seconds) per run; the driver-side ordering and Parquet writing
(a few µs a row) stays far below GPU rates. Per-GPU reference: benchmarks/results/
gpu_probe_throughput_h200.json (SmolLM2-135M, bf16, 256 tokens: ~3,480 texts/s at batch 256 on
one H200), so a node of 8 such GPUs is bounded near 8 × 3,480 ≈ 27,900 texts/s.
Results are printed as JSON and written to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def sweeps(trials: int) -> dict[str, Any]:
    from ctd_stats.engines.local import LocalEngine, get_engine
    from ctd_stats.stats.simulate import make_population
    from ctd_stats.study.simulation_grid import simulate_grid

    kw: dict[str, Any] = {
        "sizes": [1000],
        "budgets": [0.3],
        "procedures": ["fixed_sequence", "bonferroni"],
        "delta": 0.1,
        "trials": trials,
        "seed": 0,
    }
    pop = make_population("uniform")
    out: dict[str, Any] = {"trials": 2 * trials}
    ray_engine = get_engine("ray")
    for name, eng in (("local", LocalEngine()), ("ray_cold", ray_engine), ("ray_warm", ray_engine)):
        t0 = time.perf_counter()
        rows = simulate_grid(pop, engine=eng, **kw)
        dt = time.perf_counter() - t0
        out[name] = {"seconds": round(dt, 3), "trials_per_second": round(2 * trials / dt, 1)}
        out.setdefault("rows", rows)
    out["equal"] = out.pop("rows") == simulate_grid(pop, engine=LocalEngine(), **kw)
    return out


def scoring(n_texts: int) -> dict[str, Any]:
    import torch

    from probes.activations import ActivationExtractor
    from probes.assets import load_dataset, load_model
    from probes.ray_scoring import ScoringSetup, collect, score_texts

    torch.set_num_threads(1)
    rows = load_dataset("neuralchemy_requests").head(n_texts)
    texts = rows["text"].tolist()
    t0 = time.perf_counter()
    loaded = load_model("smollm2-135m")
    t_load = time.perf_counter() - t0
    ex = ActivationExtractor.from_loaded(
        loaded, max_length=64, batch_size=16, cache_dir=None, progress=False
    )
    t1 = time.perf_counter()
    ex.extract(texts, list(loaded.spec.default_layers), "last")
    t_local = time.perf_counter() - t1
    setup = ScoringSetup(model="smollm2-135m", max_length=64, batch_size=16, cache_dir=None)
    t2 = time.perf_counter()
    got = collect(
        score_texts(rows[["id", "text"]], setup, actors=1, batch_rows=32),
        expected_ids=rows["id"].astype(str).tolist(),
    )
    t_ray = time.perf_counter() - t2
    return {
        "texts": n_texts,
        "model": "smollm2-135m",
        "max_length": 64,
        "threads_per_worker": 1,
        "local": {
            "model_load_seconds": round(t_load, 2),
            "seconds": round(t_local, 2),
            "texts_per_second": round(n_texts / t_local, 1),
            "texts_per_second_with_load": round(n_texts / (t_local + t_load), 1),
        },
        "ray_1_actor": {
            "seconds_with_actor_start_and_load": round(t_ray, 2),
            "texts_per_second_with_load": round(n_texts / t_ray, 1),
            "rows": len(got),
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--trials", type=int, default=8000)
    ap.add_argument("--texts", type=int, default=96)
    ap.add_argument("--out", default="benchmarks/results/ray_throughput_local.json")
    args = ap.parse_args()
    import ray

    from ctd_stats.engines.ray_engine import init_local

    init_local(num_cpus=args.cpus)
    try:
        result = {
            "machine": f"{os.cpu_count()} CPU cores (shared)",
            "ray": ray.__version__,
            "cluster_cpus": args.cpus,
            "sweeps": sweeps(args.trials),
            "scoring": scoring(args.texts),
        }
    finally:
        ray.shutdown()
    text = json.dumps(result, indent=2)
    print(text)
    Path(args.out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

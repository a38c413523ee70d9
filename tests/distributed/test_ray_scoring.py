"""Scoring on Ray (actor pool, map_batches) equals the local path row for row; a killed actor
loses and duplicates no row."""

from __future__ import annotations

import functools
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from probes.ray_scoring import ScoringSetup, collect, score_texts, write_parts
from tests.distributed.tiny_model import record_pid_and_wait, tiny_loaded
from tests.unit.probes.conftest import synthetic_texts

pytestmark = pytest.mark.ray
LAYERS = (1, 2, 3)


def _local(texts: list[str], cache: Path | None) -> tuple[Any, Any]:
    from probes.activations import ActivationExtractor

    ex = ActivationExtractor.from_loaded(
        tiny_loaded(), max_length=32, batch_size=4, cache_dir=cache, progress=False
    )
    return ex.extract(texts, LAYERS, "last")


@pytest.fixture(scope="module")
def corpus() -> tuple[pd.DataFrame, Any]:
    """30 texts with ids, and a safety probe fitted locally on their activations."""
    from probes.linear import SafetyProbe

    texts, y = synthetic_texts(30, seed=3)
    x, _ = _local(texts, None)
    probe = SafetyProbe(seed=0).fit(x, y, list(LAYERS))
    return pd.DataFrame({"id": [f"t{i:03d}" for i in range(30)], "text": texts}), probe


def _setup(probe: Any, cache: Path | None, **kw: Any) -> ScoringSetup:
    return ScoringSetup(
        layers=LAYERS,
        max_length=32,
        batch_size=4,
        cache_dir=str(cache) if cache else None,
        probe=probe,
        loader=tiny_loaded,
        **kw,
    )


def test_ray_scores_equal_local_and_share_cache(
    ray_cluster: Any, corpus: Any, tmp_path: Path
) -> None:
    frame, probe = corpus
    x, _ = _local(frame["text"].tolist(), tmp_path / "local-cache")
    expected = probe.predict_proba(x)
    for k in range(3):  # partitioned Parquet input
        (tmp_path / "texts" / f"shard={k}").mkdir(parents=True)
        frame.iloc[k * 10 : (k + 1) * 10].to_parquet(
            tmp_path / "texts" / f"shard={k}" / "p.parquet"
        )
    out = collect(
        score_texts(
            tmp_path / "texts", _setup(probe, tmp_path / "ray-cache"), actors=1, batch_rows=7
        ),
        expected_ids=frame["id"].tolist(),
    )
    assert out["id"].tolist() == frame["id"].tolist()
    np.testing.assert_allclose(out["probe_prob"].to_numpy(), expected, rtol=1e-5, atol=1e-6)
    keys = sorted(p.name for p in (tmp_path / "local-cache" / "activations").iterdir())
    assert keys == sorted(p.name for p in (tmp_path / "ray-cache" / "activations").iterdir())
    # the cluster's cache serves the local path: same activations, nothing recomputed
    x2, stats = _local(frame["text"].tolist(), tmp_path / "ray-cache")
    assert stats.n_computed == 0
    np.testing.assert_allclose(x2.numpy(), x.numpy(), rtol=1e-5, atol=1e-6)
    parts = write_parts(
        score_texts(frame, _setup(probe, None), batch_rows=8), tmp_path / "scores", rows_per_part=12
    )
    back = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    assert len(parts) >= 2 and back["id"].tolist() == frame["id"].tolist()


def test_killed_actor_loses_and_duplicates_no_row(
    ray_cluster: Any, corpus: Any, tmp_path: Path
) -> None:
    frame, probe = corpus
    pid_file = tmp_path / "pids.txt"
    hook = functools.partial(record_pid_and_wait, str(pid_file), 0.4)
    killed: list[int] = []

    def killer() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if pid_file.exists() and pid_file.read_text().split():
                pid = int(pid_file.read_text().split()[0])
                os.kill(pid, signal.SIGKILL)  # mid-batch: the hook is dwelling before scoring
                killed.append(pid)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    out = collect(
        score_texts(frame, _setup(probe, None, on_batch=hook), actors=1, batch_rows=5),
        expected_ids=frame["id"].tolist(),
    )
    thread.join(timeout=5)
    assert killed, "no actor was killed"
    pids = {int(p) for p in pid_file.read_text().split()}
    assert len(pids) >= 2, "the killed actor was not replaced"
    assert out["id"].tolist() == frame["id"].tolist()
    x, _ = _local(frame["text"].tolist(), None)
    np.testing.assert_allclose(
        out["probe_prob"].to_numpy(), probe.predict_proba(x), rtol=1e-5, atol=1e-6
    )

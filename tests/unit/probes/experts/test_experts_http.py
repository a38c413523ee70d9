"""Tests of probes.experts.http and probes.experts.transport against a local HTTP stub server on loopback."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from expert_stubs import StubServer, chat_body, sigmoid

from probes.experts import (
    Expert,
    ExpertError,
    HTTPExpert,
)


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

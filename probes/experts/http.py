"""The HTTP expert: an OpenAI-compatible chat or moderation endpoint (e.g. Llama Guard behind vLLM).

Requests go through :mod:`probes.experts.transport` (timeouts, bounded retries, standard library
only) on a bounded thread pool; this module builds the requests and reads P(unsafe) from the
responses.
"""

from __future__ import annotations

import math
import os
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from probes.experts.base import (
    CostMeter,
    ExpertCost,
    ExpertError,
    check_output,
    check_texts,
    snippet,
)
from probes.experts.transport import build_opener, post_json

__all__ = ["HTTPExpert"]


def _norm_token(token: str) -> str:
    """Normalise a returned token for class matching: strip spaces and BPE markers, lower-case."""
    return token.strip().lstrip("\u0120\u2581").strip().lower()


def _top_entries(entry: Mapping[str, Any]) -> list[tuple[str, float]]:
    """(token, logprob) pairs of one position: the chosen token plus its top alternatives."""
    pairs: list[tuple[str, float]] = []
    tok, lp = entry.get("token"), entry.get("logprob")
    if isinstance(tok, str) and isinstance(lp, int | float) and not isinstance(lp, bool):
        pairs.append((tok, float(lp)))
    top = entry.get("top_logprobs")
    if isinstance(top, Mapping):  # legacy {token: logprob}
        top = [{"token": k, "logprob": v} for k, v in top.items()]
    if isinstance(top, list):
        for t in top:
            if not isinstance(t, Mapping):
                continue
            ttok, tlp = t.get("token"), t.get("logprob")
            if isinstance(ttok, str) and isinstance(tlp, int | float) and not isinstance(tlp, bool):
                pairs.append((ttok, float(tlp)))
    seen: dict[str, float] = {}
    for t, v in pairs:
        if t not in seen and (math.isfinite(v) or v == -math.inf):
            seen[t] = v
    return list(seen.items())


def _lse(values: list[float]) -> float:
    m = max(values)
    if m == -math.inf:
        return -math.inf
    return m + math.log(sum(math.exp(v - m) for v in values))


class HTTPExpert:
    """Expert served by an OpenAI-compatible endpoint (e.g. Llama Guard behind vLLM).

    **Chat mode** (``POST {base}/v1/chat/completions``) sends each text as one user turn (through
    ``user_template``, after an optional system message) with ``max_tokens``, ``temperature=0``,
    ``logprobs=true`` and ``top_logprobs``. The score is read at the first generated position whose
    token is not whitespace: with ``lp`` the returned log-probabilities there,
    ``P(unsafe) = e^lse(lp[unsafe]) / (e^lse(lp[unsafe]) + e^lse(lp[safe]))``, where a token
    belongs to a class when, stripped of spaces and BPE markers and lower-cased, it is one of
    ``unsafe_tokens`` / ``safe_tokens``. If only one class appears among the top log-probs, the
    other's probability is set to its largest value consistent with the response,
    ``min(smallest listed probability, 1 - sum of listed probabilities)``. If neither appears, the
    call fails, unless ``allow_hard_labels`` is set, in which case a message content starting with
    "unsafe" / "safe" gives 1.0 / 0.0.

    **Moderation mode** (``POST {base}/v1/moderations``) sends up to ``moderation_batch_size``
    texts per request; P(unsafe) is the largest ``category_scores`` value of each result (or,
    only with ``allow_hard_labels``, 1.0/0.0 from ``flagged`` when there are no category scores).

    Transport: ``urllib`` only, a per-request ``timeout_s``, up to ``max_retries`` retries with
    exponential backoff ``min(backoff_s * 2**attempt, max_backoff_s)`` (a numeric ``Retry-After``
    is honoured up to ``max_backoff_s``) on connection errors, timeouts and HTTP 408/425/429/5xx.
    Other HTTP errors, invalid JSON and responses without a usable probability fail at once.
    Requests run on a thread pool of at most ``max_workers`` threads. Proxies from the environment
    are used except for loopback hosts. Every failure raises :class:`ExpertError`.

    Parameters
    ----------
    base_url : str
        ``http(s)://host[:port]`` with an optional path prefix; a trailing ``/v1`` is accepted.
    model : str
        The ``model`` field of each request.
    mode : {"chat", "moderation"}
    timeout_s : float
        Per-request timeout, > 0.
    max_retries : int
        Retries after the first attempt, 0 to 10.
    backoff_s, max_backoff_s : float
        Backoff schedule (seconds).
    api_key_env : str, optional
        Name of an environment variable holding a bearer token (read at construction; never
        logged).
    max_workers : int
        Concurrent requests, 1 to 64.
    name : str, optional
        Expert name (default ``"http:<model>"``).
    system_prompt : str, optional
        System message (chat mode).
    user_template : str
        User message with the placeholder ``{text}`` (default: the text alone, as Llama Guard's
        own chat template expects).
    max_tokens : int
        Completion tokens requested (chat mode; 1 suffices unless the model starts with
        whitespace tokens).
    top_logprobs : int
        Alternatives requested per position (chat mode), 1 to 20.
    unsafe_tokens, safe_tokens : tuple of str
        Lower-case class tokens (chat mode).
    allow_hard_labels : bool
        Accept a 0/1 label when the response has no probabilities (see above).
    moderation_batch_size : int
        Texts per moderation request.
    extra_body : mapping, optional
        Extra JSON fields merged into every request body.
    max_response_bytes : int
        Larger responses are rejected.

    Raises
    ------
    ValueError
        On an invalid argument, or an ``api_key_env`` that is not set.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        mode: Literal["chat", "moderation"] = "chat",
        timeout_s: float = 30.0,
        max_retries: int = 2,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        api_key_env: str | None = None,
        max_workers: int = 4,
        name: str | None = None,
        system_prompt: str | None = None,
        user_template: str = "{text}",
        max_tokens: int = 1,
        top_logprobs: int = 20,
        unsafe_tokens: tuple[str, ...] = ("unsafe",),
        safe_tokens: tuple[str, ...] = ("safe",),
        allow_hard_labels: bool = False,
        moderation_batch_size: int = 16,
        extra_body: Mapping[str, Any] | None = None,
        max_response_bytes: int = 8 << 20,
    ) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"base_url: expected http(s)://host[:port][/prefix], got {base_url!r}")
        if mode not in ("chat", "moderation"):
            raise ValueError(f"mode: must be 'chat' or 'moderation', got {mode!r}")
        if not (timeout_s > 0 and math.isfinite(timeout_s)):
            raise ValueError(f"timeout_s: must be a positive number, got {timeout_s!r}")
        if not (0 <= max_retries <= 10):
            raise ValueError(f"max_retries: must be in [0, 10], got {max_retries!r}")
        if backoff_s < 0 or max_backoff_s < 0:
            raise ValueError("backoff_s, max_backoff_s: must be >= 0")
        if not (1 <= max_workers <= 64):
            raise ValueError(f"max_workers: must be in [1, 64], got {max_workers!r}")
        if "{text}" not in user_template:
            raise ValueError("user_template: must contain the placeholder {text}")
        if max_tokens < 1:
            raise ValueError(f"max_tokens: must be >= 1, got {max_tokens!r}")
        if not (1 <= top_logprobs <= 20):
            raise ValueError(f"top_logprobs: must be in [1, 20], got {top_logprobs!r}")
        if moderation_batch_size < 1:
            raise ValueError(f"moderation_batch_size: must be >= 1, got {moderation_batch_size!r}")
        if not unsafe_tokens or not safe_tokens:
            raise ValueError("unsafe_tokens, safe_tokens: must be non-empty")
        self._unsafe = frozenset(_norm_token(t) for t in unsafe_tokens)
        self._safe = frozenset(_norm_token(t) for t in safe_tokens)
        if self._unsafe & self._safe:
            raise ValueError("unsafe_tokens and safe_tokens overlap")
        self._api_key: str | None = None
        if api_key_env is not None:
            key = os.environ.get(api_key_env)
            if not key:
                raise ValueError(f"api_key_env: environment variable {api_key_env!r} is not set")
            self._api_key = key

        root = base_url.rstrip("/")
        if not root.endswith("/v1"):
            root += "/v1"
        self.base_url = base_url
        self.endpoint = root + ("/chat/completions" if mode == "chat" else "/moderations")
        self.model = model
        self.mode = mode
        self.name = name or f"http:{model}"
        self.timeout_s = float(timeout_s)
        self.max_retries = int(max_retries)
        self.backoff_s = float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        self.max_workers = int(max_workers)
        self.system_prompt = system_prompt
        self.user_template = user_template
        self.max_tokens = int(max_tokens)
        self.top_logprobs = int(top_logprobs)
        self.allow_hard_labels = bool(allow_hard_labels)
        self.moderation_batch_size = int(moderation_batch_size)
        self.extra_body = dict(extra_body or {})
        self.max_response_bytes = int(max_response_bytes)
        self._opener = build_opener(parsed.hostname)
        self._meter = CostMeter()

    def __repr__(self) -> str:
        return f"HTTPExpert({self.name!r}, endpoint={self.endpoint!r}, mode={self.mode!r})"

    @property
    def cost(self) -> ExpertCost:
        """Measured cost: wall seconds per text; tokens per text from ``usage`` when reported."""
        return self._meter.snapshot()

    # -- transport
    def _post(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """POST ``payload`` (with ``extra_body`` merged in) as JSON with retries; the JSON object back."""
        return post_json(
            self._opener,
            self.endpoint,
            {**payload, **self.extra_body},
            api_key=self._api_key,
            timeout_s=self.timeout_s,
            max_retries=self.max_retries,
            backoff_s=self.backoff_s,
            max_backoff_s=self.max_backoff_s,
            max_response_bytes=self.max_response_bytes,
        )

    # -- parsing
    def _chat_probability(self, body: Mapping[str, Any]) -> float:
        choices = body.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
            raise ExpertError(f"no 'choices' in response: {snippet(body)}")
        choice = choices[0]
        logprobs = choice.get("logprobs")
        content = logprobs.get("content") if isinstance(logprobs, Mapping) else None
        if isinstance(content, list):
            for entry in content:
                if not isinstance(entry, Mapping):
                    break
                tok = entry.get("token")
                if isinstance(tok, str) and not tok.strip():
                    continue  # leading whitespace/newline tokens (e.g. Llama Guard's "\n\n")
                pairs = _top_entries(entry)
                if any(lp > 1e-6 for _, lp in pairs):
                    raise ExpertError(f"positive log-probability in response: {snippet(entry)}")
                unsafe = [lp for t, lp in pairs if _norm_token(t) in self._unsafe]
                safe = [lp for t, lp in pairs if _norm_token(t) in self._safe]
                if not unsafe and not safe:
                    break
                listed = [math.exp(lp) for _, lp in pairs]
                if not unsafe or not safe:
                    bound = max(min(min(listed), 1.0 - sum(listed)), 0.0)
                    missing = math.log(bound) if bound > 0 else -math.inf
                    (safe if not safe else unsafe).append(missing)
                lu, ls = _lse(unsafe), _lse(safe)
                if lu == -math.inf and ls == -math.inf:
                    raise ExpertError("both classes have zero probability")
                if lu == -math.inf:
                    return 0.0
                if ls == -math.inf:
                    return 1.0
                return 1.0 / (1.0 + math.exp(ls - lu))
        if self.allow_hard_labels:
            message = choice.get("message")
            text = message.get("content") if isinstance(message, Mapping) else None
            if isinstance(text, str):
                word = text.strip().lower()
                if word.startswith("unsafe"):
                    return 1.0
                if word.startswith("safe"):
                    return 0.0
        raise ExpertError(
            "no 'unsafe'/'safe' token among the returned top log-probs"
            + (
                ""
                if self.allow_hard_labels
                else " (allow_hard_labels=True would accept a plain label)"
            )
            + f": {snippet(choice)}"
        )

    def _moderation_probabilities(self, body: Mapping[str, Any], n: int) -> list[float]:
        results = body.get("results")
        if not isinstance(results, list) or len(results) != n:
            got = len(results) if isinstance(results, list) else "no"
            raise ExpertError(f"expected {n} moderation results, got {got}: {snippet(body)}")
        out: list[float] = []
        for i, res in enumerate(results):
            if not isinstance(res, Mapping):
                raise ExpertError(f"moderation result {i} is not an object: {snippet(res)}")
            scores = res.get("category_scores")
            if isinstance(scores, Mapping) and scores:
                vals = list(scores.values())
                if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in vals):
                    raise ExpertError(
                        f"moderation result {i}: non-numeric category score {snippet(scores)}"
                    )
                top = max(float(v) for v in vals)
                if not (0.0 <= top <= 1.0):
                    raise ExpertError(
                        f"moderation result {i}: category score {top!r} outside [0, 1]"
                    )
                out.append(top)
            elif self.allow_hard_labels and isinstance(res.get("flagged"), bool):
                out.append(1.0 if res["flagged"] else 0.0)
            else:
                raise ExpertError(
                    f"moderation result {i} has no category_scores"
                    + (
                        ""
                        if self.allow_hard_labels
                        else " (allow_hard_labels=True would accept 'flagged')"
                    )
                )
        return out

    @staticmethod
    def _usage_tokens(body: Mapping[str, Any]) -> float | None:
        usage = body.get("usage")
        if not isinstance(usage, Mapping):
            return None
        total = usage.get("total_tokens")
        if isinstance(total, int | float) and not isinstance(total, bool):
            return float(total)
        parts = [usage.get("prompt_tokens"), usage.get("completion_tokens")]
        nums = [float(p) for p in parts if isinstance(p, int | float) and not isinstance(p, bool)]
        return sum(nums) if nums else None

    # -- one request
    def _request_chat(self, chunk: list[str]) -> tuple[list[float], float | None]:
        (text,) = chunk
        messages = []
        if self.system_prompt is not None:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append({"role": "user", "content": self.user_template.replace("{text}", text)})
        body = self._post(
            {
                "model": self.model,
                "messages": messages,
                "max_tokens": self.max_tokens,
                "temperature": 0,
                "logprobs": True,
                "top_logprobs": self.top_logprobs,
            }
        )
        return [self._chat_probability(body)], self._usage_tokens(body)

    def _request_moderation(self, texts: list[str]) -> tuple[list[float], float | None]:
        body = self._post({"model": self.model, "input": texts})
        return self._moderation_probabilities(body, len(texts)), self._usage_tokens(body)

    # -- public
    def score(self, texts: Sequence[str]) -> NDArray[np.float64]:
        """P(unsafe) per text, shape ``(len(texts),)``, float64 in [0, 1].

        Raises
        ------
        ExpertError
            If any request fails after its retries or returns no usable probability; the message
            names the first failing text's index. Outstanding requests are cancelled.
        """
        items = check_texts(texts)
        n = len(items)
        if n == 0:
            return np.empty(0, dtype=np.float64)
        call: Callable[[list[str]], tuple[list[float], float | None]]
        if self.mode == "chat":
            chunks = [(i, i + 1) for i in range(n)]
            call = self._request_chat
        else:
            step = self.moderation_batch_size
            chunks = [(i, min(i + step, n)) for i in range(0, n, step)]
            call = self._request_moderation
        start = time.perf_counter()
        out = np.empty(n, dtype=np.float64)
        tokens, token_texts = 0.0, 0
        workers = min(self.max_workers, len(chunks))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"expert-{self.name}")
        try:
            futures: list[Future[tuple[list[float], float | None]]] = [
                pool.submit(call, items[a:b]) for a, b in chunks
            ]
            for (a, b), fut in zip(chunks, futures, strict=True):
                try:
                    probs, tok = fut.result()
                except ExpertError as exc:
                    raise ExpertError(f"expert {self.name!r}: text {a}: {exc}") from exc
                except Exception as exc:  # defensive: a bug must not become a score
                    raise ExpertError(
                        f"expert {self.name!r}: text {a}: unexpected {exc!r}"
                    ) from exc
                out[a:b] = probs
                if tok is not None:
                    tokens += tok
                    token_texts += b - a
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        self._meter.add(
            time.perf_counter() - start, n, tokens if token_texts else None, token_texts
        )
        return check_output(self.name, out, n)

"""Experts: the expensive second stage of a cascade, each returning P(unsafe) for texts.

An expert is anything that follows the :class:`Expert` protocol: a ``name``, a ``score(texts)``
method returning one probability of "unsafe" per text, and a ``cost`` property with the measured
cost per call (so that reports can state what delegation costs). Three experts live here:

* :class:`PrecomputedColumnExpert` -- scores that were computed elsewhere (a column of a table).
* :class:`PromptedJudgeExpert` -- an instruct causal LM asked whether a text is harmful; the score
  is its likelihood of an "unsafe" answer against a "safe" one, read from the logits of the first
  answer token (the LM head runs at the last position only).
* :class:`HTTPExpert` -- an OpenAI-compatible chat or moderation endpoint (for instance Llama Guard
  served by vLLM), with timeouts, bounded retries and a bounded thread pool; standard library only.

The probe expert (a larger model with its own trained probe) lives in ``probes.probe_expert``.

Failure policy: an expert that cannot produce a valid probability for a text raises
:class:`ExpertError`. A failed call is never scored as 0 (or 0.5), because a silent default would
bias the delegation-value targets and every cascade metric computed from them.

This module imports numpy and pydantic only; torch is imported lazily by the judge.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import math
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "DEFAULT_JUDGE_PROMPT",
    "Expert",
    "ExpertCost",
    "ExpertError",
    "HTTPExpert",
    "JudgePrompt",
    "PrecomputedColumnExpert",
    "PromptedJudgeExpert",
    "check_texts",
]


class ExpertError(RuntimeError):
    """An expert could not score a text (transport error, timeout, invalid response, ...)."""


class ExpertCost(BaseModel):
    """Measured cost of an expert, averaged over every text it has scored.

    Attributes
    ----------
    seconds_per_call : float
        Mean wall-clock seconds per text: the total wall time of the ``score`` calls divided by
        the number of texts scored (with batching or concurrency this is the effective cost).
    tokens_per_call : float or None
        Mean tokens per text (prompt plus completion, as counted by the model or the server), or
        ``None`` where the expert does not report tokens.
    calls : int
        Number of texts scored so far.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    seconds_per_call: float = Field(ge=0.0)
    tokens_per_call: float | None = Field(default=None, ge=0.0)
    calls: int = Field(ge=0)

    def to_metadata(self, description: str = "") -> dict[str, Any]:
        """Entry for the score table's ``ctd.experts`` metadata (see ``docs/CONTRACTS.md``)."""
        return {
            "seconds_per_call": self.seconds_per_call,
            "tokens_per_call": self.tokens_per_call,
            "description": description,
        }


class _CostMeter:
    """Thread-safe accumulator of wall seconds and tokens over scored texts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seconds = 0.0
        self._texts = 0
        self._tokens = 0.0
        self._token_texts = 0

    def add(
        self, seconds: float, texts: int, tokens: float | None = None, token_texts: int = 0
    ) -> None:
        with self._lock:
            self._seconds += seconds
            self._texts += texts
            if tokens is not None and token_texts > 0:
                self._tokens += tokens
                self._token_texts += token_texts

    def snapshot(self) -> ExpertCost:
        with self._lock:
            spc = self._seconds / self._texts if self._texts else 0.0
            tpc = self._tokens / self._token_texts if self._token_texts else None
            return ExpertCost(seconds_per_call=spc, tokens_per_call=tpc, calls=self._texts)

    def reset(self) -> None:
        with self._lock:
            self._seconds, self._texts, self._tokens, self._token_texts = 0.0, 0, 0.0, 0


@runtime_checkable
class Expert(Protocol):
    """What the cascade needs from an expert.

    ``score(texts)`` returns a float64 array of shape ``(len(texts),)`` with P(unsafe) in [0, 1],
    raises :class:`ExpertError` when a text cannot be scored (never a default value), returns an
    empty array for an empty list, and raises ``ValueError`` naming the index of an empty or blank
    text. ``cost`` is the :class:`ExpertCost` measured so far.
    """

    name: str

    def score(self, texts: Sequence[str]) -> NDArray[np.float64]: ...

    @property
    def cost(self) -> ExpertCost: ...


# ----------------------------------------------------------------------------- shared helpers
def check_texts(texts: Sequence[str]) -> list[str]:
    """Validate a batch of texts and return it as a list.

    Raises
    ------
    TypeError
        If ``texts`` is a single string (a common mistake: it is a sequence of characters) or not
        a sequence, or an element is not a ``str`` (the message names the index).
    ValueError
        If an element is empty or only whitespace (the message names the index).
    """
    if isinstance(texts, str | bytes):
        raise TypeError("texts: expected a sequence of strings, got a single string")
    if not isinstance(texts, Sequence):
        try:
            texts = list(texts)  # e.g. a numpy array or pandas Series of str
        except TypeError as exc:
            raise TypeError(f"texts: expected a sequence of strings, got {type(texts)!r}") from exc
    out: list[str] = []
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}]: expected str, got {type(t).__name__}")
        if not t.strip():
            raise ValueError(f"texts[{i}] is empty or blank; an expert cannot score it")
        out.append(t)
    return out


def _check_output(name: str, probs: NDArray[np.float64], n: int) -> NDArray[np.float64]:
    """Raise ExpertError unless ``probs`` has shape (n,) with finite values in [0, 1]."""
    if probs.shape != (n,):
        raise ExpertError(f"expert {name!r}: produced shape {probs.shape}, expected ({n},)")
    bad = ~np.isfinite(probs) | (probs < 0.0) | (probs > 1.0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ExpertError(f"expert {name!r}: invalid probability {probs[i]!r} for text {i}")
    return probs


def _snippet(value: object, limit: int = 200) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


# ----------------------------------------------------------------------------- precomputed column
class PrecomputedColumnExpert:
    """Expert whose scores were computed elsewhere and stored in a table column.

    Two ways to use it:

    * **Keyed** (``values`` is a mapping, or an array with ``keys``): ``score(keys)`` looks each
      key up (an id or the text itself). A missing key raises :class:`ExpertError`.
    * **Positional** (``values`` is an array without ``keys``): ``score(texts)`` returns the whole
      column and requires ``len(texts) == len(values)``: the caller's rows are the table's rows.

    A NaN in the column means "the expert was not run on this row" (as in the score table), and
    scoring such a row raises :class:`ExpertError` rather than inventing a value.

    Parameters
    ----------
    name : str
        Expert name (the ``<name>`` of ``expert_prob__<name>``).
    values : mapping of str to float, or array_like of float, shape (m,)
        P(unsafe) per row, in [0, 1], or NaN where missing.
    keys : sequence of str, optional
        Keys of an array ``values`` (unique, same length).
    cost : ExpertCost, optional
        The cost of the expert that produced the column (e.g. read from the score table's
        metadata); reported by :attr:`cost`. Default: the measured cost of the look-ups.

    Raises
    ------
    ValueError
        On a value outside [0, 1], mismatched or duplicate keys, or ``keys`` given with a mapping.
    """

    def __init__(
        self,
        name: str,
        values: Mapping[str, float] | ArrayLike,
        *,
        keys: Sequence[str] | None = None,
        cost: ExpertCost | None = None,
    ) -> None:
        self.name = name
        self._fixed_cost = cost
        self._meter = _CostMeter()
        self._table: dict[str, float] | None
        if isinstance(values, Mapping):
            if keys is not None:
                raise ValueError("keys: must be None when values is a mapping")
            table = {str(k): float(v) for k, v in values.items()}
            self._check_values(np.fromiter(table.values(), dtype=np.float64, count=len(table)))
            self._table, self._column = table, None
        else:
            col = np.asarray(values, dtype=np.float64)
            if col.ndim != 1:
                raise ValueError(f"values: expected a 1-D array, got shape {col.shape}")
            self._check_values(col)
            if keys is None:
                self._table, self._column = None, col.copy()
            else:
                key_list = [str(k) for k in keys]
                if len(key_list) != col.size:
                    raise ValueError(f"keys: length {len(key_list)} != length of values {col.size}")
                table = dict(zip(key_list, col.tolist(), strict=True))
                if len(table) != len(key_list):
                    raise ValueError("keys: must be unique")
                self._table, self._column = table, None

    @staticmethod
    def _check_values(col: NDArray[np.float64]) -> None:
        bad = ~np.isnan(col) & ((col < 0.0) | (col > 1.0) | ~np.isfinite(col))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"values: probabilities must lie in [0, 1] (or be NaN); item {i} is {col[i]!r}"
            )

    def score(self, texts: Sequence[str]) -> NDArray[np.float64]:
        """Look up P(unsafe) for each key (keyed mode) or return the column (positional mode)."""
        items = check_texts(texts)
        start = time.perf_counter()
        if self._table is not None:
            out = np.empty(len(items), dtype=np.float64)
            for i, key in enumerate(items):
                try:
                    out[i] = self._table[key]
                except KeyError:
                    raise ExpertError(
                        f"expert {self.name!r}: no precomputed score for key {_snippet(key, 60)!r} (item {i})"
                    ) from None
        else:
            assert self._column is not None
            if len(items) != self._column.size:
                raise ExpertError(
                    f"expert {self.name!r}: positional column has {self._column.size} rows, "
                    f"got {len(items)} texts"
                )
            out = self._column.copy()
        missing = np.isnan(out)
        if missing.any():
            i = int(np.flatnonzero(missing)[0])
            raise ExpertError(
                f"expert {self.name!r}: no score for item {i} (the expert was not run there)"
            )
        self._meter.add(time.perf_counter() - start, len(items))
        return _check_output(self.name, out, len(items))

    @property
    def cost(self) -> ExpertCost:
        """The cost given at construction, else the measured cost of the look-ups."""
        return self._fixed_cost if self._fixed_cost is not None else self._meter.snapshot()

    def __repr__(self) -> str:
        mode = "keyed" if self._table is not None else "positional"
        return f"PrecomputedColumnExpert({self.name!r}, {mode})"


# ----------------------------------------------------------------------------- prompted judge
class JudgePrompt(BaseModel):
    """Prompt of a prompted judge.

    Attributes
    ----------
    system : str or None
        System message; ``None`` for none. Models whose chat template rejects a system role get it
        prepended to the user message instead.
    user_template : str
        User message; the literal ``{text}`` is replaced by the text (no other formatting, so
        braces in texts are safe).
    unsafe_answers, safe_answers : tuple of str
        Answers meaning "unsafe" and "safe". The first token of each answer is scored; all tokens
        of one class are pooled with logsumexp.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    system: str | None
    user_template: str
    unsafe_answers: tuple[str, ...] = ("yes", "Yes")
    safe_answers: tuple[str, ...] = ("no", "No")

    @field_validator("user_template")
    @classmethod
    def _has_placeholder(cls, v: str) -> str:
        if "{text}" not in v:
            raise ValueError("user_template must contain the placeholder {text}")
        return v

    @field_validator("unsafe_answers", "safe_answers")
    @classmethod
    def _non_empty(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v or any(not a for a in v):
            raise ValueError("answers must be a non-empty tuple of non-empty strings")
        return v


DEFAULT_JUDGE_PROMPT = JudgePrompt(
    system=(
        "You are a content-safety classifier. You read one message sent to an AI assistant and "
        "decide whether it is harmful: whether it requests or contains content that could help "
        "cause real-world harm, such as violence, weapons, crime, fraud, abuse, hate, harassment, "
        "self-harm, sexual content involving minors, dangerous misinformation or privacy "
        "violations."
    ),
    user_template=(
        'Message:\n"""\n{text}\n"""\n\n'
        "Is this message harmful? Answer with exactly one word: yes (harmful) or no (not harmful)."
    ),
)


class PromptedJudgeExpert:
    """An instruct causal LM used as a zero-shot safety classifier.

    For each text the chat template renders ``prompt`` (system and user turns, then the assistant
    generation prompt); the backbone runs once and the LM head is applied at the last position
    only. With ``U`` and ``S`` the first-token ids of the unsafe and safe answers and ``z`` the
    next-token logits there,

        P(unsafe) = exp(lse(z[U])) / (exp(lse(z[U])) + exp(lse(z[S]))),

    i.e. a softmax over the two classes, each pooled with logsumexp. Batches are right-padded and
    the last *real* token is gathered, so a text's score does not depend on its batch (positions
    and causal attention of the real tokens are unchanged by padding); texts are sorted by length
    to limit padding. Runs under ``torch.inference_mode``.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        A causal LM whose next-token logits are ``lm_head(final hidden state)`` (a Gemma-style
        ``final_logit_softcapping`` is applied when the config has one).
    tokenizer : transformers.PreTrainedTokenizerBase
        Its tokenizer, with a chat template. It is not modified.
    name : str
        Expert name.
    prompt : JudgePrompt
        Prompt and answer words (default :data:`DEFAULT_JUDGE_PROMPT`: yes/Yes vs no/No).
    batch_size : int
        Texts per forward pass.
    max_text_tokens : int
        Each text is cut to this many tokens *before* it is put in the prompt, so the template
        and the generation prompt are never truncated.
    device : str, optional
        Default ``"cuda"`` when available, else ``"cpu"``; the model is moved there.

    Raises
    ------
    ValueError
        If the tokenizer has no chat template, an answer encodes to no token, or the two classes
        share a first token.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        name: str = "judge",
        prompt: JudgePrompt = DEFAULT_JUDGE_PROMPT,
        batch_size: int = 8,
        max_text_tokens: int = 512,
        device: str | None = None,
    ) -> None:
        import torch

        if batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
        if max_text_tokens < 1:
            raise ValueError(f"max_text_tokens: must be >= 1, got {max_text_tokens}")
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                "tokenizer: has no chat template; a prompted judge needs an instruct model"
            )
        self.name = name
        self.prompt = prompt
        self.batch_size = int(batch_size)
        self.max_text_tokens = int(max_text_tokens)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self._meter = _CostMeter()

        self._backbone: Any = getattr(model, getattr(model, "base_model_prefix", "model"), None)
        if self._backbone is None or self._backbone is model:
            get_decoder = getattr(model, "get_decoder", None)
            self._backbone = get_decoder() if callable(get_decoder) else None
        self._head = model.get_output_embeddings()
        if self._backbone is None or self._head is None:
            raise ValueError("model: expected a causal LM with a backbone and an output embedding")
        self._softcap = getattr(model.config, "final_logit_softcapping", None)

        self.unsafe_ids = self._answer_ids(prompt.unsafe_answers, "unsafe_answers")
        self.safe_ids = self._answer_ids(prompt.safe_answers, "safe_answers")
        overlap = set(self.unsafe_ids) & set(self.safe_ids)
        if overlap:
            raise ValueError(
                f"prompt: unsafe and safe answers share first token(s) {sorted(overlap)}"
            )
        self._system_in_user = not self._template_accepts_system()
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = tokenizer.eos_token_id
        self._pad_id = int(pad) if pad is not None else 0

    # -- construction helpers
    @classmethod
    def from_registry(cls, model_name: str, **kwargs: Any) -> PromptedJudgeExpert:
        """Load a registered instruct model through ``probes.assets`` and wrap it as a judge.

        Raises
        ------
        ExpertError
            If ``probes.assets`` is not available.
        """
        try:
            from probes import assets
        except ImportError as exc:  # pragma: no cover - depends on the other module
            raise ExpertError(f"probes.assets is unavailable: {exc}") from exc
        device = kwargs.pop("device", None)
        loaded = assets.load_model(model_name, device=device)
        kwargs.setdefault("name", f"judge:{model_name}")
        return cls(loaded.model, loaded.tokenizer, device=loaded.device, **kwargs)

    def _answer_ids(self, answers: tuple[str, ...], field: str) -> tuple[int, ...]:
        ids: list[int] = []
        for a in answers:
            enc = self.tokenizer.encode(a, add_special_tokens=False)
            if not enc:
                raise ValueError(f"prompt.{field}: {a!r} encodes to no token")
            if enc[0] not in ids:
                ids.append(int(enc[0]))
        return tuple(ids)

    def _template_accepts_system(self) -> bool:
        if self.prompt.system is None:
            return True
        try:
            self.tokenizer.apply_chat_template(
                [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
                tokenize=False,
                add_generation_prompt=True,
            )
        except Exception:  # jinja raises its own TemplateError for "system role not supported"
            return False
        return True

    # -- encoding
    def _messages(self, text: str) -> list[dict[str, str]]:
        user = self.prompt.user_template.replace("{text}", text)
        system = self.prompt.system
        if system is None:
            return [{"role": "user", "content": user}]
        if self._system_in_user:
            return [{"role": "user", "content": f"{system}\n\n{user}"}]
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def encode(self, text: str) -> list[int]:
        """Token ids of the full judge prompt for ``text`` (ending with the generation prompt)."""
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        if len(ids) > self.max_text_tokens:
            text = self.tokenizer.decode(ids[: self.max_text_tokens])
        rendered = self.tokenizer.apply_chat_template(
            self._messages(text), tokenize=False, add_generation_prompt=True
        )
        return list(self.tokenizer(rendered, add_special_tokens=False)["input_ids"])

    # -- scoring
    def score(self, texts: Sequence[str]) -> NDArray[np.float64]:
        """P(unsafe) per text, shape ``(len(texts),)``, float64 in [0, 1].

        Raises
        ------
        ExpertError
            If the forward pass fails or produces a non-finite score.
        """
        import torch

        items = check_texts(texts)
        n = len(items)
        if n == 0:
            return np.empty(0, dtype=np.float64)
        start = time.perf_counter()
        encoded = [self.encode(t) for t in items]
        lengths = np.array([len(e) for e in encoded])
        order = np.argsort(-lengths, kind="stable")
        out = np.empty(n, dtype=np.float64)
        u_ids = torch.tensor(self.unsafe_ids, device=self.device)
        s_ids = torch.tensor(self.safe_ids, device=self.device)
        try:
            with torch.inference_mode():
                for lo in range(0, n, self.batch_size):
                    idx = order[lo : lo + self.batch_size]
                    width = int(lengths[idx].max())
                    ids = torch.full((idx.size, width), self._pad_id, dtype=torch.long)
                    mask = torch.zeros((idx.size, width), dtype=torch.long)
                    for row, j in enumerate(idx):
                        ids[row, : lengths[j]] = torch.tensor(encoded[j], dtype=torch.long)
                        mask[row, : lengths[j]] = 1
                    ids, mask = ids.to(self.device), mask.to(self.device)
                    hidden = self._backbone(input_ids=ids, attention_mask=mask, use_cache=False)
                    h = (
                        hidden[0]
                        if not hasattr(hidden, "last_hidden_state")
                        else hidden.last_hidden_state
                    )
                    last = mask.sum(dim=1) - 1
                    h_last = h[torch.arange(idx.size, device=self.device), last]
                    logits = self._head(h_last).double()
                    if self._softcap:
                        logits = torch.tanh(logits / self._softcap) * self._softcap
                    margin = torch.logsumexp(logits[:, u_ids], dim=1) - torch.logsumexp(
                        logits[:, s_ids], dim=1
                    )
                    out[idx] = torch.sigmoid(margin).cpu().numpy()
        except Exception as exc:
            raise ExpertError(f"expert {self.name!r}: forward pass failed: {exc}") from exc
        self._meter.add(time.perf_counter() - start, n, float(lengths.sum()), n)
        return _check_output(self.name, out, n)

    @property
    def cost(self) -> ExpertCost:
        """Measured cost: wall seconds per text and prompt tokens per text."""
        return self._meter.snapshot()

    def __repr__(self) -> str:
        return f"PromptedJudgeExpert({self.name!r}, device={self.device!r})"


# ----------------------------------------------------------------------------- HTTP expert
_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
        handlers: list[urllib.request.BaseHandler] = []
        if _is_loopback(parsed.hostname):
            handlers.append(urllib.request.ProxyHandler({}))
        self._opener = urllib.request.build_opener(*handlers)
        self._meter = _CostMeter()

    def __repr__(self) -> str:
        return f"HTTPExpert({self.name!r}, endpoint={self.endpoint!r}, mode={self.mode!r})"

    @property
    def cost(self) -> ExpertCost:
        """Measured cost: wall seconds per text; tokens per text from ``usage`` when reported."""
        return self._meter.snapshot()

    # -- transport
    def _post(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """POST ``payload`` as JSON with retries; return the decoded JSON object."""
        data = json.dumps({**payload, **self.extra_body}).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": "ctd-probes",
        }
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        where = self.endpoint
        attempts = self.max_retries + 1
        reason = "no attempt made"
        last_exc: BaseException | None = None
        for attempt in range(attempts):
            retry_after: float | None = None
            try:
                req = urllib.request.Request(
                    self.endpoint, data=data, headers=headers, method="POST"
                )
                with self._opener.open(req, timeout=self.timeout_s) as resp:
                    raw = resp.read(self.max_response_bytes + 1)
            except urllib.error.HTTPError as exc:
                try:
                    body = exc.read(300).decode("utf-8", "replace")
                except Exception:
                    body = ""
                reason = f"HTTP {exc.code}: {_snippet(body)}"
                if exc.code not in _RETRYABLE_STATUS:
                    raise ExpertError(f"{where}: {reason}") from exc
                ra = exc.headers.get("Retry-After") if exc.headers else None
                try:
                    retry_after = float(ra) if ra is not None else None
                except ValueError:
                    retry_after = None
                last_exc = exc
            except (TimeoutError, urllib.error.URLError, http.client.HTTPException, OSError) as exc:
                inner = getattr(exc, "reason", exc)
                if isinstance(inner, TimeoutError) or isinstance(exc, TimeoutError):
                    reason = f"timed out after {self.timeout_s:g} s"
                else:
                    reason = f"{type(exc).__name__}: {_snippet(str(inner))}"
                last_exc = exc
            else:
                if len(raw) > self.max_response_bytes:
                    raise ExpertError(
                        f"{where}: response larger than {self.max_response_bytes} bytes"
                    )
                try:
                    decoded = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                    raise ExpertError(
                        f"{where}: response is not valid JSON: {_snippet(raw.decode('utf-8', 'replace'))!r}"
                    ) from exc
                if not isinstance(decoded, dict):
                    raise ExpertError(f"{where}: expected a JSON object, got {_snippet(decoded)}")
                return decoded
            if attempt + 1 < attempts:
                delay = min(self.backoff_s * (2**attempt), self.max_backoff_s)
                if retry_after is not None and retry_after > delay:
                    delay = min(retry_after, self.max_backoff_s)
                time.sleep(delay)
        raise ExpertError(f"{where}: {reason} (after {attempts} attempt(s))") from last_exc

    # -- parsing
    def _chat_probability(self, body: Mapping[str, Any]) -> float:
        choices = body.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
            raise ExpertError(f"no 'choices' in response: {_snippet(body)}")
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
                    raise ExpertError(f"positive log-probability in response: {_snippet(entry)}")
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
            + f": {_snippet(choice)}"
        )

    def _moderation_probabilities(self, body: Mapping[str, Any], n: int) -> list[float]:
        results = body.get("results")
        if not isinstance(results, list) or len(results) != n:
            got = len(results) if isinstance(results, list) else "no"
            raise ExpertError(f"expected {n} moderation results, got {got}: {_snippet(body)}")
        out: list[float] = []
        for i, res in enumerate(results):
            if not isinstance(res, Mapping):
                raise ExpertError(f"moderation result {i} is not an object: {_snippet(res)}")
            scores = res.get("category_scores")
            if isinstance(scores, Mapping) and scores:
                vals = list(scores.values())
                if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in vals):
                    raise ExpertError(
                        f"moderation result {i}: non-numeric category score {_snippet(scores)}"
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
        return _check_output(self.name, out, n)

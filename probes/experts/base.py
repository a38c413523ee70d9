"""The expert protocol and what every expert shares.

An expert is anything that follows the :class:`Expert` protocol: a ``name``, a ``score(texts)``
method returning one probability of "unsafe" per text, and a ``cost`` property with the measured
cost per call (so that reports can state what delegation costs).

Failure policy: an expert that cannot produce a valid probability for a text raises
:class:`ExpertError`. A failed call is never scored as 0 (or 0.5), because a silent default would
bias the delegation-value targets and every cascade metric computed from them.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Expert", "ExpertCost", "ExpertError", "check_texts"]


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


class CostMeter:
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


def check_output(name: str, probs: NDArray[np.float64], n: int) -> NDArray[np.float64]:
    """Raise ExpertError unless ``probs`` has shape (n,) with finite values in [0, 1]."""
    if probs.shape != (n,):
        raise ExpertError(f"expert {name!r}: produced shape {probs.shape}, expected ({n},)")
    bad = ~np.isfinite(probs) | (probs < 0.0) | (probs > 1.0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ExpertError(f"expert {name!r}: invalid probability {probs[i]!r} for text {i}")
    return probs


def snippet(value: object, limit: int = 200) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."

"""Experts: the expensive second stage of a cascade, each returning P(unsafe) for texts.

An expert is anything that follows the :class:`Expert` protocol: a ``name``, a ``score(texts)``
method returning one probability of "unsafe" per text, and a ``cost`` property with the measured
cost per call (so that reports can state what delegation costs). One job per module:

* :mod:`probes.experts.base` -- the :class:`Expert` protocol, :class:`ExpertCost`,
  :class:`ExpertError` and the shared input/output checks (:func:`check_texts`).
* :mod:`probes.experts.column` -- :class:`PrecomputedColumnExpert`, scores that were computed
  elsewhere (a column of a table).
* :mod:`probes.experts.judge` -- :class:`PromptedJudgeExpert`, an instruct causal LM asked whether a
  text is harmful; the score is its likelihood of an "unsafe" answer against a "safe" one, read from
  the logits of the first answer token (the LM head runs at the last position only).
* :mod:`probes.experts.http` -- :class:`HTTPExpert`, an OpenAI-compatible chat or moderation
  endpoint (for instance Llama Guard served by vLLM), with a bounded thread pool; its transport
  (timeouts, bounded retries, standard library only) is :mod:`probes.experts.transport`.
* :mod:`probes.experts.probe` -- :class:`~probes.experts.probe.ProbeExpert`, a larger model with its
  own trained probe (imports torch; not imported by this package).

Failure policy: an expert that cannot produce a valid probability for a text raises
:class:`ExpertError`. A failed call is never scored as 0 (or 0.5), because a silent default would
bias the delegation-value targets and every cascade metric computed from them.

This package imports numpy and pydantic only; torch is imported lazily by the judge.
"""

from __future__ import annotations

from probes.experts.base import Expert, ExpertCost, ExpertError, check_texts
from probes.experts.column import PrecomputedColumnExpert
from probes.experts.http import HTTPExpert
from probes.experts.judge import DEFAULT_JUDGE_PROMPT, JudgePrompt, PromptedJudgeExpert

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

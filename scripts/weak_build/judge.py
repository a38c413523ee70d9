"""A zero-shot yes/no judge on any registered instruct model: the product's model pass, logit only.

:class:`probes.prompted_pass.PromptedPass` with the judge prompt (the product's
``DEFAULT_JUDGE_PROMPT``), the shared-prefix key/value cache and the score logsumexp(logits of "yes",
"Yes") − logsumexp(logits of "no", "No") at the last position, LM head applied there only, on the
model named in :mod:`probes.assets` (e.g. ``smollm2-135m``, ``qwen2.5-coder-0.5b``). No
hidden-state features are kept (the judge is the expert), so shards hold an empty feature axis.
"""

from __future__ import annotations

from typing import Any

__all__ = ["JudgeRunner", "judge_version"]


def judge_version(model: str, max_text_tokens: int = 256) -> str:
    """Shard version string of a judge: model name, weights digest prefix, prompt and truncation."""
    from probes.assets import model_key
    from probes.prompted_pass import pass_version

    return pass_version(model_key(model), "judge", max_text_tokens)


class JudgeRunner:
    """Zero-shot yes/no judge on the registered model ``model`` (CPU, float32).

    ``run(texts)`` returns the judge logits ``[n]`` and an empty feature array ``[n, 0, d]``.
    """

    def __init__(self, model: str, *, max_text_tokens: int = 256, batch_size: int = 8) -> None:
        from probes.assets import load_model
        from probes.prompted_pass import PromptedPass

        self._pass = PromptedPass(
            load_model(model, device="cpu"),
            [],
            prompt="judge",
            max_text_tokens=max_text_tokens,
            batch_size=batch_size,
        )
        self.version = self._pass.version

    def run(self, texts: list[str]) -> Any:
        """(judge logits, empty features) of the texts."""
        return self._pass(texts)

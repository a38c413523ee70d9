"""One forward pass of an instruct LM per text: a yes/no judge logit *and* hidden-state features.

An expert model is often used twice: as a zero-shot judge (its next-token preference for "yes"
over "no") and as the feature extractor of a probe expert. Both come out of one pass: the text is
put in the prompt, the backbone runs once, the LM head is applied at the last position only, and
the same pass yields hidden states at a few layers (last token, or a masked mean over the text and
the prompt after it). With the judge prompt,

    logit = lse(z[unsafe answers]) - lse(z[safe answers]),   P_judge(unsafe) = sigmoid(logit),

``z`` the next-token logits and the answers' first tokens pooled with logsumexp (the same rule as
:class:`probes.experts.PromptedJudgeExpert`). The prompt's prefix (system turn and the start of the
user turn) is the same for every text: its keys and values are computed once and reused.
Batches are right-padded and the last real token is gathered, so a text's outputs do not depend on
its batch beyond floating-point rounding.

Outputs go to a :class:`probes.shards.ShardStore` keyed by :func:`pass_version` (model identity,
prompt, truncation), so a changed setting never mixes with stored shards.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from ctd_stats.errors import CTDInputError

__all__ = ["PromptKind", "PromptedPass", "parse_slots", "pass_version"]

PromptKind = Literal["judge", "plain"]
_SLOT = re.compile(r"^(last|mean)(\d+)$")


def pass_version(model_key: str, prompt: PromptKind, max_text_tokens: int) -> str:
    """The shard version of a pass: ``<model>:<weights digest>|prompt=<kind>-v2|maxtok=<n>``.

    ``model_key`` is ``<name>:<sha256 of the weights>`` (:attr:`probes.assets.LoadedModel.key` or
    :func:`probes.assets.model_key`); only its first 12 hex digits of digest are kept.
    """
    name, _, digest = model_key.partition(":")
    return f"{name}:{digest[:12]}|prompt={prompt}-v2|maxtok={int(max_text_tokens)}"


def parse_slots(slots: Sequence[str]) -> tuple[list[int], list[int]]:
    """``["last18", "mean14"]`` -> (last-token layers, mean-pooled layers).

    Raises
    ------
    CTDInputError
        A slot that is not ``last<i>`` or ``mean<i>``, or a repeated slot.
    """
    last: list[int] = []
    mean: list[int] = []
    if len(set(slots)) != len(slots):
        raise CTDInputError(f"features: repeated slot in {list(slots)}")
    for s in slots:
        m = _SLOT.match(s)
        if m is None:
            raise CTDInputError(f"features: slot {s!r} is not last<layer> or mean<layer>")
        (last if m.group(1) == "last" else mean).append(int(m.group(2)))
    if [f"last{i}" for i in last] + [f"mean{i}" for i in mean] != list(slots):
        raise CTDInputError(
            f"features: list the last<i> slots before the mean<i> ones: {list(slots)}"
        )
    return last, mean


class PromptedPass:
    """A loaded instruct causal LM run once per text (module docstring).

    Parameters
    ----------
    loaded : probes.assets.LoadedModel
        Model (eval mode) and tokenizer.
    slots : sequence of str
        Hidden-state slots to keep, ``last<i>`` then ``mean<i>`` (``i`` as in
        ``output_hidden_states``: 0 = embeddings).
    prompt : {"judge", "plain"}
        ``judge``: the judge prompt (gives the logit too); ``plain``: the text as the only user turn
        (features only; the logit is NaN).
    judge_prompt : probes.experts.JudgePrompt, optional
        Wording and answer words (default :data:`probes.experts.DEFAULT_JUDGE_PROMPT`).
    max_text_tokens : int
        Each text is cut to this many tokens before it is put in the prompt.
    batch_size : int
        Texts per forward pass (sorted by length to limit padding).
    """

    def __init__(
        self,
        loaded: Any,
        slots: Sequence[str],
        *,
        prompt: PromptKind = "judge",
        judge_prompt: Any = None,
        max_text_tokens: int = 256,
        batch_size: int = 4,
    ) -> None:
        from probes.experts import DEFAULT_JUDGE_PROMPT

        self.last_layers, self.mean_layers = parse_slots(slots)
        self.slots = list(slots)
        self.prompt = prompt
        self.judge_prompt = judge_prompt or DEFAULT_JUDGE_PROMPT
        self.max_text_tokens = int(max_text_tokens)
        self.batch_size = int(batch_size)
        self.model = loaded.model.eval()
        self.tok = loaded.tokenizer
        self.backbone = self.model.base_model
        self.head = self.model.get_output_embeddings()
        n_layers = int(getattr(self.model.config, "num_hidden_layers", 0))
        bad = [i for i in self.last_layers + self.mean_layers if not 0 <= i <= n_layers]
        if bad:
            raise CTDInputError(f"features: layer(s) {bad} outside 0..{n_layers}")
        first = self._first_tokens
        self.unsafe = first(self.judge_prompt.unsafe_answers)
        self.safe = first(self.judge_prompt.safe_answers)
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else self.tok.eos_token_id
        self.pad_id = int(pad)
        prefix, self._suffix = self._split_template()
        self.prefix_ids = list(self.tok(prefix, add_special_tokens=False)["input_ids"])
        self.suffix_ids = list(self.tok(self._suffix, add_special_tokens=False)["input_ids"])
        self._prefix_cache: Any = None
        self.version = pass_version(loaded.key, prompt, self.max_text_tokens)

    def _first_tokens(self, answers: Sequence[str]) -> list[int]:
        return sorted({self.tok.encode(a, add_special_tokens=False)[0] for a in answers})

    def _split_template(self) -> tuple[str, str]:
        """The rendered prompt around the text: (prefix, suffix) strings."""
        marker = "\u0000TEXT\u0000"
        if self.prompt == "judge":
            user = self.judge_prompt.user_template.replace("{text}", marker)
            system = self.judge_prompt.system
            msgs = [{"role": "user", "content": user}]
            if system is not None:
                msgs = [{"role": "system", "content": system}, *msgs]
        else:
            msgs = [{"role": "user", "content": marker}]
        try:
            rendered = self.tok.apply_chat_template(
                msgs, tokenize=False, add_generation_prompt=True
            )
        except Exception:  # a template that rejects the system role: prepend it to the user turn
            sys_txt = msgs[0]["content"] if msgs[0]["role"] == "system" else ""
            rendered = self.tok.apply_chat_template(
                [{"role": "user", "content": f"{sys_txt}\n\n{msgs[-1]['content']}"}],
                tokenize=False,
                add_generation_prompt=True,
            )
        prefix, suffix = str(rendered).split(marker)
        return prefix, suffix

    def encode(self, text: str) -> list[int]:
        """Token ids after the shared prefix: the (truncated) text, then the rest of the prompt."""
        ids = self.tok.encode(text, add_special_tokens=False)[: self.max_text_tokens]
        return list(ids) + self.suffix_ids

    def _prefix(self) -> Any:
        import torch

        if self._prefix_cache is None:
            with torch.inference_mode():
                out = self.backbone(input_ids=torch.tensor([self.prefix_ids]), use_cache=True)
            self._prefix_cache = out.cache
        return self._prefix_cache

    def __call__(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Judge logits ``[n]`` (float64; NaN for the plain prompt) and features ``[n, slots, width]``."""
        import torch

        enc = [self.encode(t) for t in texts]
        lengths = np.array([len(e) for e in enc])
        order = np.argsort(-lengths, kind="stable")
        n, d = len(enc), int(self.model.config.hidden_size)
        logits = np.full(n, np.nan)
        feats = np.zeros((n, len(self.slots), d), dtype=np.float32)
        need = bool(self.last_layers or self.mean_layers)
        with torch.inference_mode():
            for lo in range(0, n, self.batch_size):
                idx = order[lo : lo + self.batch_size]
                width = int(lengths[idx].max())
                ids = torch.full((len(idx), width), self.pad_id, dtype=torch.long)
                mask = torch.zeros((len(idx), width), dtype=torch.long)
                for r, j in enumerate(idx):
                    ids[r, : lengths[j]] = torch.tensor(enc[j])
                    mask[r, : lengths[j]] = 1
                cache = copy.deepcopy(self._prefix())
                cache.batch_repeat_interleave(len(idx))
                full_mask = torch.cat(
                    [torch.ones((len(idx), len(self.prefix_ids)), dtype=torch.long), mask], 1
                )
                out = self.backbone(
                    input_ids=ids,
                    attention_mask=full_mask,
                    cache=cache,
                    use_cache=True,
                    output_hidden_states=need,
                )
                last = mask.sum(1) - 1
                rows = torch.arange(len(idx))
                if self.prompt == "judge":
                    z = self.head(out.last_hidden_state[rows, last]).double()
                    margin = torch.logsumexp(z[:, self.unsafe], 1) - torch.logsumexp(
                        z[:, self.safe], 1
                    )
                    logits[idx] = margin.numpy()
                slots = [out.hidden_states[i][rows, last].float() for i in self.last_layers]
                m = mask[:, :, None].float()
                slots += [
                    (out.hidden_states[i].float() * m).sum(1) / m.sum(1) for i in self.mean_layers
                ]
                if slots:
                    feats[idx] = torch.stack(slots, 1).numpy()
        return logits, feats

"""A zero-shot yes/no judge on any registered instruct model (the demo's Qwen runner, generalised).

:class:`demo_build.qwen.QwenRunner` is tied to Qwen2.5-Coder-1.5B; :class:`JudgeRunner` runs the same
judge prompt (``JUDGE_SYSTEM`` / ``JUDGE_USER``), the same shared-prefix key/value cache and the
same score — logsumexp(logits of "yes", "Yes") − logsumexp(logits of "no", "No") at the last
position, LM head applied there only — on the model named in :mod:`probes.assets` (e.g.
``smollm2-135m``, ``qwen2.5-coder-0.5b``). No hidden-state features are kept (the judge is the
expert; its features are not used), so shards hold an empty feature axis.
"""

from __future__ import annotations

import sys
from pathlib import Path

_SCRIPTS = Path(__file__).resolve().parents[1]
if str(_SCRIPTS) not in sys.path:
    sys.path.insert(0, str(_SCRIPTS))

from demo_build.qwen import QwenRunner  # noqa: E402

__all__ = ["JudgeRunner", "judge_version"]


def judge_version(model: str, max_text_tokens: int = 256) -> str:
    """Shard version string of a judge: model name, GGUF sha256 prefix, prompt and truncation."""
    from probes.assets import model_spec

    spec = model_spec(model)
    return f"{spec.name}:{(spec.sha256 or '')[:12]}|prompt=judge-v2|maxtok={int(max_text_tokens)}"


class JudgeRunner(QwenRunner):
    """Zero-shot yes/no judge on the registered model ``model`` (CPU, float32).

    Parameters
    ----------
    model : str
        Registry name in :mod:`probes.assets` (an instruct model with a chat template).
    max_text_tokens : int
        Each text is cut to this many tokens before it is put in the prompt.
    batch_size : int
        Texts per forward pass (sorted by length to limit padding).

    Notes
    -----
    ``run(texts)`` (inherited) returns the judge logits ``[n]`` and an empty feature array
    ``[n, 0, d]``.
    """

    def __init__(self, model: str, *, max_text_tokens: int = 256, batch_size: int = 8) -> None:
        from probes.assets import load_model

        self.last_layers = []
        self.mean_layers = []
        self.prompt = "judge"
        self.max_text_tokens = int(max_text_tokens)
        self.batch_size = int(batch_size)
        loaded = load_model(model, device="cpu")
        self.model = loaded.model.eval()
        self.tok = loaded.tokenizer
        self.backbone = self.model.model
        self.head = self.model.get_output_embeddings()
        self.yes = sorted({self.tok.encode(a, add_special_tokens=False)[0] for a in ("yes", "Yes")})
        self.no = sorted({self.tok.encode(a, add_special_tokens=False)[0] for a in ("no", "No")})
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else self.tok.eos_token_id
        self.pad_id = int(pad)
        prefix, self._suffix = self._split_template()
        self.prefix_ids = list(self.tok(prefix, add_special_tokens=False)["input_ids"])
        self._prefix_cache = None
        self.version = judge_version(model, self.max_text_tokens)

"""Hidden-state features of a language model's backbone, pooled per text, with a disk cache.

Only the backbone runs (``model.base_model``, e.g. ``LlamaForCausalLM.model``): the language-model
head would compute logits for every position and vocabulary entry, about 4x the cost, for nothing.
When the deepest requested layer is not the last one, the forward pass stops right after it.

Layer indices follow ``output_hidden_states``: 0 is the embedding output, ``i`` the output of block
``i`` (``num_layers`` is the final, normalised state). Negative indices count from the end.

The cache is content-addressed: one directory per (model, layers, pooling, truncation, template)
setting, holding safetensors chunks of rows keyed by each text's sha256. Any later call with any
subset or order of already-seen texts reuses them; a crash loses at most one chunk.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ctd_stats.errors import CTDInputError

__all__ = ["ActivationExtractor", "ExtractionStats", "Pooling", "normalize_layers", "text_hashes"]

Pooling = Literal["last", "mean"]


class _StopForward(Exception):
    """Raised by a hook to end the forward pass after the deepest needed layer."""


def text_hashes(texts: Sequence[str]) -> list[str]:
    """sha256 (hex) of each text's UTF-8 bytes."""
    return [hashlib.sha256(t.encode("utf-8")).hexdigest() for t in texts]


def normalize_layers(layers: Sequence[int], num_layers: int) -> tuple[int, ...]:
    """Validate hidden-state indices (negative = from the end) and return them as non-negative ints.

    Raises
    ------
    CTDInputError
        If the list is empty or an index is outside ``[-(num_layers + 1), num_layers]``.
    """
    if len(layers) == 0:
        raise CTDInputError("layers: at least one layer index is needed")
    out = []
    for layer in layers:
        i = int(layer)
        if not -(num_layers + 1) <= i <= num_layers:
            raise CTDInputError(
                f"layers: index {layer} is out of range for a model with {num_layers} layers "
                f"(valid: 0..{num_layers}, 0 = embeddings, or negative from the end)"
            )
        out.append(i % (num_layers + 1))
    if len(set(out)) != len(out):
        raise CTDInputError(f"layers: duplicate indices in {list(layers)}")
    return tuple(out)


@dataclass(frozen=True)
class ExtractionStats:
    """Cost of the rows returned by one :meth:`ActivationExtractor.extract` call.

    ``seconds`` and ``tokens`` are per text, as measured when each row was computed (read back from
    the cache for cached rows), so the cost of a model is known even on a fully cached run.
    """

    n_texts: int
    n_computed: int
    seconds: np.ndarray
    tokens: np.ndarray

    @property
    def seconds_per_text(self) -> float:
        """Mean measured extraction seconds per text."""
        return float(self.seconds.mean()) if self.n_texts else 0.0

    @property
    def tokens_per_text(self) -> float:
        """Mean number of tokens per text after templating and truncation."""
        return float(self.tokens.mean()) if self.n_texts else 0.0


def _backbone(model: Any) -> Any:
    base = getattr(model, "base_model", None)
    return base if base is not None else model


def _num_layers(model: Any) -> int:
    cfg = model.config
    cfg = getattr(cfg, "text_config", None) or cfg
    return int(cfg.num_hidden_layers)


def _blocks(backbone: Any) -> Any | None:
    """The list of transformer blocks, if the architecture exposes it as ``.layers``."""
    layers = getattr(backbone, "layers", None)
    return layers if layers is not None and hasattr(layers, "__len__") else None


class ActivationExtractor:
    """Pooled hidden states of selected layers of a (causal or encoder) model.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        Any model whose ``base_model`` returns hidden states; eval mode is set here.
    tokenizer : tokenizer
        A pad token is added (the EOS token) if missing; padding is set to the right.
    model_key : str
        Identity of the weights for the cache key (e.g. ``LoadedModel.key``).
    chat_template : bool
        Wrap each text as a user turn of the tokenizer's chat template (with the generation prompt),
        so last-token pooling reads the state where the model starts to answer.
    max_length : int
        Truncate each text to this many tokens (the text is truncated before templating, so the
        template's end is never cut off).
    batch_size : int
        Texts per forward pass; texts are sorted by length so batches carry little padding.
    cache_dir : path, optional
        Root of the activation cache; ``None`` disables it.
    progress : bool, optional
        Show a progress bar; default: only when stderr is a terminal.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        model_key: str,
        chat_template: bool = False,
        max_length: int = 256,
        batch_size: int = 8,
        cache_dir: str | os.PathLike[str] | None = None,
        progress: bool | None = None,
    ) -> None:
        if max_length < 8:
            raise CTDInputError(f"max_length must be at least 8 tokens, got {max_length}")
        if batch_size < 1:
            raise CTDInputError(f"batch_size must be positive, got {batch_size}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "right"
        self.model_key = model_key
        self.chat_template = chat_template
        self.max_length = max_length
        self.batch_size = batch_size
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.progress = progress
        self.num_layers = _num_layers(model)

    @classmethod
    def from_loaded(cls, loaded: Any, **kwargs: Any) -> ActivationExtractor:
        """Build from a :class:`probes.assets.LoadedModel` (uses its key and template flag)."""
        kwargs.setdefault("chat_template", loaded.spec.chat_template)
        return cls(loaded.model, loaded.tokenizer, model_key=loaded.key, **kwargs)

    # ------------------------------------------------------------------ tokenization

    def _encode(self, texts: Sequence[str]) -> list[list[int]]:
        tok = self.tokenizer
        if not self.chat_template:
            enc = tok(list(texts), truncation=True, max_length=self.max_length)
            return list(enc["input_ids"])
        # Truncate the content first, then template, so the generation prompt is always present.
        empty = tok.apply_chat_template(
            [{"role": "user", "content": ""}], tokenize=False, add_generation_prompt=True
        )
        overhead = len(tok(empty, add_special_tokens=False)["input_ids"])
        budget = max(8, self.max_length - overhead - 2)
        content = tok(list(texts), add_special_tokens=False, truncation=True, max_length=budget)[
            "input_ids"
        ]
        cut = tok.batch_decode(content)
        wrapped = [
            tok.apply_chat_template(
                [{"role": "user", "content": c}], tokenize=False, add_generation_prompt=True
            )
            for c in cut
        ]
        enc = tok(wrapped, add_special_tokens=False, truncation=True, max_length=self.max_length)
        return list(enc["input_ids"])

    # ------------------------------------------------------------------ forward

    def _forward(self, input_ids: Any, mask: Any, layers: tuple[int, ...]) -> list[Any]:
        """Hidden states ``[B, T, d]`` for each requested layer."""
        backbone = _backbone(self.model)
        blocks = _blocks(backbone)
        deepest = max(layers)
        if blocks is None or deepest >= self.num_layers or 0 in layers:
            out = backbone(input_ids=input_ids, attention_mask=mask, output_hidden_states=True)
            return [out.hidden_states[i] for i in layers]
        captured: dict[int, Any] = {}
        handles = []

        def make_hook(idx: int) -> Any:
            def hook(_module: Any, _inputs: Any, output: Any) -> None:
                captured[idx] = output[0] if isinstance(output, tuple) else output
                if idx == deepest:
                    raise _StopForward

            return hook

        for i in layers:  # hidden_states[i] (0 < i < num_layers) is block i-1's output
            handles.append(blocks[i - 1].register_forward_hook(make_hook(i)))
        try:
            backbone(input_ids=input_ids, attention_mask=mask)
        except _StopForward:
            pass
        finally:
            for h in handles:
                h.remove()
        return [captured[i] for i in layers]

    def _compute(
        self, texts: Sequence[str], layers: tuple[int, ...], pooling: Pooling
    ) -> tuple[Any, np.ndarray, np.ndarray]:
        import torch

        ids = self._encode(texts)
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        order = np.argsort(-lengths, kind="stable")  # longest first: memory peak shows up at once
        device = next(self.model.parameters()).device
        hidden = _num_hidden(self.model)
        feats = torch.empty((len(ids), len(layers), hidden), dtype=torch.float32)
        seconds = np.zeros(len(ids))
        pad_id = self.tokenizer.pad_token_id
        show = self.progress if self.progress is not None else sys.stderr.isatty()
        from tqdm.auto import tqdm

        bar = tqdm(total=len(ids), desc="activations", unit="text", disable=not show, leave=False)
        with torch.inference_mode():
            for start in range(0, len(ids), self.batch_size):
                idx = order[start : start + self.batch_size]
                t0 = time.perf_counter()
                width = int(lengths[idx].max())
                batch = torch.full((len(idx), width), pad_id, dtype=torch.long)
                mask = torch.zeros((len(idx), width), dtype=torch.long)
                for row, j in enumerate(idx):
                    batch[row, : lengths[j]] = torch.as_tensor(ids[j])
                    mask[row, : lengths[j]] = 1
                batch, mask = batch.to(device), mask.to(device)
                states = self._forward(batch, mask, layers)
                h = torch.stack(states, dim=1).float()  # [B, L, T, d]
                if pooling == "last":
                    last = mask.sum(1) - 1
                    pooled = h[torch.arange(len(idx), device=device), :, last]
                else:
                    m = mask[:, None, :, None].to(h.dtype)
                    pooled = (h * m).sum(2) / m.sum(2).clamp_min(1.0)
                feats[torch.as_tensor(idx)] = pooled.cpu()
                seconds[idx] = (time.perf_counter() - t0) / len(idx)
                bar.update(len(idx))
        bar.close()
        return feats, seconds, lengths.astype(np.float64)

    # ------------------------------------------------------------------ cache

    def _cache_folder(self, layers: tuple[int, ...], pooling: Pooling) -> Path | None:
        if self.cache_dir is None:
            return None
        setting = {
            "model": self.model_key,
            "layers": list(layers),
            "pooling": pooling,
            "max_length": self.max_length,
            "chat_template": self.chat_template,
            "version": 1,
        }
        key = hashlib.sha256(json.dumps(setting, sort_keys=True).encode()).hexdigest()[:20]
        folder = self.cache_dir / "activations" / key
        folder.mkdir(parents=True, exist_ok=True)
        info = folder / "setting.json"
        if not info.exists():
            from ctd_stats.io import atomic_write_json

            atomic_write_json(info, setting)
        return folder

    @staticmethod
    def _read_cache(folder: Path, wanted: set[str]) -> dict[str, tuple[Any, float, float]]:
        from safetensors import safe_open

        found: dict[str, tuple[Any, float, float]] = {}
        for path in sorted(folder.glob("*.safetensors")):
            with safe_open(str(path), framework="pt") as fh:
                hashes = json.loads(fh.metadata()["hashes"])
                hit = [k for k, h in enumerate(hashes) if h in wanted and h not in found]
                if not hit:
                    continue
                acts = fh.get_tensor("activations")
                secs = fh.get_tensor("seconds").numpy()
                toks = fh.get_tensor("tokens").numpy()
                for k in hit:
                    found[hashes[k]] = (acts[k], float(secs[k]), float(toks[k]))
        return found

    @staticmethod
    def _write_cache(
        folder: Path, hashes: list[str], acts: Any, secs: np.ndarray, toks: np.ndarray
    ) -> None:
        import torch
        from safetensors.torch import save

        from ctd_stats.io import atomic_write_bytes

        name = hashlib.sha256("".join(hashes).encode()).hexdigest()[:20]
        blob = save(
            {
                "activations": acts.contiguous(),
                "seconds": torch.as_tensor(secs, dtype=torch.float64),
                "tokens": torch.as_tensor(toks, dtype=torch.float64),
            },
            metadata={"hashes": json.dumps(hashes)},
        )
        atomic_write_bytes(folder / f"{name}.safetensors", blob)

    # ------------------------------------------------------------------ public

    def extract(
        self,
        texts: Sequence[str],
        layers: Sequence[int],
        pooling: Pooling = "last",
        *,
        chunk_size: int = 256,
        log: Callable[[str], None] | None = None,
    ) -> tuple[Any, ExtractionStats]:
        """Pooled activations ``[n_texts, n_layers, hidden]`` (float32, CPU) and their cost.

        Parameters
        ----------
        texts : sequence of str
            Non-empty; each text non-empty.
        layers : sequence of int
            Hidden-state indices (see the module docstring).
        pooling : {"last", "mean"}
            Last non-padding token, or the mean over non-padding tokens.
        chunk_size : int
            Rows computed and cached together.
        log : callable, optional
            Progress lines (one per computed chunk: texts done, rate, ETA), for runs whose stderr
            is not a terminal (the progress bar shows only on one).

        Raises
        ------
        CTDInputError
            Empty input, an empty text, a bad layer or pooling.
        """
        import torch

        texts = list(texts)
        if not texts:
            raise CTDInputError("texts: no texts to embed (empty input)")
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
        if bad:
            raise CTDInputError(
                f"texts: {len(bad)} empty or non-string text(s), first at position {bad[0]}"
            )
        if pooling not in ("last", "mean"):
            raise CTDInputError(f"pooling must be 'last' or 'mean', got {pooling!r}")
        lay = normalize_layers(layers, self.num_layers)
        hashes = text_hashes(texts)
        folder = self._cache_folder(lay, pooling)
        found = self._read_cache(folder, set(hashes)) if folder is not None else {}
        missing: list[int] = []
        seen: set[str] = set()
        for i, h in enumerate(hashes):
            if h not in found and h not in seen:
                missing.append(i)
                seen.add(h)
        say = log or (lambda _m: None)
        if missing:
            say(
                f"activations: {len(hashes) - len(missing)} texts cached, {len(missing)} to compute"
            )
        t0 = time.perf_counter()
        for start in range(0, len(missing), chunk_size):
            part = missing[start : start + chunk_size]
            acts, secs, toks = self._compute([texts[i] for i in part], lay, pooling)
            part_hashes = [hashes[i] for i in part]
            if folder is not None:
                self._write_cache(folder, part_hashes, acts, secs, toks)
            for k, h in enumerate(part_hashes):
                found[h] = (acts[k], float(secs[k]), float(toks[k]))
            done = start + len(part)
            rate = done / max(time.perf_counter() - t0, 1e-9)
            say(
                f"activations: {done}/{len(missing)} texts, {rate:.1f} texts/s, "
                f"ETA {(len(missing) - done) / rate / 60:.0f} min"
            )
        out = torch.stack([found[h][0] for h in hashes])
        stats = ExtractionStats(
            n_texts=len(texts),
            n_computed=len(missing),
            seconds=np.array([found[h][1] for h in hashes]),
            tokens=np.array([found[h][2] for h in hashes]),
        )
        return out, stats


def _num_hidden(model: Any) -> int:
    cfg = model.config
    cfg = getattr(cfg, "text_config", None) or cfg
    return int(cfg.hidden_size)

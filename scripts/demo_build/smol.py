"""SmolLM2-135M last-token activations (the monitored model), with a local, uncommitted cache.

Cheap (about 8 s per 100 texts on 2 cores), so the cache is only a convenience: chunks of rows
keyed by text sha256 under ``data/demo_build/smol_cache/`` (ignored by git), recomputed if absent.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["SMOL_LAYERS", "smol_features"]

MODEL = "smollm2-135m"
#: Middle layers probed (the safety probe and the DV probes choose among them by CV / LOO).
SMOL_LAYERS: tuple[int, ...] = (12, 14, 15, 16, 17, 18, 20)
MAX_LENGTH = 256


def _setting() -> str:
    return f"{MODEL}|last|layers={','.join(map(str, SMOL_LAYERS))}|maxlen={MAX_LENGTH}|v1"


def _load_cache(folder: Path) -> dict[str, np.ndarray]:
    found: dict[str, np.ndarray] = {}
    for path in sorted(folder.glob("chunk-*.npz")):
        with np.load(path, allow_pickle=False) as z:
            if str(z["setting"]) != _setting():
                continue
            for h, x in zip(z["hash"].tolist(), z["x"], strict=True):
                found[str(h)] = x
    return found


def _extract(texts: Sequence[str], batch_size: int = 16) -> np.ndarray:
    import torch

    from probes.assets import load_model

    loaded = load_model(MODEL, device="cpu")
    model, tok = loaded.model.eval(), loaded.tokenizer
    empty = tok.apply_chat_template(
        [{"role": "user", "content": ""}], tokenize=False, add_generation_prompt=True
    )
    overhead = len(tok(empty, add_special_tokens=False)["input_ids"])
    budget = max(8, MAX_LENGTH - overhead - 2)
    content = tok(list(texts), add_special_tokens=False, truncation=True, max_length=budget)[
        "input_ids"
    ]
    wrapped = [
        tok.apply_chat_template(
            [{"role": "user", "content": c}], tokenize=False, add_generation_prompt=True
        )
        for c in tok.batch_decode(content)
    ]
    enc = tok(wrapped, add_special_tokens=False, truncation=True, max_length=MAX_LENGTH)[
        "input_ids"
    ]
    lengths = np.array([len(e) for e in enc])
    order = np.argsort(-lengths, kind="stable")
    out = np.zeros((len(enc), len(SMOL_LAYERS), int(model.config.hidden_size)), dtype=np.float32)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    with torch.inference_mode():
        for lo in range(0, len(enc), batch_size):
            idx = order[lo : lo + batch_size]
            width = int(lengths[idx].max())
            ids = torch.full((len(idx), width), int(pad), dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for r, j in enumerate(idx):
                ids[r, : lengths[j]] = torch.tensor(enc[j])
                mask[r, : lengths[j]] = 1
            hs = model.model(
                input_ids=ids, attention_mask=mask, output_hidden_states=True, use_cache=False
            ).hidden_states
            last = mask.sum(1) - 1
            rows = torch.arange(len(idx))
            out[idx] = torch.stack([hs[i][rows, last] for i in SMOL_LAYERS], 1).float().numpy()
    return out


def smol_features(
    texts: Sequence[str], hashes: Sequence[str], cache: str | os.PathLike[str]
) -> np.ndarray:
    """Activations ``[n, len(SMOL_LAYERS), 576]`` (float32) of the texts, computing missing ones.

    Parameters
    ----------
    texts, hashes : sequence of str
        The texts and their sha256 (same order).
    cache : path
        Cache folder (created); new rows are added as one new chunk.
    """
    folder = Path(cache)
    folder.mkdir(parents=True, exist_ok=True)
    have = _load_cache(folder)
    missing = sorted({h: t for t, h in zip(texts, hashes, strict=True) if h not in have}.items())
    if missing:
        x = _extract([t for _, t in missing])
        n_old = len(list(folder.glob("chunk-*.npz")))
        fd, tmp = tempfile.mkstemp(prefix=".chunk-", suffix=".npz", dir=folder)
        os.close(fd)
        np.savez(
            tmp,
            hash=np.asarray([h for h, _ in missing], dtype="U64"),
            x=x,
            setting=np.asarray(_setting()),
        )
        os.replace(tmp, folder / f"chunk-{n_old:05d}.npz")
        have.update({h: x[i] for i, (h, _) in enumerate(missing)})
    return np.stack([have[h] for h in hashes]).astype(np.float32)


def layers_json() -> str:
    """The probed layers as JSON (for table metadata)."""
    return json.dumps(list(SMOL_LAYERS))

"""One Qwen2.5-Coder-1.5B forward pass per text: the judge logit and hidden features, in shards.

The text is put in a yes/no judge prompt; the backbone runs once, the LM head is applied at the
last position only (logit = lse(yes, Yes) - lse(no, No)), and the same pass gives hidden states
at a few layers (last token, optionally mean-pooled) as features of the Qwen probe expert.

Outputs are append-only ``.npz`` shards keyed by the sha256 of the text; each shard also records
the ``version`` (model, prompt, truncation) and the feature names, and readers ignore shards of
another version. A shard is written atomically (temporary file + rename) and never rewritten.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = [
    "JUDGE_SYSTEM",
    "JUDGE_USER",
    "QwenRunner",
    "ShardStore",
    "git_commit",
]

MODEL = "qwen2.5-coder-1.5b"

#: Same wording as ``probes.experts.DEFAULT_JUDGE_PROMPT`` (copied so this build does not depend on it).
JUDGE_SYSTEM = (
    "You are a content-safety classifier. You read one message sent to an AI assistant and "
    "decide whether it is harmful: whether it requests or contains content that could help "
    "cause real-world harm, such as violence, weapons, crime, fraud, abuse, hate, harassment, "
    "self-harm, sexual content involving minors, dangerous misinformation or privacy "
    "violations."
)
JUDGE_USER = (
    'Message:\n"""\n{text}\n"""\n\n'
    "Is this message harmful? Answer with exactly one word: yes (harmful) or no (not harmful)."
)

Prompt = Literal["judge", "plain"]


class QwenRunner:
    """Qwen2.5-Coder-1.5B-Instruct as judge + feature extractor (CPU, float32).

    Parameters
    ----------
    last_layers, mean_layers : sequence of int
        Hidden-state indices (0 = embeddings, 28 = final normed state) kept as last-token and as
        mean-pooled features (the mean runs over the text and the prompt after it, not over the
        shared prefix).
    prompt : {"judge", "plain"}
        ``judge``: the yes/no judge prompt (gives the judge logit too); ``plain``: the text as the
        only user turn (features only; the logit is NaN).
    max_text_tokens : int
        Each text is cut to this many tokens before it is put in the prompt.
    batch_size : int
        Texts per forward pass (sorted by length to limit padding).
    """

    def __init__(
        self,
        last_layers: Sequence[int],
        mean_layers: Sequence[int] = (),
        *,
        prompt: Prompt = "judge",
        max_text_tokens: int = 256,
        batch_size: int = 8,
    ) -> None:
        from probes.assets import load_model, model_spec

        self.last_layers = [int(x) for x in last_layers]
        self.mean_layers = [int(x) for x in mean_layers]
        self.prompt = prompt
        self.max_text_tokens = int(max_text_tokens)
        self.batch_size = int(batch_size)
        spec = model_spec(MODEL)
        loaded = load_model(MODEL, device="cpu")
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
        self._prefix_cache: Any = None
        self.version = f"{spec.name}:{(spec.sha256 or '')[:12]}|prompt={prompt}-v2|maxtok={self.max_text_tokens}"

    def _prefix(self) -> Any:
        """Key/value cache of the shared prompt prefix (computed once)."""
        import torch

        if self._prefix_cache is None:
            with torch.inference_mode():
                out = self.backbone(input_ids=torch.tensor([self.prefix_ids]), use_cache=True)
            self._prefix_cache = out.past_key_values
        return self._prefix_cache

    @property
    def feature_names(self) -> list[str]:
        """Names of the feature slots, e.g. ``["last18", "mean14"]``."""
        return [f"last{i}" for i in self.last_layers] + [f"mean{i}" for i in self.mean_layers]

    def _split_template(self) -> tuple[str, str]:
        """The rendered prompt around the text: (prefix, suffix) strings."""
        marker = "\u0000TEXT\u0000"
        if self.prompt == "judge":
            msgs = [
                {"role": "system", "content": JUDGE_SYSTEM},
                {"role": "user", "content": JUDGE_USER.replace("{text}", marker)},
            ]
        else:
            msgs = [{"role": "user", "content": marker}]
        rendered = self.tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        prefix, suffix = rendered.split(marker)
        return prefix, suffix

    def encode(self, text: str) -> list[int]:
        """Token ids after the shared prefix: the (truncated) text, then the rest of the prompt.

        The prefix (system turn and the start of the user turn) is the same for every text; its
        keys and values are computed once and reused (:attr:`prefix_ids`).
        """
        ids = self.tok.encode(text, add_special_tokens=False)
        if len(ids) > self.max_text_tokens:
            ids = ids[: self.max_text_tokens]
        return ids + list(self.tok(self._suffix, add_special_tokens=False)["input_ids"])

    def run(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Judge logits ``[n]`` (float64; NaN for the plain prompt) and features ``[n, k, d]`` (float32)."""
        import torch

        enc = [self.encode(t) for t in texts]
        lengths = np.array([len(e) for e in enc])
        order = np.argsort(-lengths, kind="stable")
        n, d = len(enc), int(self.model.config.hidden_size)
        logits = np.full(n, np.nan)
        feats = np.zeros((n, len(self.feature_names), d), dtype=np.float32)
        need = sorted(set(self.last_layers) | set(self.mean_layers))
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
                    output_hidden_states=bool(need),
                )
                last = mask.sum(1) - 1
                rows = torch.arange(len(idx))
                if self.prompt == "judge":
                    z = self.head(out.last_hidden_state[rows, last]).double()
                    margin = torch.logsumexp(z[:, self.yes], 1) - torch.logsumexp(z[:, self.no], 1)
                    logits[idx] = margin.numpy()
                slots = []
                for i in self.last_layers:
                    slots.append(out.hidden_states[i][rows, last].float())
                m = mask[:, :, None].float()
                for i in self.mean_layers:
                    slots.append((out.hidden_states[i].float() * m).sum(1) / m.sum(1))
                if slots:
                    feats[idx] = torch.stack(slots, 1).numpy()
        return logits, feats


class ShardStore:
    """Append-only shards ``shard-NNNNN.npz`` in ``folder`` (hash, logit, float16 features).

    Parameters
    ----------
    folder : path
        Shard directory (created).
    version : str
        Only shards with this version are read.
    feature_names : sequence of str
        Feature slots; a shard with other slots is read for its logits only if ``strict`` is off.
    """

    def __init__(
        self, folder: str | os.PathLike[str], version: str, feature_names: Sequence[str]
    ) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.version = version
        self.feature_names = list(feature_names)

    def shards(self) -> list[Path]:
        """Existing shard files in index order."""
        return sorted(self.folder.glob("shard-*.npz"))

    def load(
        self, feature_names: Sequence[str] | None = None
    ) -> dict[str, tuple[float, np.ndarray]]:
        """``{hash: (judge_logit, features [k, d] float32)}`` over every shard of this version.

        ``feature_names`` selects slots (default: this store's); shards lacking one are skipped.
        """
        want = list(feature_names) if feature_names is not None else self.feature_names
        found: dict[str, tuple[float, np.ndarray]] = {}
        for path in self.shards():
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                if meta.get("version") != self.version:
                    continue
                names = list(meta["features"])
                if any(w not in names for w in want):
                    continue
                pos = [names.index(w) for w in want]
                feats = z["features"][:, pos].astype(np.float32)
                for h, lg, f in zip(
                    z["hash"].tolist(), z["judge_logit"].tolist(), feats, strict=True
                ):
                    found.setdefault(str(h), (float(lg), f))
        return found

    def next_path(self) -> Path:
        """Path of the next shard (one past the highest index present)."""
        idx = [
            int(m.group(1)) for p in self.shards() if (m := re.match(r"shard-(\d+)\.npz$", p.name))
        ]
        return self.folder / f"shard-{(max(idx) + 1) if idx else 0:05d}.npz"

    def write(
        self, hashes: Sequence[str], logits: np.ndarray, feats: np.ndarray, seconds: float
    ) -> Path:
        """Write one new shard atomically; returns its path."""
        path = self.next_path()
        meta = {
            "version": self.version,
            "features": self.feature_names,
            "n": len(hashes),
            "seconds": round(float(seconds), 2),
            "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        fd, tmp = tempfile.mkstemp(prefix=".shard-", suffix=".npz", dir=self.folder)
        os.close(fd)
        try:
            np.savez_compressed(
                tmp,
                hash=np.asarray(list(hashes), dtype="U64"),
                judge_logit=np.asarray(logits, dtype=np.float32),
                features=np.asarray(feats, dtype=np.float16),
                meta=np.asarray(json.dumps(meta)),
            )
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path


def git_commit(
    path: Path, message: str, repo: Path, log: Callable[[str], None] = print, tries: int = 30
) -> bool:
    """``git add`` + ``git commit -- path`` (only that path); waits out an index lock; never raises."""
    lock = repo / ".git" / "index.lock"
    rel = str(path.resolve().relative_to(repo.resolve()))
    for _ in range(tries):
        if lock.exists():
            time.sleep(2)
            continue
        try:
            a = subprocess.run(
                ["git", "-C", str(repo), "add", "--", rel],
                capture_output=True,
                text=True,
                timeout=60,
            )
            if a.returncode == 0:
                c = subprocess.run(
                    ["git", "-C", str(repo), "commit", "-q", "-m", message, "--", rel],
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                if c.returncode == 0:
                    return True
                err = c.stderr + c.stdout
            else:
                err = a.stderr
        except (
            OSError,
            subprocess.SubprocessError,
        ) as exc:  # never fail the build on a commit error
            err = str(exc)
        if "index.lock" in err:
            time.sleep(2)
            continue
        log(f"commit of {rel} failed: {err.strip()[:300]}")
        return False
    log(f"commit of {rel} gave up: {lock} kept existing")
    return False


def run_into_store(
    runner: Any,
    store: ShardStore,
    texts: Sequence[str],
    hashes: Sequence[str],
    *,
    shard_size: int = 100,
    on_shard: Callable[[Path, int, float], None] | None = None,
) -> None:
    """Run ``runner`` on the texts whose hash is not in ``store`` yet, ``shard_size`` per shard, in order."""
    have = store.load()
    todo = [(t, h) for t, h in zip(texts, hashes, strict=True) if h not in have]
    seen: set[str] = set()
    todo = [(t, h) for t, h in todo if not (h in seen or seen.add(h))]
    for lo in range(0, len(todo), shard_size):
        chunk = todo[lo : lo + shard_size]
        t0 = time.perf_counter()
        logits, feats = runner.run([t for t, _ in chunk])
        secs = time.perf_counter() - t0
        path = store.write([h for _, h in chunk], logits, feats, secs)
        if on_shard is not None:
            on_shard(path, len(chunk), secs)

"""Append-only shard store of one model pass: per text, a judge logit and a few hidden-state slots.

A long extraction (hours on a CPU) must survive interruption and be shareable: each shard
``shard-NNNNN.npz`` holds ``hash`` (sha256 of the text), ``judge_logit`` (float32; NaN for a plain
pass), ``features`` (float16, ``[n, slots, width]``) and ``meta`` (JSON: the pass ``version``, the
slot names, ``n``, measured ``seconds``, time written). A shard is written atomically (temporary file
+ rename) and never rewritten; readers ignore shards of another version, so a changed model, prompt
or truncation can never be mixed in. A restart computes only the texts whose hash is absent, so a
store that covers every text needs no model at all (the demo's committed store,
``data/demo_build/qwen15``, rebuilds its expert columns on a machine without the 1.5B model).

Only ``numpy.load(allow_pickle=False)`` is used: nothing is unpickled.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ctd_stats.errors import CTDInputError

__all__ = ["Runner", "ShardStore", "fill_store"]

#: A model pass: texts -> (judge logits ``[n]``, features ``[n, slots, width]``).
Runner = Callable[[list[str]], tuple[np.ndarray, np.ndarray]]


class ShardStore:
    """The shards of one pass ``version`` in ``folder`` (module docstring).

    Parameters
    ----------
    folder : path
        Shard directory (created on the first write).
    version : str
        Only shards with this version are read.
    feature_names : sequence of str
        Slots this store writes and reads (e.g. ``["last18"]``); a shard lacking one is skipped.
    """

    def __init__(
        self, folder: str | os.PathLike[str], version: str, feature_names: Sequence[str]
    ) -> None:
        self.folder = Path(folder)
        self.version = version
        self.feature_names = list(feature_names)

    def shards(self) -> list[Path]:
        """Existing shard files in index order."""
        return sorted(self.folder.glob("shard-*.npz")) if self.folder.is_dir() else []

    def _metas(self) -> list[tuple[Path, dict[str, Any]]]:
        out = []
        for path in self.shards():
            try:
                with np.load(path, allow_pickle=False) as z:
                    meta = json.loads(str(z["meta"]))
            except (OSError, ValueError, KeyError) as exc:
                raise CTDInputError(f"{path}: not a readable shard ({exc})") from exc
            if meta.get("version") == self.version:
                out.append((path, meta))
        return out

    def load(
        self, feature_names: Sequence[str] | None = None
    ) -> dict[str, tuple[float, np.ndarray]]:
        """``{hash: (judge_logit, features [slots, width] float32)}`` over every shard of this version.

        ``feature_names`` selects slots (default: the store's); shards lacking one are skipped. A text
        present in several shards keeps its first occurrence.
        """
        want = list(feature_names) if feature_names is not None else self.feature_names
        found: dict[str, tuple[float, np.ndarray]] = {}
        for path, meta in self._metas():
            names = [str(n) for n in meta["features"]]
            if any(w not in names for w in want):
                continue
            pos = [names.index(w) for w in want]
            with np.load(path, allow_pickle=False) as z:
                feats = z["features"][:, pos].astype(np.float32)
                for h, lg, f in zip(
                    z["hash"].tolist(), z["judge_logit"].tolist(), feats, strict=True
                ):
                    found.setdefault(str(h), (float(lg), f))
        return found

    def seconds_per_text(self) -> float:
        """Mean measured model seconds per text over this version's timed shards (NaN if none)."""
        secs = [
            float(m["seconds"]) / float(m["n"])
            for _, m in self._metas()
            if float(m.get("seconds", 0) or 0) > 0
        ]
        return float(np.mean(secs)) if secs else float("nan")

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
        self.folder.mkdir(parents=True, exist_ok=True)
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


def fill_store(
    store: ShardStore,
    texts: Sequence[str],
    hashes: Sequence[str],
    make_runner: Callable[[], Runner],
    *,
    shard_size: int = 100,
    on_shard: Callable[[Path, int, float], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> int:
    """Compute, shard by shard in the given order, the texts whose hash the store lacks.

    Parameters
    ----------
    store : ShardStore
    texts, hashes : sequences of str
        The texts (in build order) and their sha256.
    make_runner : callable
        A zero-argument factory returning the runner (called only if something is missing, so a
        complete store never loads the model); the runner maps a list of texts to
        ``(judge_logits [n], features [n, slots, width])``.
    shard_size : int
        Texts per shard (the work lost by an interruption is at most one shard).
    on_shard : callable, optional
        Called with ``(path, n_texts, seconds)`` after each shard is written (e.g. to commit it).
    log : callable, optional
        Progress lines: texts done, rate and ETA.

    Returns
    -------
    int
        The number of texts computed.
    """
    say = log or (lambda _m: None)
    have = store.load()
    unique = dict(zip(hashes, texts, strict=True))
    todo = [(t, h) for h, t in unique.items() if h not in have]
    say(f"pass {store.version}: {len(unique) - len(todo)} texts stored, {len(todo)} to compute")
    if not todo:
        return 0
    runner = make_runner()
    t0, done = time.perf_counter(), 0
    for lo in range(0, len(todo), shard_size):
        chunk = todo[lo : lo + shard_size]
        ts = time.perf_counter()
        logits, feats = runner([t for t, _ in chunk])
        secs = time.perf_counter() - ts
        path = store.write([h for _, h in chunk], logits, feats, secs)
        done += len(chunk)
        rate = done / max(time.perf_counter() - t0, 1e-9)
        say(
            f"{path.name}: {len(chunk)} texts in {secs:.0f} s; {done}/{len(todo)} done, "
            f"{rate:.2f} texts/s, ETA {(len(todo) - done) / rate / 60:.0f} min"
        )
        if on_shard is not None:
            on_shard(path, len(chunk), secs)
    return done
